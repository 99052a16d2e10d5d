"""Clustering metrics: ACC under the best one-to-one cluster-to-class map, NMI, ARI.

All three come from the contingency table with numpy alone. Every training and attack job scores,
and importing scikit-learn's metrics with the SciPy they load cost ~2 s of CPU per job on a 2-core
AMD EPYC (`python -c 'import torch, sklearn.metrics'` against `import torch`), about a quarter of a
demo job's fixed cost. NMI and ARI follow scikit-learn's definitions (NMI with the arithmetic mean of
the entropies, its special cases included); `tests/test_core_metrics.py` holds all three to
scikit-learn and SciPy on random labelings.
"""
from __future__ import annotations

import numpy as np


def contingency(labels: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """counts[c, k] = samples predicted in cluster c with class k (labels re-indexed from 0)."""
    _, y = np.unique(labels, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    size = max(y.max(), p.max()) + 1
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (p, y), 1)
    return counts


def best_assignment(gain) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the one-to-one map with the largest summed gain, as SciPy's
    `linear_sum_assignment(-gain)`: the Hungarian method with row and column potentials, O(n^3) with
    the inner scan vectorised. A rectangular table is padded with zero gain and the padding dropped."""
    gain = np.asarray(gain, dtype=np.float64)
    n_rows, n_cols = gain.shape
    n = max(n_rows, n_cols)
    cost = np.zeros((n, n))
    cost[:n_rows, :n_cols] = -gain
    # 1-based columns; column 0 is the augmenting path's root. owner[j]: the row matched to column j
    u, v = np.zeros(n + 1), np.zeros(n + 1)
    owner, way = np.zeros(n + 1, dtype=np.int64), np.zeros(n + 1, dtype=np.int64)
    for row in range(1, n + 1):
        owner[0], j0 = row, 0
        slack, used = np.full(n + 1, np.inf), np.zeros(n + 1, dtype=bool)
        while owner[j0]:
            used[j0] = True
            reduced = cost[owner[j0] - 1] - u[owner[j0]] - v[1:]
            free = np.flatnonzero(~used[1:]) + 1
            lower = reduced[free - 1] < slack[free]
            slack[free[lower]] = reduced[free - 1][lower]
            way[free[lower]] = j0
            j1 = free[np.argmin(slack[free])]
            delta = slack[j1]
            u[owner[used]] += delta
            v[used] -= delta
            slack[~used] -= delta
            j0 = j1
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    rows, cols = owner[1:] - 1, np.arange(n)
    keep = (rows < n_rows) & (cols < n_cols)
    order = np.argsort(rows[keep])
    return rows[keep][order], cols[keep][order]


def accuracy(labels, pred) -> float:
    labels, pred = np.asarray(labels), np.asarray(pred)
    counts = contingency(labels, pred)
    rows, cols = best_assignment(counts)
    return float(counts[rows, cols].sum() / len(labels))


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(labels, pred) -> float:
    """Mutual information over the arithmetic mean of the two entropies (scikit-learn's default): 1 when
    both labelings are one cluster, 0 when they share no information."""
    counts = contingency(np.asarray(labels), np.asarray(pred)).astype(np.float64)
    rows, cols = counts.sum(1), counts.sum(0)
    if np.count_nonzero(rows) == np.count_nonzero(cols) == 1:
        return 1.0
    n = counts.sum()
    nz = counts > 0
    mi = max(float((counts[nz] / n * np.log(counts[nz] * n / np.outer(rows, cols)[nz])).sum()), 0.0)
    if mi == 0.0:
        return 0.0
    return mi / max((_entropy(rows) + _entropy(cols)) / 2, np.finfo(np.float64).eps)


def ari(labels, pred) -> float:
    """Adjusted Rand index from the pair counts (scikit-learn's form), in Python integers: the products
    of pair counts pass int64 at ~50,000 samples."""
    counts = contingency(np.asarray(labels), np.asarray(pred))
    n = int(counts.sum())
    squares = int((counts ** 2).sum())
    together = squares - n  # pairs in one cluster and one class (x2, as every count below)
    by_cluster = int((counts.sum(1) ** 2).sum()) - squares  # same cluster, other class
    by_class = int((counts.sum(0) ** 2).sum()) - squares  # same class, other cluster
    apart = n * n - by_cluster - by_class - squares
    if by_cluster == by_class == 0:
        return 1.0
    return 2.0 * (together * apart - by_class * by_cluster) / (
        (together + by_class) * (by_class + apart) + (together + by_cluster) * (by_cluster + apart))


def clustering_scores(labels, pred) -> dict[str, float]:
    labels, pred = np.asarray(labels), np.asarray(pred)
    return {"acc": accuracy(labels, pred), "nmi": float(nmi(labels, pred)), "ari": float(ari(labels, pred))}
