"""Seeds side by side: S independent runs of one model, or of the paper's attack, as one module and one step.

Why: at batch 100 one seed's step is a few hundred small kernels (734 per CoMVC step, 2,310 per
AR-DMVC-AM step); on a GPU such a step is bound by kernel launches, not arithmetic, so S seeds in one
step cost about what one costs. On a CPU the arithmetic dominates and stacking gains little
(`benchmarks/seeds.py` measures both).

How (torch.func, the model-ensembling recipe): the S lone modules, each built exactly as its lone run
builds it, are stacked tensor by tensor along a new first dimension (`stack_module_state`), and the
first of them, the skeleton, computes every seed at once under `vmap(functional_call)`: its
convolutions become grouped ones, its BatchNorm normalises each seed's own batch and updates that
seed's slice of the running statistics. What vmap cannot hold runs outside it, on tensors with a seed
dimension: the backward pass (of the sum of the S losses, so each seed's parameters get their own
gradient), the optimiser (Adam is elementwise: one Adam over the stacked tensors is S Adams), PGD's
input gradients and random starts (one generator per seed), and the data order (the loop's generator
per seed). Seed s of a stack is therefore the lone run of seed s up to the rounding of the batched
kernels (`tests/test_stack.py`).

`train_seeds` trains seeds of a model; `fit_gan_seeds` fits the paper's attack against S targets and
`pgd_set_seeds` runs the PGD attack against them.
A model whose registry entry does not stack is trained by the lone trainer once per seed, in the
same call, and so is every model off CUDA unless a stack is asked for: on a 2-core AMD EPYC a stack
measured slower than its seeds one after another.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from robustmvc import protocols, registry
from robustmvc.adam import Adam
from robustmvc.attack_settings import check_gan
from robustmvc.attacks import gan
from robustmvc.attacks.pgd import pgd
from robustmvc.device import resolve_precision, seed_everything, set_precision, to_tensors
from robustmvc.loop import run_epochs
from robustmvc.models.blocks import ModelOutput
from robustmvc.train import train


class _Bound(nn.Module):
    """Calls fn(module, *args) with the module's tensors swapped by `functional_call`: a model's loss
    reads its own parameters (CoMVC's fusion weights), so it must run inside the swap too."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, fn, *args):
        return fn(self.module, *args)


class Stacked:
    """S modules of one architecture as one: `params` and `buffers` hold each tensor stacked (S, ...),
    computed through the first module, whose mode (train, eval) and precision are the stack's.

    `frozen` stacks parameters without gradient (an attack's target)."""

    def __init__(self, modules: list[nn.Module], frozen: bool = False):
        self.module, self.size = modules[0], len(modules)
        self.params, self.buffers = stack_module_state(list(modules))
        if frozen:
            self.params = {k: v.detach() for k, v in self.params.items()}
        self._bound = _Bound(self.module)

    def __call__(self, fn, *args, params: dict | None = None):
        """fn(module, *args) for every seed at once. Every tensor in `args` (lists, tuples and dicts of them
        too) has a leading seed dimension, and so has every tensor fn returns. `params` replaces the
        stacked parameters (detached ones: a search over inputs)."""
        params = self.params if params is None else params
        # only the buffers the module holds now: the paper protocol hides BatchNorm's running statistics
        # (`protocols.frozen_target`) so that it normalises by the batch
        live = {name for name, _ in self.module.named_buffers()}
        tensors = ({f"module.{k}": v for k, v in params.items()},
                   {f"module.{k}": v for k, v in self.buffers.items() if k in live})

        def one(p, b, *a):
            return functional_call(self._bound, (p, b), (fn, *a))

        return vmap(one)(*tensors, *args)

    def detached(self) -> dict:
        return {k: v.detach() for k, v in self.params.items()}

    def unstack(self, modules: list[nn.Module]) -> list[nn.Module]:
        """Seed s's slice of every tensor copied into modules[s] (the modules the stack was built from)."""
        with torch.no_grad():
            for s, module in enumerate(modules):
                for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
                    source = self.params[name] if name in self.params else self.buffers[name]
                    tensor.copy_(source[s])
        return modules


def _flat(out: ModelOutput) -> tuple:
    """A ModelOutput as the nested lists vmap maps over (and `ModelOutput(*flat)` back)."""
    return out.z, out.h, out.probs, out.extra


def stacks(name: str, settings: dict) -> bool:
    """Whether seeds of model `name` with `settings` train side by side (`registry.Entry.stacks`; a
    defense's backbone must stack too)."""
    backbone = settings.get("backbone", "comvc") if registry.entry(name).defense else name
    return registry.entry(name).stacks and registry.entry(backbone).stacks


# ---------------------------------------------------------------------------------------------
# Training


MECHANISMS = ("auto", "stack", "loop")


def train_seeds(name: str, view_shapes, n_clusters: int, settings: dict, views, cfg: dict, seeds: list[int], *,
                device: torch.device | None = None, progress: bool = True, precision: str = "fp32",
                mechanism: str = "auto") -> list[tuple[nn.Module, list[dict]]]:
    """Seeds `seeds` of model `name` trained on `views` with the training settings `cfg` (its `seed` is
    replaced by each of them): per seed, the trained model and its history, what `runs.train_run` gets
    from the lone trainer for that seed (`train.train`): same initialisation, same batches, the same
    parameters up to rounding. A stacked history's `seconds` are those of the stack's epoch.

    `mechanism`: `stack` (one module, one step), `loop` (the lone trainer, seed after seed) or `auto`:
    a stack on CUDA, a loop elsewhere, where stacking measured slower (`benchmarks/seeds.py`). A model
    that does not stack is always looped."""
    if mechanism not in MECHANISMS:
        raise ValueError(f"mechanism {mechanism!r} is not one of {', '.join(MECHANISMS)}")
    device = torch.device(device or "cpu")
    if mechanism == "auto":
        mechanism = "stack" if device.type == "cuda" else "loop"
    models = []
    for seed in seeds:
        seed_everything(int(seed))  # as runs.train_run builds a model
        models.append(registry.build(name, view_shapes, n_clusters, **settings).to(device))
    if mechanism == "loop" or not stacks(name, settings):
        return [(model, train(model, views, {**cfg, "seed": int(seed)}, name=name, device=device,
                              progress=progress, precision=precision)) for model, seed in zip(models, seeds)]
    for model in models:
        model.train()
    stack = Stacked(models)
    set_precision(stack.module, resolve_precision(precision, device))
    try:
        histories = _epochs(stack, models, to_tensors(views, device), cfg, [int(s) for s in seeds], name,
                            device, progress)
    finally:
        set_precision(stack.module, "fp32")
    return list(zip(stack.unstack(models), histories))


def _epochs(stack: Stacked, models, views, cfg, seeds, name, device, progress) -> list[list[dict]]:
    n, bs = len(views[0]), int(cfg["batch_size"])
    if n < 2 * bs and n < 4:
        raise ValueError(f"{n} training samples is too few for batch size {bs}")
    optimizer = Adam(stack.params.values(), lr=cfg["lr"])
    pre = int(cfg.get("pretrain_epochs", 0) or 0) if hasattr(stack.module, "pretrain_loss") else 0
    generators = [m.pgd_generator for m in models] if hasattr(stack.module, "loss_at") else None

    def phase(epoch):
        return "pretrain" if epoch < pre else "main"

    def step(epoch, idx):
        batch = [v[idx] for v in views]  # (S, batch, ...): each seed's own batch
        if phase(epoch) == "pretrain":
            terms = stack(lambda m, x: m.pretrain_loss(x, m(x)), batch)
        elif generators is None:
            terms = stack(lambda m, x: m.loss(x, m(x)), batch)
        else:  # adversarial training: x~ is searched outside the map, for every seed at once
            out = stack(lambda m, x: _flat(m(x)), batch)
            adv = adversarial_views(stack, batch, generators)
            terms = stack(lambda m, x, o, a: m.loss_at(x, ModelOutput(*o), a), batch, out, adv)
        optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).sum().backward()
        optimizer.step()
        return terms

    def total(epoch, record):
        record["total"] = sum(record.values())

    return run_epochs(step, n, bs, pre + int(cfg["epochs"]), seed=seeds, device=device,
                      label=f"model {name} x{len(seeds)} seeds", fix="lower the learning rate or check the data",
                      progress=progress, start=lambda epoch: {"phase": phase(epoch)}, end=total,
                      show={"loss": "total"})


