"""Transfer attacks: generators trained against one model (the surrogate) applied unchanged to others.

Chhabra et al. (2022) ask whether adversarial samples crafted for one clustering model fool another;
here every surrogate's generator perturbs the evaluation samples once, and every target model clusters
those perturbed samples. The diagonal is the ordinary white-box attack. Generators and targets meet
under one evaluation protocol (`robustmvc.protocols`): the one the generators were fitted under, which also
sets how the targets' BatchNorm normalises and which samples are scored (strict: those the surrogate's
generators were not fitted on).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from robustmvc import protocols
from robustmvc.attacks import gan
from robustmvc.metrics import clustering_scores


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
    chunk = int(batch_size) if protocols.batchnorm_of({"protocol": protocol}) == "batch" else None
    rows = []
    for surrogate, perturber in perturbers.items():
        positions = (scored or {}).get(surrogate, np.arange(len(labels)))
        index = torch.as_tensor(positions, device=views[0].device)
        x = [v[index] for v in views]
        adv = perturber.eval().perturb(x)
        for target, model in targets.items():
            with protocols.frozen_target(model, protocols.batchnorm_of({"protocol": protocol})), torch.no_grad():
                clean = clustering_scores(labels[positions], protocols.predict(model, x, chunk, seed).cpu().numpy())
                attacked = clustering_scores(labels[positions], protocols.predict(model, adv, chunk, seed + 1).cpu().numpy())
            rows.append({"surrogate": surrogate, "target": target, "protocol": protocol, "n_eval": len(positions),
                         **{f"pre_{k}": v for k, v in clean.items()},
                         **{f"post_{k}": v for k, v in attacked.items()}})
    return pd.DataFrame(rows)
