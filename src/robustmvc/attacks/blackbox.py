"""The black-box GAN attack of Chhabra, Sekhari & Mohapatra (NeurIPS 2022, "On the Robustness of
Deep Clustering Models"), adapted to multi-view models.

Threat model: the attacker never sees the target's weights, representations or gradients, only
the soft cluster assignments f(x) = `ModelOutput.probs` of the samples it submits (`QueryOracle`).
Per view v the generators of `gan.Perturber` (AdvGAN-style, with residual blocks) give
x~_v = clamp(x_v + clip(G_v(x_v), -eps, eps), 0, 1), and minimise

    perturb_weight * sum_v mean_i ||delta_i^v||_2  +  gan_weight * sum_v MSE(D_v(x~_v), 1)  -  beta * A,
    A = 0.5 * mean_i ||f(x_i) - f(x~_i)||^2,

with per-view LSGAN discriminators as in `gan`. With gradient="nes" dA/dx~ is estimated from
queries alone (antithetic NES) and pushed into the generators through a linear surrogate; with
gradient="exact" autograd runs through the frozen target: the same attack, white-box, so the cost
of the black-box restriction can be measured.
"""
from __future__ import annotations

import torch
from torch import nn

from robustmvc import protocols
from robustmvc.attack_settings import check_blackbox
from robustmvc.attacks import gan
from robustmvc.loop import run_epochs

class QueryOracle:
    """The attacker's only access to the target: soft assignments of submitted samples, without
    gradients, counted. One query is one multi-view sample, so `queries` is the attack's budget in
    the units black-box papers report."""

    def __init__(self, model: nn.Module, batchnorm: str = "eval"):
        self.model, self.batchnorm, self.queries = model, batchnorm, 0

    def __call__(self, views: list[torch.Tensor]) -> torch.Tensor:
        views = [v.detach() for v in views]
        with torch.no_grad(), protocols.frozen_target(self.model, self.batchnorm):
            probs = self.model(views).probs
        self.queries += len(views[0])
        return probs