def adversarial_views(stack: Stacked, views: list[torch.Tensor], generators: list[torch.Generator]):
    """AR-DMVC's PGD (`AdversarialTraining.adversarial_views`) for every seed of a stack at once: the input
    gradient of the sum of the seeds' objectives is each seed's own, each random start comes from its
    seed's generator, and in train mode each step updates each seed's BatchNorm statistics."""
    model = stack.module
    params = stack.detached()

    def objective(_, clean, adv):
        return stack(lambda m, c, a: m.objective(m.backbone, c, a), list(clean), adv, params=params).sum()

    return pgd(model.backbone, views, objective, model.pgd_eps, model.pgd_step, model.pgd_steps,
               random_start=True, generator=generators, keep_mode=model.pgd_batchnorm == "train")


def pgd_set_seeds(targets: list[nn.Module], views: list[torch.Tensor], objective, eps: float, step: float,
                  steps: int, seeds: list[int], batch_size: int = 100, random_start: bool = True) -> list[torch.Tensor]:
    """`pgd.pgd_set` against S targets at once: `views` hold one set per seed (S, n, ...), and seed s's
    search starts from the generator its lone `pgd_set` seeds with seeds[s]. The targets run in their
    current mode (the caller's `protocols.frozen_target`, as for the lone search) and stay unchanged; the
    adversarial views come back with the seed dimension first."""
    if len(targets) != len(seeds) or len(views[0]) != len(seeds):
        raise ValueError(f"{len(targets)} targets and {len(views[0])} view sets for {len(seeds)} seeds; "
                         "give one of each per seed")
    T = Stacked(targets, frozen=True)
    gens = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]

    def stacked(_, clean, adv):
        return T(lambda m, c, a: objective(m, c, a), list(clean), adv).sum()

    n = views[0].shape[1]
    out = [pgd(T.module, [v[:, i:i + batch_size] for v in views], stacked, eps, step, steps, random_start,
               generator=gens) for i in range(0, n, batch_size)]
    return [torch.cat([o[v] for o in out], dim=1) for v in range(len(views))]


