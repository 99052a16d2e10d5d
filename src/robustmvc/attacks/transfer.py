"""Transfer attacks: generators trained against one model (the surrogate) applied unchanged to others.

Chhabra et al. (2022) ask whether adversarial samples crafted for one clustering model fool another;
here every surrogate's generator perturbs the same evaluation samples once, and every target model
clusters those perturbed samples. The diagonal is the ordinary white-box attack.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from robustmvc.attacks.gan import load_perturber
from robustmvc.metrics import clustering_scores


def transfer_scores(perturbers: dict, targets: dict, views, labels) -> pd.DataFrame:
    """One row per (surrogate, target): the target's scores on clean and on surrogate-perturbed samples.

    `perturbers` maps a surrogate name to its generators (`gan.Perturber`), `targets` a target name to a
    model; `views` are tensors on the models' device. Generators are used in eval mode and never updated.
    """
    rows = []
    with torch.no_grad():
        clean = {name: clustering_scores(labels, model.eval().predict(views).cpu().numpy())
                 for name, model in targets.items()}
        for surrogate, perturber in perturbers.items():
            adv = perturber.eval().perturb(views)
            for target, model in targets.items():
                attacked = clustering_scores(labels, model.predict(adv).cpu().numpy())
                rows.append({"surrogate": surrogate, "target": target,
                             **{f"pre_{k}": v for k, v in clean[target].items()},
                             **{f"post_{k}": v for k, v in attacked.items()}})
    return pd.DataFrame(rows)


def transfer_files(data: str | Path, generators: dict[str, str | Path], checkpoints: dict[str, str | Path],
                   device: str = "auto") -> pd.DataFrame:
    """`transfer_scores` from files: the dataset's eval half, generators and checkpoints by model name."""
    from robustmvc import data as data_mod
    from robustmvc import train

    dev = train.resolve_device(device)
    ds = data_mod.load(data)
    views, labels = ds.part("eval")
    x = train.to_tensors(views, dev)
    perturbers, surrogate_seeds = {}, {}
    for name, path in generators.items():
        perturber, meta = load_perturber(path, dev)
        surrogate_seeds[name] = meta.get("seed")
        if [list(s) for s in meta["view_shapes"]] != [list(s) for s in ds.view_shapes]:
            raise ValueError(f"generator {path} was trained on views {meta['view_shapes']}, {data} has "
                             f"{ds.view_shapes}; use generators trained on this dataset")
        perturbers[name] = perturber
    loaded = {name: train.load_checkpoint(path, dev) for name, path in checkpoints.items()}
    table = transfer_scores(perturbers, {name: model for name, (model, _) in loaded.items()}, x, labels)
    table.insert(0, "dataset", ds.meta.get("dataset"))
    # the seeds let tables.transfer_tidy pair a row with the target's other attacks of the same seed
    table.insert(3, "seed", table["target"].map(lambda t: loaded[t][1].get("seed")))
    table.insert(4, "surrogate_seed", table["surrogate"].map(surrogate_seeds))
    return table
