"""The one epoch loop: training a model and fitting every learned attacker go through it.

A caller brings only its step, a function of the positions of one batch that updates what it trains
and returns its named terms. The loop owns what every such fit repeats: a seeded shuffle per epoch,
the batches, the sum of each term kept on the device (read once per epoch: no host-device sync per
step), the check that every term stayed finite, the progress bar, the log line and the history.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Callable

import torch

from robustmvc.progress import bar as progress_bar

log = logging.getLogger(__name__)

Step = Callable[[int, torch.Tensor], dict]


def run_epochs(step: Step, n: int, batch_size: int, epochs: int, *, seed: int | list[int], device, label: str,
               fix: str, progress: bool = True, full_batches: bool = True, start: Callable[[int], dict] | None = None,
               end: Callable[[int, dict], None] | None = None, show: dict[str, str] | None = None) -> list:
    """Run `epochs` passes over `n` samples; returns the history, one record per epoch.

    `step(epoch, idx)` (epoch from 0, idx a tensor of positions on `device`) takes one optimisation step
    and returns its terms (tensors or numbers). The order of each epoch comes from a CPU generator seeded
    with `seed`, so a fit is repeatable whatever else draws random numbers. `full_batches` drops the last
    incomplete batch (batch-statistics layers cannot normalise a batch of one); fewer than `batch_size`
    samples then make one batch of all of them.

    A list of S seeds runs S fits side by side (`stack.py`): each seed orders its epochs with its own
    generator, exactly as its lone fit does, `idx` is (S, batch) and each term has one value per seed;
    the result is then one history per seed, whose `seconds` are those of the stack's epoch.

    A record holds the mean of each term over the epoch's batches, then what `end(epoch, record)` adds
    (it sees the means only, after the finite check: totals, scores), then `epoch` (from 1), the fields
    `start(epoch)` returned (called before the epoch's clock starts: a phase, a learning rate) and the
    epoch's `seconds`. A term that is not finite stops the fit with one sentence naming `label` (and the
    seed, in a stack), the term that went first, the epoch and `fix`. `show` maps progress-bar labels to
    record keys.
    """
    stacked = isinstance(seed, (list, tuple))
    seeds = [int(s) for s in seed] if stacked else [int(seed)]
    gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    last = n - batch_size + 1 if full_batches and n >= batch_size else n
    histories: list[list[dict]] = [[] for _ in seeds]
    bar = progress_bar(range(epochs), desc=label, disable=not progress, leave=False, mininterval=2)
    for epoch in bar:
        fields = start(epoch) if start else {}
        clock, sums, first_bad, batches = time.perf_counter(), {}, {}, 0
        order = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        if not stacked:
            order = order[0]
        for i in range(0, last, batch_size):
            for key, value in step(epoch, order[..., i:i + batch_size]).items():
                value = value.detach().float() if torch.is_tensor(value) else torch.tensor(float(value), device=device)
                value = value.reshape(-1).expand(len(seeds))  # one value per seed
                # the first batch where the term was not finite (inf while it stayed finite), kept on the device
                bad = torch.where(torch.isfinite(value), math.inf, float(batches))
                sums[key], first_bad[key] = ((sums[key] + value, torch.minimum(first_bad[key], bad)) if key in sums
                                             else (value, bad))
            batches += 1
        means, firsts = torch.stack([torch.stack(list(sums.values())), torch.stack(list(first_bad.values()))]
                                    ).cpu().tolist()  # the epoch's one host-device sync
        seconds = time.perf_counter() - clock
        for s, history in enumerate(histories):
            record = {k: v[s] / batches for k, v in zip(sums, means)}
            where = f"{label} (seed {seeds[s]})" if stacked else label
            if not all(math.isfinite(v[s]) for v in means):
                # name the term that went first: once the weights are NaN every term follows
                own = [f[s] for f in firsts]
                key = list(sums)[own.index(min(own))]
                context = "".join(f" ({v})" for v in fields.values() if isinstance(v, str))
                raise FloatingPointError(f"{where}: loss term {key!r} became {record[key]} at epoch {epoch + 1}"
                                         f"{context}; {fix}")
            if end:
                end(epoch, record)
            record.update(epoch=epoch + 1, **fields, seconds=seconds)
            history.append(record)
            log.info("%s epoch %d/%d: %s", where, epoch + 1, epochs,
                     " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
                              if isinstance(v, (float, str))))
        bar.set_postfix({name: f"{histories[0][-1][key]:.4g}" for name, key in (show or {}).items()})
    return histories if stacked else histories[0]