# ---------------------------------------------------------------------------------------------
# The paper's attack


def fit_gan_seeds(targets: list[nn.Module], views: list[torch.Tensor], settings: dict, seeds: list[int], *,
                  positions: list | None = None, progress: bool = True, name: str = "attack",
                  precision: str = "fp32") -> list[tuple[gan.Perturber, list[dict]]]:
    """The paper's attack (`gan.fit`) against S targets side by side: attack s, with `settings` and seed
    seeds[s], fits its own generators and critics against targets[s] on views[positions[s]] (all of
    `views` when no positions are given; the strict protocol fits each seed on its own part, of one
    size). Returns per seed the generators and the history `gan.fit` gives; the targets are unchanged."""
    s = check_gan(settings)
    if s["eval_every"]:
        raise ValueError("a stack of attacks does not score while fitting; set the attack's eval_every to 0")
    if len(targets) != len(seeds):
        raise ValueError(f"{len(targets)} targets for {len(seeds)} seeds; give one target per seed")
    device = views[0].device
    n = len(views[0]) if positions is None else len(positions[0])
    pos = (torch.arange(n).expand(len(seeds), n) if positions is None
           else torch.as_tensor(np.stack([np.asarray(p) for p in positions]))).to(device)
    if n < 2:
        raise ValueError(f"the attack needs at least 2 samples to fit on, got {n}")
    nets = [gan.networks(views, {**s, "seed": int(seed)}) for seed in seeds]
    perturbers, critics = [net[0] for net in nets], [net[1] for net in nets]
    G, D, T = Stacked(perturbers), Stacked(critics), Stacked(targets, frozen=True)
    opt_g = Adam(G.params.values(), lr=s["lr"])
    opt_d = Adam(D.params.values(), lr=s["lr"])
    bs, batchnorm = int(s["batch_size"]), protocols.batchnorm_of(s)

    learning_rate = gan.lr_schedule(s, opt_g, opt_d)

    def forward(m, x):
        return _flat(m(x))

    with gan.fitting(T.module, G.module, D.module, precision), protocols.frozen_target(T.module, batchnorm):
        cached = None
        if batchnorm == "eval":  # running statistics: the clean representations never change
            with torch.no_grad():
                parts = [T(forward, [v[pos[:, i:i + bs]] for v in views]) for i in range(0, n, bs)]
            cached = [[torch.cat(p, dim=1) for p in zip(*(part[0] for part in parts))],
                      *(torch.cat(p, dim=1) for p in zip(*(part[1:3] for part in parts))), {}]
        rows = torch.arange(len(seeds), device=device)[:, None]

        def step(epoch, idx):
            clean = None if cached is None else [[z[rows, idx] for z in cached[0]], cached[1][rows, idx],
                                                 cached[2][rows, idx], {}]
            return _gan_step(T, G, D, opt_g, opt_d, [v[pos.gather(1, idx)] for v in views], s, clean)

        histories = run_epochs(step, n, bs, int(s["epochs"]), seed=[int(x) for x in seeds], device=device,
                               label=f"attack {name} x{len(seeds)} seeds", fix=gan.LOWER_LR, progress=progress,
                               start=learning_rate, show={"g": "g_total", "d": "d_total"})
    G.unstack(perturbers)
    D.unstack(critics)
    for perturber in perturbers:
        perturber.eval()
    return list(zip(perturbers, histories))


