"""L-infinity projected gradient ascent (PGD, Madry et al. 2018) on any differentiable objective
of the model interface.

Used here as an evaluation attack (maximise the change of the soft cluster assignments) and,
later, by AR-DMVC adversarial training (objective = the model's contrastive loss; docs/ARCHITECTURE.md,
section 6: random start, 10 steps of 0.02, eps 0.2).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch
from torch import nn

from robustmvc.device import precision_of, resolve_precision
from robustmvc.models.blocks import evaluating, frozen_parameters

# objective(model, clean_views, adversarial_views) -> scalar to maximise
Objective = Callable[[nn.Module, list[torch.Tensor], list[torch.Tensor]], torch.Tensor]


def pgd(model: nn.Module, views: Sequence[torch.Tensor], objective: Objective, eps: float, step: float,
        steps: int, random_start: bool = True, views_to_attack: Sequence[int] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        keep_mode: bool = False) -> list[torch.Tensor]:
    """Adversarial views within the L-infinity ball of radius `eps` around `views` and inside [0, 1].

    Each step moves the attacked views by `step` along the sign of the objective's gradient, then
    projects onto the ball and the box. The model runs in eval mode during the search (its mode is
    restored afterwards) with its parameters frozen (`frozen_parameters`): only the inputs get
    gradients, autograd spends nothing on the weights, and the parameters, their `.grad` and the
    BatchNorm running statistics are left as they were. Views not in `views_to_attack` stay clean.
    Returns detached tensors. `keep_mode=True` searches in the model's current mode instead (a model
    in train mode then updates its BatchNorm running statistics at every step, as the public
    AR-DMVC code does during adversarial training). A list of `generator`s searches a stack of seeds
    (`stack.py`): views with a leading seed dimension, each seed's random start from its own generator.
    """
    if eps < 0 or step < 0 or steps < 0:
        raise ValueError(f"PGD needs eps, step, steps >= 0; got {eps}, {step}, {steps}")
    clean = CleanViews(v.detach() for v in views)
    attacked = list(range(len(clean))) if views_to_attack is None else sorted(set(views_to_attack))
    if any(not 0 <= v < len(clean) for v in attacked):
        raise ValueError(f"views_to_attack {list(views_to_attack)} out of range for {len(clean)} views")
    lower = [(x - eps).clamp(0.0, 1.0) for x in clean]
    upper = [(x + eps).clamp(0.0, 1.0) for x in clean]
    adv = [x.clone() for x in clean]
    if random_start:
        generator = ([on_device(g, clean[0].device) for g in generator] if isinstance(generator, list)
                     else on_device(generator, clean[0].device))
        for v in attacked:
            noise = uniform_like(clean[v], generator)
            adv[v] = torch.minimum(torch.maximum(clean[v] + (2 * noise - 1) * eps, lower[v]), upper[v])
    with (contextlib.nullcontext() if keep_mode else evaluating(model)), frozen_parameters(model), \
            torch.enable_grad():
        for _ in range(int(steps)):
            for v in attacked:
                adv[v] = adv[v].detach().requires_grad_(True)
            value = objective(model, clean, adv)
            # a view the objective does not use gets no gradient and keeps its random start
            grads = torch.autograd.grad(value, [adv[v] for v in attacked], allow_unused=True)
            with torch.no_grad():
                for v, g in zip(attacked, grads):
                    if g is None:
                        continue
                    adv[v] = torch.minimum(torch.maximum(adv[v] + step * g.sign(), lower[v]), upper[v])
    return [a.detach() for a in adv]


def uniform_like(x: torch.Tensor, generator: torch.Generator | list | None) -> torch.Tensor:
    """U[0, 1) noise of x's shape. A list of generators is a stack of seeds (`stack.py`: x has a leading
    seed dimension): each seed's slice is drawn from its own generator, as that seed's lone search draws it."""
    if isinstance(generator, list):
        return torch.stack([uniform_like(part, g) for part, g in zip(x, generator, strict=True)])
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def on_device(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """`generator` when it draws on `device`, else a generator on `device` seeded by one draw from it.

    The random start is then drawn where the views are: no host-to-device copy per PGD call, and the
    draw from the given generator keeps runs with the same seed the same on one device. On the CPU
    (generator and views both there) the numbers are those of `generator` itself.
    """
    if generator is None or generator.device.type == device.type:
        return generator
    if device.type == "meta":  # shapes without data (the stand-in device of the tests): nothing to draw
        return None
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator, device=generator.device))
    return torch.Generator(device=device).manual_seed(seed)


class CleanViews(list):
    """The clean views of one search, with room for the model's soft assignments on them (`clean_probs`)."""
    probs: torch.Tensor | None = None


def clean_probs(model: nn.Module, clean: list[torch.Tensor]) -> torch.Tensor:
    """p(a|x) on the clean views, without gradient. A model in eval mode within one search (frozen
    parameters, fixed BatchNorm statistics) gives the same answer at every step, so it is computed once
    per search; in train mode each call runs the forward again, updating the running statistics as
    every forward in train mode does."""
    if model.training or not isinstance(clean, CleanViews):
        with torch.no_grad():
            return model(clean).probs
    if clean.probs is None:
        with torch.no_grad():
            clean.probs = model(clean).probs
    return clean.probs


def probs_kl(model: nn.Module, clean: list[torch.Tensor], adv: list[torch.Tensor]) -> torch.Tensor:
    """sum_i KL(p(a|x_i) || p(a~|x~_i)): how far the soft assignments move (the evaluation objective)."""
    p = clean_probs(model, clean).clamp_min(1e-8)
    q = model(adv).probs.clamp_min(1e-8)
    return (p * (p.log() - q.log())).sum()


def probs_sq(model: nn.Module, clean: list[torch.Tensor], adv: list[torch.Tensor]) -> torch.Tensor:
    """sum_i ||p(a|x_i) - p(a~|x~_i)||^2 (as Chhabra et al.'s black-box attack scores the change)."""
    return (clean_probs(model, clean) - model(adv).probs).pow(2).sum()


OBJECTIVES: dict[str, Objective] = {"kl": probs_kl, "sq": probs_sq}  # the names of attack_settings.PGD_OBJECTIVES


@torch.no_grad()
def pgd_set(model: nn.Module, views: list[torch.Tensor], objective: Objective, eps: float, step: float,
            steps: int, batch_size: int = 100, random_start: bool = True,
            views_to_attack: Sequence[int] | None = None, seed: int = 0, precision: str = "fp32") -> list[torch.Tensor]:
    """PGD over a whole set, batch by batch (seeded random starts), with the model's conv stacks in
    `precision` during the search (`device.set_precision`; fp32 again afterwards)."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with precision_of(model, resolve_precision(precision, views[0].device)):
        out = [pgd(model, [v[i:i + batch_size] for v in views], objective, eps, step, steps,
                   random_start, views_to_attack, gen) for i in range(0, len(views[0]), batch_size)]
    return [torch.cat([o[v] for o in out]) for v in range(len(views))]
