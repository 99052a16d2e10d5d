"""Transfer attacks: generators trained against one model (the surrogate) applied unchanged to others.

Chhabra et al. (2022) ask whether adversarial samples crafted for one clustering model fool another;
here every surrogate's generator perturbs the evaluation samples once, and every target model clusters
those perturbed samples. The diagonal is the ordinary white-box attack. Generators and targets meet
under one evaluation protocol (`gan.PROTOCOLS`): the one the generators were fitted under, which also
sets how the targets' BatchNorm normalises and which samples are scored (strict: those the surrogate's
generators were not fitted on).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from robustmvc import data as data_mod
from robustmvc.attacks import gan
from robustmvc.attacks.gan import load_perturber
from robustmvc.attacks.run import split
from robustmvc.device import resolve_device, to_tensors
from robustmvc.metrics import clustering_scores
from robustmvc.train import load_checkpoint


def transfer_scores(perturbers: dict, targets: dict, views, labels, protocol: str = "paper",
                    batch_size: int = 100, scored: dict | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per (surrogate, target): the target's scores on clean and on surrogate-perturbed samples.

    `perturbers` maps a surrogate name to its generators (`gan.Perturber`), `targets` a target name to a
    model; `views` are tensors on the models' device. `scored` maps a surrogate to the positions scored
    against it (default: all). Under the paper protocol the targets predict in shuffled batches of
    `batch_size` with batch-statistics BatchNorm; under strict, on their running statistics.
    Generators are used in eval mode and never updated.
    """
    labels = np.asarray(labels)
    chunk = int(batch_size) if gan.batchnorm_of({"protocol": protocol}) == "batch" else None
    rows = []
    for surrogate, perturber in perturbers.items():
        positions = (scored or {}).get(surrogate, np.arange(len(labels)))
        index = torch.as_tensor(positions, device=views[0].device)
        x = [v[index] for v in views]
        adv = perturber.eval().perturb(x)
        for target, model in targets.items():
            with gan.frozen_target(model, gan.batchnorm_of({"protocol": protocol})), torch.no_grad():
                clean = clustering_scores(labels[positions], gan.predict(model, x, chunk, seed).cpu().numpy())
                attacked = clustering_scores(labels[positions], gan.predict(model, adv, chunk, seed + 1).cpu().numpy())
            rows.append({"surrogate": surrogate, "target": target, "protocol": protocol, "n_eval": len(positions),
                         **{f"pre_{k}": v for k, v in clean.items()},
                         **{f"post_{k}": v for k, v in attacked.items()}})
    return pd.DataFrame(rows)


def transfer_files(data: str | Path, generators: dict[str, str | Path], checkpoints: dict[str, str | Path],
                   device: str = "auto", protocol: str = "paper") -> pd.DataFrame:
    """`transfer_scores` from files: the dataset's eval half, generators and checkpoints by model name.
    Every generator must have been fitted under `protocol`."""
    gan.check_protocol(protocol)
    dev = resolve_device(device)
    ds = data_mod.load(data)
    views, labels = ds.part("eval")
    x = to_tensors(views, dev)
    perturbers, surrogate_seeds, scored, batch_sizes = {}, {}, {}, set()
    for name, path in generators.items():
        perturber, meta = load_perturber(path, dev)
        surrogate_seeds[name] = meta.get("seed")
        if [list(s) for s in meta["view_shapes"]] != [list(s) for s in ds.view_shapes]:
            raise ValueError(f"generator {path} was trained on views {meta['view_shapes']}, {data} has "
                             f"{ds.view_shapes}; use generators trained on this dataset")
        settings = meta.get("settings") or {}
        fitted = gan.protocol_name(settings)
        if fitted != protocol:
            raise ValueError(f"generator {path} was fitted under the {fitted!r} protocol, not {protocol!r}; "
                             f"pass --protocol {fitted} or use generators fitted under {protocol}")
        perturbers[name] = perturber
        scored[name] = split(len(labels), protocol, settings.get("heldout_fraction", 0.5), settings.get("seed", 0))[1]
        batch_sizes.add(int(settings.get("batch_size", 100)))
    loaded = {name: load_checkpoint(path, dev) for name, path in checkpoints.items()}
    targets = {name: model for name, (model, _) in loaded.items()}
    table = transfer_scores(perturbers, targets, x, labels, protocol, min(batch_sizes, default=100), scored)
    table.insert(0, "dataset", ds.meta.get("dataset"))
    # the seeds let tables.transfer_tidy pair a row with the target's other attacks of the same seed
    table.insert(3, "seed", table["target"].map(lambda t: loaded[t][1].get("seed")))
    table.insert(4, "surrogate_seed", table["surrogate"].map(surrogate_seeds))
    return table
