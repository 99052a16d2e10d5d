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

import logging
import math
import time
from pathlib import Path

import torch

from robustmvc import config as config_mod
from robustmvc import data as data_mod
from robustmvc import registry
from robustmvc.device import resolve_device, resolve_precision, seed_everything, set_precision, to_tensors
from robustmvc.evaluate import evaluate
from robustmvc.files import load_module_file, save_module, write_json
from robustmvc.progress import bar as progress_bar

log = logging.getLogger(__name__)


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
                  else {"adam": torch.optim.Adam(model.parameters(), lr=cfg["lr"])})
    pre = int(cfg.get("pretrain_epochs", 0) or 0) if hasattr(model, "pretrain_loss") else 0
    epochs = pre + int(cfg["epochs"])
    gen = torch.Generator(device="cpu").manual_seed(int(cfg.get("seed", 0)))
    history = []
    bar = progress_bar(range(epochs), desc=f"train {name}", disable=not progress, mininterval=2)
    for epoch in bar:
        phase = "pretrain" if epoch < pre else "main"
        if hasattr(model, "start_epoch"):
            model.start_epoch(epoch, phase, views)
        start, sums, first_bad, batches = time.perf_counter(), {}, {}, 0
        order = torch.randperm(n, generator=gen).to(device)
        # drop the last incomplete batch (as the reference code does): DDC needs n >= 2 per batch
        for i in range(0, n - bs + 1 if n >= bs else 1, bs):
            idx = order[i:i + bs]
            batch = [v[idx] for v in views]
            if hasattr(model, "train_step"):
                terms = model.train_step(batch, optimizers, phase)
            else:
                terms = _default_step(model, batch, optimizers, phase, loss_fn)
            for key, value in terms.items():
                value = value.detach().float() if torch.is_tensor(value) else torch.tensor(float(value), device=device)
                # the first batch where the term was not finite (inf while it stayed finite), kept on the device
                bad = torch.where(torch.isfinite(value), math.inf, float(batches))
                sums[key], first_bad[key] = ((sums[key] + value, torch.minimum(first_bad[key], bad)) if key in sums
                                             else (value, bad))
            batches += 1
        means, firsts = torch.stack([torch.stack(list(sums.values())), torch.stack(list(first_bad.values()))]
                                    ).cpu().tolist()  # the epoch's one host-device sync
        record = {k: v / batches for k, v in zip(sums, means)}
        if not all(math.isfinite(v) for v in means):
            # name the term that went first: once the weights are NaN every term follows
            key = list(sums)[firsts.index(min(firsts))]
            raise FloatingPointError(f"model {name}: loss term {key!r} became {record[key]} at epoch "
                                     f"{epoch + 1} ({phase}); lower the learning rate or check the data")
        record.update(total=sum(record.values()), epoch=epoch + 1, phase=phase,
                      seconds=time.perf_counter() - start)
        history.append(record)
        bar.set_postfix(loss=f"{record['total']:.4f}")
        log.info("%s epoch %d/%d (%s): loss %.4f, %.1fs", name, epoch + 1, epochs, phase,
                 record["total"], record["seconds"])
    return history


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


def train_run(data_path: str | Path, model_name: str, seed: int, checkpoint: str | Path,
              cfg: dict | None = None, metrics: str | Path | None = None, device: str = "auto",
              epochs: int | None = None, overrides: dict | None = None, progress: bool = True) -> dict:
    """One training run as the workflow does it: resolve settings for (model, dataset), train on the
    train half, save the checkpoint, score the eval half (and write the metrics JSON if asked).
    The config's `precision` (default fp32) and `deterministic` (default false) apply.

    `overrides` replace single resolved values (training keys go to training, the rest to the model).
    Returns a dict with the model, its settings, history, seconds and clean scores.
    """
    ds = data_mod.load(data_path)
    dataset = ds.meta.get("dataset")
    settings, tcfg = config_mod.resolve(cfg or {}, model_name, dataset)
    for key, value in (overrides or {}).items():
        (tcfg if key in config_mod.TRAIN_KEYS else settings)[key] = value
    if epochs is not None:
        tcfg["epochs"] = epochs
    tcfg["seed"] = seed
    cfg = cfg or {}
    dev = resolve_device(device, bool(cfg.get("deterministic", False)))
    precision = resolve_precision(cfg.get("precision", "fp32"), dev)
    seed_everything(seed)
    model = registry.build(model_name, ds.view_shapes, ds.n_clusters, **settings).to(dev)
    start = time.perf_counter()
    history = train(model, ds.part("train")[0], tcfg, name=model_name, device=dev, progress=progress,
                    precision=precision)
    seconds = time.perf_counter() - start
    save_checkpoint(checkpoint, model, {
        "model": model_name, "settings": settings, "train": tcfg, "view_shapes": ds.view_shapes,
        "n_clusters": ds.n_clusters, "dataset": dataset, "seed": seed, "history": history,
        "train_seconds": seconds, "device": str(dev), "precision": precision})
    scores = evaluate(model, *ds.part("eval"), device=dev)
    if metrics:
        write_json(metrics, {"dataset": dataset, "model": model_name, "seed": seed, "n_eval": int(len(ds.eval_idx)),
                             "train_seconds": seconds, "precision": precision, "settings": settings, "train": tcfg,
                             "clean": scores})
    return {"model": model, "dataset": dataset, "settings": settings, "train": tcfg, "history": history,
            "seconds": seconds, "samples_per_second": len(ds.train_idx) * len(history) / seconds,
            "device": dev, "clean": scores}
