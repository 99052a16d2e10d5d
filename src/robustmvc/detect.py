"""Unsupervised detectors of adversarial inputs, the natural defense Chhabra et al. (2022) test.

A detector is fitted on clean training samples only (the defender has no attacked samples) and
gives every sample an anomaly score; its AUC at telling clean from attacked evaluation samples says
how visible an attack is. 0.5 means the attacked samples look like clean ones.

- `iforest-h`: isolation forest on the model's consensus representation h;
- `pca-input`: reconstruction error of a PCA (a linear autoencoder) fitted on the raw views.
"""
from __future__ import annotations

import numpy as np
import torch

from robustmvc.models.blocks import batched_forward

DETECTORS = ("iforest-h", "pca-input")
PCA_COMPONENTS = 50  # enough to reconstruct clean digits and garments closely (~80% of the pixel variance)


def space(kind: str) -> str:
    """Where a detector looks: `h` (the representation) or `input` (the raw views)."""
    if kind not in DETECTORS:
        raise ValueError(f"unknown detector {kind!r}; choose from {', '.join(DETECTORS)}")
    return kind.rsplit("-", 1)[1]


def representation(model, views) -> np.ndarray:
    """h of every sample, in eval mode, as a float64 array."""
    device = next(model.parameters()).device
    x = [torch.as_tensor(v, dtype=torch.float32, device=device) for v in views]
    return batched_forward(model, x).h.flatten(1).double().cpu().numpy()


def flat_inputs(views) -> np.ndarray:
    return np.concatenate([np.asarray(v, dtype=np.float64).reshape(len(v), -1) for v in views], axis=1)


def fit(kind: str, train_features: np.ndarray, seed: int = 0):
    """A scorer `features -> anomaly scores` (higher = more anomalous) fitted on clean features."""
    # scikit-learn here, not at module level: `runs` imports this module, and every training and attack job
    # would pay ~2 s of CPU to load what only the detection jobs use (robustmvc.metrics says the same)
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest

    if space(kind) == "h":
        forest = IsolationForest(n_estimators=200, random_state=seed).fit(train_features)
        return lambda f: -forest.score_samples(f)
    pca = PCA(n_components=min(PCA_COMPONENTS, *train_features.shape), random_state=seed).fit(train_features)
    return lambda f: ((f - pca.inverse_transform(pca.transform(f))) ** 2).sum(1)


def auc(scorer, clean: np.ndarray, attacked: np.ndarray) -> float:
    """AUC of the scores at ranking attacked samples above clean ones."""
    from sklearn.metrics import roc_auc_score  # as in `fit`

    scores = np.concatenate([scorer(clean), scorer(attacked)])
    truth = np.concatenate([np.zeros(len(clean)), np.ones(len(attacked))])
    return float(roc_auc_score(truth, scores))


def detection_aucs(model, train_views, clean_views, attacked_views=None, attacked_h=None,
                   kinds=DETECTORS, seed: int = 0) -> dict[str, float | None]:
    """AUC of each detector on clean vs attacked eval samples. An input-space attack gives
    `attacked_views`; an embedding-space attack gives `attacked_h` only, and input-space detectors
    then have nothing to look at (None)."""
    if attacked_views is None and attacked_h is None:
        raise ValueError("detection needs the attacked samples: attacked_views or attacked_h")
    out: dict[str, float | None] = {}
    for kind in kinds:
        if space(kind) == "h":
            train_f, clean_f = representation(model, train_views), representation(model, clean_views)
            adv_f = (np.asarray(attacked_h, dtype=np.float64).reshape(len(attacked_h), -1) if attacked_h is not None
                     else representation(model, attacked_views))
        elif attacked_views is None:
            out[kind] = None
            continue
        else:
            train_f, clean_f, adv_f = flat_inputs(train_views), flat_inputs(clean_views), flat_inputs(attacked_views)
        out[kind] = auc(fit(kind, train_f, seed), clean_f, adv_f)
    return out
