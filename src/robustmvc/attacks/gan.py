"""The AR-DMVC attack (Huang et al., ICML 2024, SPEC section 5): a generator per view learns
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

import logging
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from robustmvc.progress import bar as progress_bar

from robustmvc.files import load_module_file, save_module
from robustmvc.models.blocks import ModelOutput, batched_forward

log = logging.getLogger(__name__)

OBJECTIVES = ("both", "com", "con")
BATCHNORM_MODES = ("eval", "batch")

# Every knob of the attack, with the paper's values (its public code where the paper is silent).
DEFAULTS: dict = {
    "objective": "both",        # both = L_a-com + L_a-con (the paper's attack); com / con = one term alone
    "eps": None,                # L-infinity budget; per dataset (see PAPER_EPS), required
    "epochs": 30,
    "batch_size": 100,
    "lr": 1.0e-3,               # Adam, generators and discriminators alike
    "lr_late": 1.0e-4,          # ... from epoch `lr_step_epoch` (1-based) on
    "lr_step_epoch": 20,
    "beta": 5.0,                # weight of the adversarial (representation-distance) terms
    "perturb_weight": 1.0,      # weight of sum_v mean_i ||delta_i^v||_2
    "gan_weight": 1.0,          # weight of the generator's LSGAN term
    "init_std": 1.0,            # conv weights ~ N(0, init_std) as the reference code does; null = PyTorch's init
    "target_batchnorm": "eval",  # eval: the target's BatchNorm uses its running statistics;
                                # batch: batch statistics, as the reference code (never calls eval())
    "protocol": "paper",        # paper: fit and score on the same eval-half samples; heldout: see below
    "heldout_fraction": 0.5,    # heldout: this share of the eval half (seeded shuffle) fits the generators,
                                # the rest is scored
    "eval_every": 0,            # > 0: score the attacked ACC/NMI/ARI every this many epochs (history)
    "seed": 0,
}

# The paper's L-infinity budgets (SPEC section 5).
PAPER_EPS = {"noisymnist": 0.3, "noisyfashion": 0.15, "patchedmnist": 0.3}


def check_settings(settings: dict) -> dict:
    """DEFAULTS overridden by `settings`, validated; unknown keys are an error (typos stop early)."""
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown GAN attack settings {unknown}; known: {', '.join(DEFAULTS)}")
    s = {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
    if s["objective"] not in OBJECTIVES:
        raise ValueError(f"attack objective {s['objective']!r} is not one of {', '.join(OBJECTIVES)}")
    return check_common(s)


def check_common(s: dict, budget: bool = True) -> dict:
    """The checks every fitted attack shares: its budget eps (when it has one), how the target and
    the samples are used, and the length of training. Returns `s` with eps as a float."""
    if budget:
        if s["eps"] is None or not 0 < float(s["eps"]) <= 1:
            raise ValueError(f"the attack needs an L-infinity budget 0 < eps <= 1, got {s['eps']!r}; "
                             "set `datasets.<name>.eps` in the config or pass --eps")
        s["eps"] = float(s["eps"])
    if s["target_batchnorm"] not in BATCHNORM_MODES:
        raise ValueError(f"target_batchnorm {s['target_batchnorm']!r} is not one of {', '.join(BATCHNORM_MODES)}")
    if s["protocol"] not in ("paper", "heldout"):
        raise ValueError(f"attack protocol {s['protocol']!r} is not 'paper' or 'heldout'")
    if not 0 < float(s["heldout_fraction"]) < 1:
        raise ValueError(f"heldout_fraction must lie in (0, 1), got {s['heldout_fraction']}")
    if int(s["epochs"]) < 1 or int(s["batch_size"]) < 2:
        raise ValueError("the attack needs epochs >= 1 and batch_size >= 2")
    return s


# ---------------------------------------------------------------------------------------------
# Networks


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class Generator(nn.Module):
    """Conv encoder-decoder for one view: C->8 (s1), 8->16 (s2), 16->32 (s2), then transposed
    convs mirroring those sizes back to C channels, InstanceNorm + ReLU between, tanh at the end.

    The transposed convs take `output_padding` from the encoder's sizes, so the output has the
    view's exact shape for any input size (28x28 and 128x64 alike; odd sizes included).
    `residual_blocks` > 0 puts that many `ResidualBlock`s at the 32-channel bottleneck, as AdvGAN's
    generator (which the black-box attack uses) has; 0 is the AR-DMVC generator.
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
        # an empty Sequential is the identity and adds no state_dict keys: old checkpoints still load
        self.bottleneck = nn.Sequential(*(ResidualBlock(32) for _ in range(int(residual_blocks))))

        def up(c_in, c_out, stride, source, target):
            pad = tuple(t - ((s - 1) * stride + 3) for s, t in zip(source, target))
            return nn.ConvTranspose2d(c_in, c_out, 3, stride, output_padding=pad, bias=False)

        self.decoder = nn.Sequential(
            up(32, 16, 2, sizes[3], sizes[2]), nn.InstanceNorm2d(16), nn.ReLU(),
            up(16, 8, 2, sizes[2], sizes[1]), nn.InstanceNorm2d(8), nn.ReLU(),
            up(8, channels, 1, sizes[1], sizes[0]), nn.Tanh())

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
                                      eps=perturber.eps, residual_blocks=perturber.residual_blocks))


