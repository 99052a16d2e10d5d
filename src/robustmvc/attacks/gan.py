"""The AR-DMVC attack (Huang et al., ICML 2024; docs/ARCHITECTURE.md, section 5): a generator per view learns
bounded perturbations that push a frozen DMVC model's view representations (complementarity)
and consensus representation (consistency) away from their clean values.

Per view v: delta_v = clip(G_v(x_v), -eps, eps) and x~_v = clamp(x_v + delta_v, 0, 1). The
generators minimise

    sum_v mean_i ||delta_i^v||_2  -  beta * (L_a-com and/or L_a-con)  +  sum_v MSE(D_v(x~_v), 1)

while per-view LSGAN discriminators D_v learn to tell x_v from x~_v. The target model is only
used through its forward (`ModelOutput.z`, `.h`) and `predict`, so any registered model can be
attacked; its parameters never change.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustmvc.adam import Adam
from robustmvc.attack_settings import check_gan
from robustmvc.device import precision_of, resolve_precision
from robustmvc.files import load_module_file, save_module
from robustmvc.loop import run_epochs
from robustmvc.metrics import clustering_scores
from robustmvc.models.blocks import ModelOutput, batched_forward, evaluating
from robustmvc.protocols import batchnorm_of, frozen_target, predict

# ---------------------------------------------------------------------------------------------
# Networks


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


# Saved with every generator file: the decoder's shape. Files without it hold the earlier decoder
# (kernel-3 transposed convs with output padding), which cannot be loaded into this one.
DECODER = "public-k6"


class Generator(nn.Module):
    """Conv encoder-decoder for one view, the public code's: C->8 (k3 s1), 8->16 (k3 s2), 16->32 (k3 s2),
    then transposed convs 32->16 (k3 s2), 16->8 (k3 s2) and 8->C (stride 1, kernel = whatever brings
    the size back to the view's), InstanceNorm + ReLU between, tanh at the end.

    On 28x28: 28 -> 26 -> 12 -> 5, then 5 -> 11 -> 23 -> 28 with a kernel-6 last layer. There is no
    output padding: padded rows and columns are reached by fewer kernel taps than the rest, which showed
    as a fixed band along the bottom and right edges of every perturbation. Any view of at least 7x7 works
    (128x64 gives a 6x6 last kernel). `residual_blocks` > 0 puts that many `ResidualBlock`s at the
    32-channel bottleneck, as AdvGAN's generator (which the black-box attack uses) has; 0 is the AR-DMVC
    generator.
    """

    def __init__(self, shape: tuple[int, int, int], residual_blocks: int = 0):
        super().__init__()
        channels, height, width = shape
        sizes = [(height, width)]
        for kernel, stride in ((3, 1), (3, 2), (3, 2)):
            sizes.append(tuple(_conv_out(n, kernel, stride) for n in sizes[-1]))
        if min(sizes[-1]) < 1:
            raise ValueError(f"view shape {tuple(shape)} is too small for the attack generator (needs >= 7x7)")
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 8, 3, 1), nn.InstanceNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2), nn.InstanceNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2), nn.InstanceNorm2d(32), nn.ReLU())
        # an empty Sequential is the identity and adds no state_dict keys
        self.bottleneck = nn.Sequential(*(ResidualBlock(32) for _ in range(int(residual_blocks))))
        upsampled = tuple(2 * (2 * (n - 1) + 3 - 1) + 3 for n in sizes[3])  # after the two stride-2 layers
        last = tuple(n - u + 1 for n, u in zip(sizes[0], upsampled))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 3, 2, bias=False), nn.InstanceNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 8, 3, 2, bias=False), nn.InstanceNorm2d(8), nn.ReLU(),
            nn.ConvTranspose2d(8, channels, last, 1, bias=False), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.bottleneck(self.encoder(x)))


class ResidualBlock(nn.Module):
    """x + (conv3x3, InstanceNorm, ReLU, conv3x3, InstanceNorm)(x): padded convs keep the size, so
    the blocks deepen the bottleneck without touching the encoder/decoder geometry."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.InstanceNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Discriminator(nn.Module):
    """LSGAN critic for one view: Conv C->8 (k4 s2), LeakyReLU(0.2), 8->16 and 16->32 (k4 s2) with
    BatchNorm, a 1x1 conv to 1 channel, sigmoid. Larger views give a patch map, scored per patch."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        channels = shape[0]
        size = shape[1:]
        for _ in range(3):
            size = tuple(_conv_out(n, 4, 2) for n in size)
        if min(size) < 1:
            raise ValueError(f"view shape {tuple(shape)} is too small for the attack discriminator (needs >= 22x22)")
        self.net = nn.Sequential(
            nn.Conv2d(channels, 8, 4, 2), nn.LeakyReLU(0.2),
            nn.Conv2d(8, 16, 4, 2), nn.BatchNorm2d(16), nn.LeakyReLU(0.2),
            nn.Conv2d(16, 32, 4, 2), nn.BatchNorm2d(32), nn.LeakyReLU(0.2),
            nn.Conv2d(32, 1, 1), nn.Sigmoid(), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def init_weights(module: nn.Module, std: float | None) -> None:
    """The reference initialisation: conv weights ~ N(0, std), BatchNorm weights ~ N(1, 0.02), biases of BN 0."""
    if std is None:
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Perturber(nn.Module):
    """The attacker's generators, one per view, with the budget built in."""

    def __init__(self, view_shapes, eps: float, init_std: float | None = 1.0, residual_blocks: int = 0):
        super().__init__()
        self.view_shapes = [tuple(int(d) for d in s) for s in view_shapes]
        self.eps = float(eps)
        self.residual_blocks = int(residual_blocks)
        self.generators = nn.ModuleList(Generator(s, self.residual_blocks) for s in self.view_shapes)
        init_weights(self, init_std)

    def deltas(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """delta_v = clip(G_v(x_v), -eps, eps)."""
        return [g(x).clamp(-self.eps, self.eps) for g, x in zip(self.generators, views)]

    def forward(self, views: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(adversarial views x~_v = clamp(x_v + delta_v, 0, 1), deltas)."""
        deltas = self.deltas(views)
        return [(x + d).clamp(0.0, 1.0) for x, d in zip(views, deltas)], deltas

    @torch.no_grad()
    def perturb(self, views: list[torch.Tensor], batch_size: int = 500) -> list[torch.Tensor]:
        """Adversarial views of a whole set, batch by batch (InstanceNorm only: no batch effects)."""
        out = [self([v[i:i + batch_size] for v in views])[0] for i in range(0, len(views[0]), batch_size)]
        return [torch.cat([o[v] for o in out]) for v in range(len(views))]


def save_perturber(path: str | Path, perturber: Perturber, meta: dict) -> None:
    save_module(path, perturber, dict(meta, view_shapes=[list(s) for s in perturber.view_shapes],
                                      eps=perturber.eps, residual_blocks=perturber.residual_blocks,
                                      decoder=DECODER))


def load_perturber(path: str | Path, device="cpu") -> tuple[Perturber, dict]:
    return perturber_from(load_module_file(path, device, "train one with `python -m robustmvc attack ... "
                                                         "--generator-out PATH`"), device)


def perturber_from(ckpt: dict, device="cpu") -> tuple[Perturber, dict]:
    """The generators held by a loaded `save_perturber` file (`files.load_module_file`'s dict)."""
    meta = ckpt["meta"]
    if meta.get("decoder") != DECODER:
        raise ValueError("this generator file was fitted with the earlier generator decoder (kernel-3 transposed "
                         "convs with output padding, which left a fixed band along the bottom and right edges); "
                         "refit it with `python -m robustmvc attack ... --generator-out PATH`")
    perturber = Perturber([tuple(s) for s in meta["view_shapes"]], meta["eps"], init_std=None,
                          residual_blocks=meta["residual_blocks"])
    perturber.load_state_dict(ckpt["state_dict"])
    return perturber.to(device).eval(), meta


# ---------------------------------------------------------------------------------------------
# Loss terms (each a function of its inputs)


def complementarity_loss(z_clean: list[torch.Tensor], z_adv: list[torch.Tensor]) -> torch.Tensor:
    """L_a-com = sum_v 0.5 * sum_i ||z_i^v - z~_i^v||_2 (L2 norm, not squared)."""
    return sum(0.5 * (zc.flatten(1) - za.flatten(1)).norm(dim=1).sum() for zc, za in zip(z_clean, z_adv))


def consistency_loss(h_clean: torch.Tensor, h_adv: torch.Tensor) -> torch.Tensor:
    """L_a-con = 0.5 * sum_i ||h_i - h~_i||_2 on the consensus representation."""
    return 0.5 * (h_clean.flatten(1) - h_adv.flatten(1)).norm(dim=1).sum()


def perturbation_norm(deltas: list[torch.Tensor]) -> torch.Tensor:
    """sum_v mean_i ||delta_i^v||_2."""
    return sum(d.flatten(1).norm(dim=1).mean() for d in deltas)


def adversarial_terms(out_clean, out_adv, objective: str) -> dict[str, torch.Tensor]:
    """The representation distances the generator maximises, by name."""
    terms = {}
    if objective in ("both", "com"):
        terms["adv_com"] = complementarity_loss(out_clean.z, out_adv.z)
    if objective in ("both", "con"):
        terms["adv_con"] = consistency_loss(out_clean.h, out_adv.h)
    return terms


def lsgan(scores: list[torch.Tensor], target: float) -> torch.Tensor:
    """sum over views of MSE(D_v(.), target)."""
    return sum(F.mse_loss(s, torch.full_like(s, target)) for s in scores)


# ---------------------------------------------------------------------------------------------
# Training


def networks(views: list[torch.Tensor], s: dict, residual_blocks: int = 0):
    """(generators, critics, their Adam optimisers) of a generator attack, seeded by the settings' seed.
    `residual_blocks` > 0 gives the AdvGAN-style generator of the black-box attack."""
    torch.manual_seed(int(s["seed"]))
    shapes = [tuple(v.shape[1:]) for v in views]
    perturber = Perturber(shapes, s["eps"], s["init_std"], residual_blocks).to(views[0].device)
    critics = nn.ModuleList(Discriminator(sh) for sh in shapes).to(views[0].device)
    init_weights(critics, s["init_std"])
    return (perturber, critics, Adam(perturber.parameters(), lr=s["lr"]),
            Adam(critics.parameters(), lr=s["lr"]))


@contextmanager
def fitting(model: nn.Module, perturber: Perturber, critics: nn.Module, precision: str):
    """While a generator attack fits: generators and critics in training mode, the conv stacks of all
    three in `precision`, and denormal floats flushed to zero (the reference init saturates tanh, whose
    backward then makes denormals: about 2x slower on CPU). The generators leave in eval mode."""
    flush = torch.set_flush_denormal(True)
    precision = resolve_precision(precision, next(perturber.parameters()).device)
    try:
        with precision_of(model, precision), precision_of(perturber, precision), precision_of(critics, precision):
            perturber.train()
            critics.train()
            yield
            perturber.eval()
    finally:
        if flush:
            torch.set_flush_denormal(False)


def generator_step(perturber, critics, opt_g, opt_d, views, s, adversarial) -> dict[str, torch.Tensor]:
    """One step of a generator attack (this one and `blackbox`): the critics learn to tell x_v (1) from
    x~_v (0), then the generators descend

        perturb_weight * sum_v mean_i ||delta_i^v||  -  beta * A  +  gan_weight * sum_v MSE(D_v(x~_v), 1).

    `adversarial(adv) -> (surrogate, value, terms)` is what tells the attacks apart: `surrogate` carries
    A's gradient to the generators, `value` is A itself (the same tensor when autograd reaches the target),
    and `terms` are what the history reports of it. Returns the step's terms, detached, on the device.
    """
    adv, deltas = perturber(views)
    d_loss = (lsgan([d(x) for d, x in zip(critics, views)], 1.0)
              + lsgan([d(a.detach()) for d, a in zip(critics, adv)], 0.0))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    surrogate, value, adv_terms = adversarial(adv)
    pert = perturbation_norm(deltas)
    gan = lsgan([d(a) for d, a in zip(critics, adv)], 1.0)
    g_loss = s["perturb_weight"] * pert - s["beta"] * surrogate + s["gan_weight"] * gan
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    with torch.no_grad():
        g_total = s["perturb_weight"] * pert - s["beta"] * value + s["gan_weight"] * gan
    terms = {"g_total": g_total, "d_total": d_loss, "perturbation": pert, "g_gan": gan, **adv_terms}
    return {k: v.detach().float() for k, v in terms.items()}


# what every fitted attack's error says when a loss term stops being finite
LOWER_LR = "lower the attack's lr"


def lr_schedule(s: dict, *optimizers):
    """The attack's learning-rate step as an epoch hook: `lr`, then `lr_late` from epoch `lr_step_epoch`
    (1-based), set on every group of `optimizers`; returns the rate for the epoch's record."""

    def learning_rate(epoch):
        lr = s["lr_late"] if epoch + 1 >= int(s["lr_step_epoch"]) else s["lr"]
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = lr
        return {"lr": lr}

    return learning_rate


def fit(model: nn.Module, views: list[torch.Tensor], settings: dict, *, progress: bool = True,
        score_views: list[torch.Tensor] | None = None, score_labels=None, name: str = "attack",
        precision: str = "fp32") -> tuple[Perturber, list[dict]]:
    """Train the generators (and discriminators) against the frozen `model` on `views` (tensors on
    the model's device). Returns the generators and the per-epoch history (mean loss terms, learning
    rate, seconds; attacked scores on `score_views` every `eval_every` epochs when given).
    `precision` is that of the conv stacks of the target, generators and discriminators while fitting
    (`device.set_precision`); all three are back in fp32 afterwards."""
    s = check_gan(settings)
    if len(views[0]) < 2:
        raise ValueError(f"the attack needs at least 2 samples to fit on, got {len(views[0])}")
    perturber, critics, opt_g, opt_d = networks(views, s)
    bs, batchnorm = int(s["batch_size"]), batchnorm_of(s)

    learning_rate = lr_schedule(s, opt_g, opt_d)

    def score(epoch, record):
        if score_views is not None and s["eval_every"] and (epoch + 1) % int(s["eval_every"]) == 0:
            with evaluating(perturber):
                adv = perturber.perturb(score_views)
            pred = predict(model, adv, bs if batchnorm == "batch" else None, int(s["seed"])).cpu().numpy()
            record["attacked"] = clustering_scores(np.asarray(score_labels), pred)

    with fitting(model, perturber, critics, precision), frozen_target(model, batchnorm):
        # with running-statistics BatchNorm the clean representations never change: compute them once
        cached = batched_forward(model, views, bs) if batchnorm == "eval" else None

        def step(epoch, idx):
            clean = None if cached is None else ModelOutput(z=[z[idx] for z in cached.z], h=cached.h[idx],
                                                             probs=cached.probs[idx])
            return _step(model, perturber, critics, opt_g, opt_d, [v[idx] for v in views], s, clean)

        # full batches only (as the reference's drop_last loader): batch-statistics BatchNorm needs n > 1
        history = run_epochs(step, len(views[0]), bs, int(s["epochs"]), seed=int(s["seed"]), device=views[0].device,
                             label=f"attack {name}", fix=LOWER_LR, progress=progress, start=learning_rate,
                             end=score, show={"g": "g_total", "d": "d_total"})
    return perturber, history


def _step(model, perturber, critics, opt_g, opt_d, views, s, out_clean=None) -> dict[str, torch.Tensor]:
    """`generator_step` with the representation distances as A; `out_clean` the target's output on the
    clean batch when it is known (running-statistics BatchNorm), else computed here."""

    def representations(adv):
        clean = out_clean
        if clean is None:
            with torch.no_grad():
                clean = model(views)
        terms = adversarial_terms(clean, model(adv), s["objective"])
        total = sum(terms.values())
        return total, total, terms

    return generator_step(perturber, critics, opt_g, opt_d, views, s, representations)