def _critic_loss(critics, views, adv):
    return (gan.lsgan([d(x) for d, x in zip(critics, views)], 1.0)
            + gan.lsgan([d(a.detach()) for d, a in zip(critics, adv)], 0.0))


def _gan_step(T, G, D, opt_g, opt_d, views, s, clean) -> dict[str, torch.Tensor]:
    """`gan.generator_step` with the representation distances as A (`gan._step`), every seed at once."""
    adv, deltas = G(lambda m, x: m(x), views)
    d_loss = D(_critic_loss, views, adv)
    opt_d.zero_grad(set_to_none=True)
    d_loss.sum().backward()
    opt_d.step()
    if clean is None:  # batch statistics: the clean batch's representations are the batch's own
        with torch.no_grad():
            clean = T(lambda m, x: _flat(m(x)), views)
    adv_terms = T(lambda m, a, c: gan.adversarial_terms(ModelOutput(*c), m(a), s["objective"]), adv, clean)
    pert = vmap(gan.perturbation_norm)(deltas)
    # the critics' current weights, without gradient: the generators' loss does not train them
    gan_term = D(lambda m, a: gan.lsgan([d(x) for d, x in zip(m, a)], 1.0), adv, params=D.detached())
    g_loss = s["perturb_weight"] * pert - s["beta"] * sum(adv_terms.values()) + s["gan_weight"] * gan_term
    opt_g.zero_grad(set_to_none=True)
    g_loss.sum().backward()
    opt_g.step()
    terms = {"g_total": g_loss, "d_total": d_loss, "perturbation": pert, "g_gan": gan_term, **adv_terms}
    return {k: v.detach().float() for k, v in terms.items()}
