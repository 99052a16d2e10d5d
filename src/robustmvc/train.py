"""One training loop for every model.

A model plugs in through optional methods, never through its name:
- `make_optimizers(lr) -> dict[str, Optimizer]` when it needs several optimisers or learning rates
  (default: one Adam over all parameters);
- `train_step(views, optimizers, phase) -> dict[str, Tensor]` when it steps its own optimisers,
  e.g. an alternating discriminator update (default: sum of `loss()` terms, one step);
- `pretrain_loss(views, out)`: used instead of `loss()` for the first `pretrain_epochs` epochs;
- `start_epoch(epoch, phase, train_views)`: per-epoch bookkeeping (e.g. weights recomputed per phase).
A `loss_fn(model, views, out) -> terms` argument replaces `model.loss` (how defenses add terms).
"""
from __future__ import annotations

from pathlib import Path

import torch

from robustmvc import registry
from robustmvc.adam import Adam
from robustmvc.device import resolve_precision, seed_everything, set_precision, to_tensors
from robustmvc.files import load_module_file, save_module
from robustmvc.loop import run_epochs


def _default_step(model, views, optimizers, phase, loss_fn):
    out = model(views)
    if phase == "pretrain":
        terms = model.pretrain_loss(views, out)
    else:
        terms = (loss_fn or (lambda m, v, o: m.loss(v, o)))(model, views, out)
    total = sum(terms.values())
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    total.backward()
    for opt in optimizers.values():
        opt.step()
    return terms


def train(model: torch.nn.Module, views, cfg: dict, *, name: str = "model", loss_fn=None,
          device: torch.device | None = None, progress: bool = True, precision: str = "fp32") -> list[dict]:
    """Train in place; returns the history: per epoch, the mean of each loss term and the seconds.

    `precision` (fp32, bf16 or auto; `device.set_precision`) is that of the conv stacks while training;
    the model is left in fp32. The loss terms stay on the device during an epoch and are read once at
    its end (one host-device sync per epoch, not one per term per batch), so a non-finite term stops
    training at the end of the epoch it appeared in.
    """
    device = device or next(model.parameters()).device
    seed_everything(int(cfg.get("seed", 0)))
    model.to(device).train()
    set_precision(model, resolve_precision(precision, device))
    try:
        return _epochs(model, to_tensors(views, device), cfg, name, loss_fn, device, progress)
    finally:
        set_precision(model, "fp32")


def _epochs(model, views, cfg, name, loss_fn, device, progress) -> list[dict]:
    n, bs = len(views[0]), int(cfg["batch_size"])
    if n < 2 * bs and n < 4:
        raise ValueError(f"{n} training samples is too few for batch size {bs}")
    optimizers = (model.make_optimizers(cfg["lr"]) if hasattr(model, "make_optimizers")
                  else {"adam": Adam(model.parameters(), lr=cfg["lr"])})
    pre = int(cfg.get("pretrain_epochs", 0) or 0) if hasattr(model, "pretrain_loss") else 0

    def phase(epoch):
        return "pretrain" if epoch < pre else "main"

    def start(epoch):
        if hasattr(model, "start_epoch"):
            model.start_epoch(epoch, phase(epoch), views)
        return {"phase": phase(epoch)}

    def step(epoch, idx):
        batch = [v[idx] for v in views]
        if hasattr(model, "train_step"):
            return model.train_step(batch, optimizers, phase(epoch))
        return _default_step(model, batch, optimizers, phase(epoch), loss_fn)

    def total(epoch, record):
        record["total"] = sum(record.values())

    # drop the last incomplete batch (as the reference code does): DDC needs n >= 2 per batch
    return run_epochs(step, n, bs, pre + int(cfg["epochs"]), seed=int(cfg.get("seed", 0)), device=device,
                      label=f"model {name}", fix="lower the learning rate or check the data", progress=progress,
                      start=start, end=total, show={"loss": "total"})


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict) -> None:
    """state_dict + the plain-data description needed to rebuild the model; written whole or not at all."""
    save_module(path, model, meta)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """A trained model and its meta from a `save_checkpoint` file; anything else (an attacker's
    generators, a file missing meta keys, weights that do not fit the model) is one error."""
    hint = "train it first with `python -m robustmvc train --data ... --model ... --out ...`"
    ckpt = load_module_file(path, device, hint)
    meta = ckpt["meta"]
    if "attack" in meta or "eps" in meta or "kind" in meta:
        raise ValueError(f"{path} holds an attacker's generators (attack --generator-out), not a trained model; "
                         "pass the checkpoint written by `train --out`")
    missing = [k for k in ("model", "view_shapes", "n_clusters", "settings") if k not in meta]
    if missing:
        raise ValueError(f"{path} is not a model checkpoint (its meta lacks {', '.join(missing)}); {hint}")
    model = registry.build(meta["model"], [tuple(s) for s in meta["view_shapes"]], meta["n_clusters"],
                         **meta["settings"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise ValueError(f"{path}: its weights do not fit a {meta['model']} model ({first}); the file is damaged, "
                         f"{hint}") from None
    return model.to(device).eval(), meta