def load_perturber(path: str | Path, device="cpu") -> tuple[Perturber, dict]:
    return perturber_from(load_module_file(path, device, "train one with `python -m robustmvc attack ... "
                                                         "--generator-out PATH`"), device)


def perturber_from(ckpt: dict, device="cpu") -> tuple[Perturber, dict]:
    """The generators held by a loaded `save_perturber` file (`files.load_module_file`'s dict)."""
    meta = ckpt["meta"]
    # files written before residual blocks existed hold plain AR-DMVC generators
    perturber = Perturber([tuple(s) for s in meta["view_shapes"]], meta["eps"], init_std=None,
                          residual_blocks=meta.get("residual_blocks", 0))
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
# The target model, frozen


def _batchnorms(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def frozen_target(model: nn.Module, batchnorm: str = "eval"):
    """The target as the attack sees it: parameters frozen (requires_grad False), eval mode, and
    with batchnorm='batch' its BatchNorm layers normalise with the statistics of each batch (the
    reference behaviour) without updating the running statistics. Everything is restored on exit,
    so gradients still flow through the model to its inputs but never reach its parameters.
    """
    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"target_batchnorm {batchnorm!r} is not one of {', '.join(BATCHNORM_MODES)}")
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    was_training = model.training
    hidden = []
    try:
        for p in params:
            p.requires_grad_(False)
        model.eval()
        if batchnorm == "batch":
            for m in _batchnorms(model):
                if m.running_mean is not None:
                    # with no running statistics, BatchNorm normalises by the batch even in eval mode
                    hidden.append((m, m.running_mean, m.running_var))
                    m.running_mean, m.running_var = None, None
        yield model
    finally:
        for m, mean, var in hidden:
            m.running_mean, m.running_var = mean, var
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        model.train(was_training)


def predict(model: nn.Module, views: list[torch.Tensor], batch_size: int | None = None) -> torch.Tensor:
    """Cluster labels through the model's own `predict`; with batch_size, chunk by chunk (so that
    batch-statistics BatchNorm sees batches like the reference code's loader)."""
    if batch_size is None:
        return model.predict(views)
    return torch.cat([model.predict([v[i:i + batch_size] for v in views])
                      for i in range(0, len(views[0]), batch_size)])


# ---------------------------------------------------------------------------------------------
# Training


def fit(model: nn.Module, views: list[torch.Tensor], settings: dict, *, progress: bool = True,
        score_views: list[torch.Tensor] | None = None, score_labels=None, name: str = "attack"
        ) -> tuple[Perturber, list[dict]]:
    """Train the generators (and discriminators) against the frozen `model` on `views` (tensors on
    the model's device). Returns the generators and the per-epoch history (mean loss terms,
    seconds; attacked scores on `score_views` every `eval_every` epochs when given)."""
    s = check_settings(settings)
    device = views[0].device
    torch.manual_seed(int(s["seed"]))
    shapes = [tuple(v.shape[1:]) for v in views]
    perturber = Perturber(shapes, s["eps"], s["init_std"]).to(device)
    critics = nn.ModuleList(Discriminator(sh) for sh in shapes).to(device)
    init_weights(critics, s["init_std"])
    opt_g = torch.optim.Adam(perturber.parameters(), lr=s["lr"])
    opt_d = torch.optim.Adam(critics.parameters(), lr=s["lr"])
    if len(views[0]) < 2:
        raise ValueError(f"the attack needs at least 2 samples to fit on, got {len(views[0])}")
    gen = torch.Generator(device="cpu").manual_seed(int(s["seed"]))
    # the reference init saturates tanh, whose backward then makes denormal floats: ~2x slower on CPU
    flush = torch.set_flush_denormal(True)
    try:
        return _fit(model, views, s, perturber, critics, opt_g, opt_d, gen, progress, score_views, score_labels, name)
    finally:
        if flush:
            torch.set_flush_denormal(False)