def sample_distances(clean_probs: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """0.5 * ||f(x_i) - f(x~_i)||^2 per sample: the attack term A before the batch mean."""
    return 0.5 * (clean_probs - probs).pow(2).sum(dim=-1)


def probe_directions(samples: int, x: torch.Tensor, tile: int, generator: torch.Generator | None) -> torch.Tensor:
    """`samples` directions per sample of `x` (samples, *x.shape), N(0, 1) per tile x tile pixel square and
    constant on it (cropped at the right and bottom edges where the size is not a multiple of `tile`)."""
    *lead, height, width = x.shape
    coarse = torch.randn((samples, *lead, -(-height // tile), -(-width // tile)), generator=generator,
                         device=x.device, dtype=x.dtype)
    return coarse.repeat_interleave(tile, -2).repeat_interleave(tile, -1)[..., :height, :width]


def nes_gradient(oracle, clean_probs: torch.Tensor, adv: list[torch.Tensor], samples: int, sigma: float,
                 generator: torch.Generator | None = None, chunk: int | None = None, tile: int = 1
                 ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Antithetic NES estimate of d a_i / d x~_i for every sample i (a_i = `sample_distances`), and
    a_i itself estimated as the mean over the probes (no extra queries).

    The directions u_k span all views jointly, so the estimate sees how the views interact in f; with
    `tile` > 1 they are N(0, 1) per tile x tile square of pixels (`probe_directions`): the estimate is then
    that of the gradient's projection on piecewise-constant images, far fewer dimensions for the same
    queries, and the low-frequency part is the one the generators' perturbations share across samples. The 2K probes of the batch (2 * samples * B queries) go to the oracle in forwards of `chunk`
    probes (None: one forward): a few large forwards are much cheaper than 2K small ones, and the chunk
    bounds the memory of each.
    """
    adv = [x.detach() for x in adv]  # the probes need no graph: the oracle detaches them anyway
    n = len(adv[0])
    noise = [probe_directions(samples, x, int(tile), generator) for x in adv]
    probes = [torch.cat([(x + sigma * u).clamp(0, 1), (x - sigma * u).clamp(0, 1)]).flatten(0, 1)
              for x, u in zip(adv, noise)]
    step = len(probes[0]) if chunk is None else int(chunk)
    probs = torch.cat([oracle([p[i:i + step] for p in probes])
                       for i in range(0, len(probes[0]), step)]).view(2, samples, n, -1)
    plus, minus = sample_distances(clean_probs, probs[0]), sample_distances(clean_probs, probs[1])  # (K, B)
    weight = (plus - minus) / (2 * sigma * samples)
    grads = [torch.einsum("kb,kb...->b...", weight, u) for u in noise]
    return grads, 0.5 * (plus + minus).mean(dim=0)


def fit(model: nn.Module, views: list[torch.Tensor], settings: dict, *, progress: bool = True,
        name: str = "blackbox", precision: str = "fp32") -> tuple[gan.Perturber, list[dict], int | None]:
    """Train the generators (and discriminators) against `model` on `views` (tensors on the model's
    device). Returns (generators, per-epoch history, queries).

    `queries` counts the multi-view samples submitted to the oracle: the clean assignments once
    (n) plus 2 * nes_samples per sample per step. With gradient="exact" it is None: the white-box
    twin reads the target directly, so a query count would compare unlike things. `precision` is that
    of the conv stacks of target, generators and discriminators while fitting (as `gan.fit`).
    The epochs are `gan.fit`'s: the same generator step, with A in place of the representation distances.
    """
    s = check_blackbox(settings)
    if len(views[0]) < 2:
        raise ValueError(f"the attack needs at least 2 samples to fit on, got {len(views[0])}")
    perturber, critics, opt_g, opt_d = gan.networks(views, s, int(s["residual_blocks"]))
    oracle = QueryOracle(model, protocols.batchnorm_of(s))
    n, bs, device = len(views[0]), int(s["batch_size"]), views[0].device
    noise_gen = torch.Generator(device=device).manual_seed(int(s["seed"]))
    counted = s["gradient"] == "nes"

    def queries(epoch, record):
        record["queries"] = oracle.queries if counted else None

    with gan.fitting(model, perturber, critics, precision):
        # f(x) never changes: one query per clean sample, in chunks a batch-statistics target also accepts
        clean = torch.cat([oracle([v[i:i + bs] for v in views]) for i in range(0, n, bs)])

        def step(epoch, idx):
            return _step(model, oracle, perturber, critics, opt_g, opt_d, [v[idx] for v in views], clean[idx], s,
                         noise_gen)

        # full batches only, as gan.fit (a batch-statistics target needs n > 1)
        history = run_epochs(step, n, bs, int(s["epochs"]), seed=int(s["seed"]), device=device, label=f"attack {name}",
                             fix=gan.LOWER_LR, progress=progress, end=queries, show={"adv": "adv", "d": "d_total"})
    return perturber, history, oracle.queries if counted else None


def _step(model, oracle, perturber, critics, opt_g, opt_d, views, clean, s, noise_gen) -> dict[str, torch.Tensor]:
    """`gan.generator_step` with A = mean_i 0.5 ||f(x_i) - f(x~_i)||^2 as its adversarial term."""

    def assignments(adv):
        # A is a mean over the batch, so beta means the same thing whatever the batch size
        if s["gradient"] == "exact":
            with protocols.frozen_target(model, protocols.batchnorm_of(s)):
                value = sample_distances(clean, model(adv).probs).mean()
            return value, value, {"adv": value}
        grads, distances = nes_gradient(oracle, clean, adv, int(s["nes_samples"]), float(s["nes_sigma"]), noise_gen,
                                        int(s["query_chunk"]), int(s["nes_tile"]))
        # d(surrogate)/d(x~_i) = g_i / B = the estimated dA/dx~_i: the generators get the NES gradient
        surrogate = sum((g * a).flatten(1).sum(dim=1) for g, a in zip(grads, adv)).mean()
        value = distances.mean()
        return surrogate, value, {"adv": value}

    return gan.generator_step(perturber, critics, opt_g, opt_d, views, s, assignments)
