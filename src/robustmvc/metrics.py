"""Clustering metrics: ACC under the best one-to-one cluster-to-class map, NMI, ARI."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def contingency(labels: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """counts[c, k] = samples predicted in cluster c with class k (labels re-indexed from 0)."""
    _, y = np.unique(labels, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    size = max(y.max(), p.max()) + 1
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (p, y), 1)
    return counts


def accuracy(labels, pred) -> float:
    labels, pred = np.asarray(labels), np.asarray(pred)
    counts = contingency(labels, pred)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(labels))


def clustering_scores(labels, pred) -> dict[str, float]:
    labels, pred = np.asarray(labels), np.asarray(pred)
    return {"acc": accuracy(labels, pred),
            "nmi": float(normalized_mutual_info_score(labels, pred)),
            "ari": float(adjusted_rand_score(labels, pred))}