def _fit(model, views, s, perturber, critics, opt_g, opt_d, gen, progress, score_views, score_labels, name):
    from robustmvc.metrics import clustering_scores

    n, bs, device = len(views[0]), int(s["batch_size"]), views[0].device
    history: list[dict] = []
    with frozen_target(model, s["target_batchnorm"]):
        # with running-statistics BatchNorm the clean representations never change: compute them once
        cached = batched_forward(model, views, bs) if s["target_batchnorm"] == "eval" else None
        bar = progress_bar(range(int(s["epochs"])), desc=name, disable=not progress, leave=False)
        for epoch in bar:
            lr = s["lr_late"] if epoch + 1 >= int(s["lr_step_epoch"]) else s["lr"]
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr
            perturber.train()
            critics.train()
            start, sums, batches = time.perf_counter(), {}, 0
            order = torch.randperm(n, generator=gen).to(device)
            # full batches only (as the reference's drop_last loader): batch-statistics BatchNorm needs n > 1
            for i in range(0, n - bs + 1 if n >= bs else 1, bs):
                idx = order[i:i + bs]
                clean = None if cached is None else ModelOutput(z=[z[idx] for z in cached.z], h=cached.h[idx],
                                                                 probs=cached.probs[idx])
                terms = _step(model, perturber, critics, opt_g, opt_d, [v[idx] for v in views], s, clean)
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value
                batches += 1
            record = {k: v / batches for k, v in sums.items()}
            record.update(epoch=epoch + 1, lr=lr, seconds=time.perf_counter() - start)
            for key, value in record.items():
                if isinstance(value, float) and not np.isfinite(value):
                    raise FloatingPointError(f"attack loss {key!r} became {value} at epoch {epoch + 1}; "
                                             "lower the attack's lr")
            if score_views is not None and s["eval_every"] and (epoch + 1) % int(s["eval_every"]) == 0:
                perturber.eval()
                adv = perturber.perturb(score_views)
                chunk = bs if s["target_batchnorm"] == "batch" else None
                pred = predict(model, adv, chunk).cpu().numpy()
                record["attacked"] = clustering_scores(np.asarray(score_labels), pred)
            history.append(record)
            bar.set_postfix(g=f"{record['g_total']:.2f}", d=f"{record['d_total']:.3f}")
            log.info("%s epoch %d: %s", name, epoch + 1,
                     " ".join(f"{k}={v:.4g}" for k, v in record.items() if isinstance(v, float)))
    perturber.eval()
    return perturber, history


def _step(model, perturber, critics, opt_g, opt_d, views, s, out_clean=None) -> dict[str, float]:
    adv, deltas = perturber(views)
    # discriminators: real views -> 1, adversarial views (detached) -> 0
    d_loss = (lsgan([d(x) for d, x in zip(critics, views)], 1.0)
              + lsgan([d(a.detach()) for d, a in zip(critics, adv)], 0.0))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    # generators: small perturbations, far-away representations, adversarial views that look real
    if out_clean is None:
        with torch.no_grad():
            out_clean = model(views)
    out_adv = model(adv)
    adv_terms = adversarial_terms(out_clean, out_adv, s["objective"])
    pert = perturbation_norm(deltas)
    gan = lsgan([d(a) for d, a in zip(critics, adv)], 1.0)
    g_loss = s["perturb_weight"] * pert - s["beta"] * sum(adv_terms.values()) + s["gan_weight"] * gan
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    terms = {"g_total": g_loss.item(), "d_total": d_loss.item(), "perturbation": pert.item(), "g_gan": gan.item()}
    terms.update({k: v.item() for k, v in adv_terms.items()})
    return terms

