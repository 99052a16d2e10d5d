import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from robustmvc.metrics import accuracy, clustering_scores


def brute_force_acc(labels, pred, k):
    best = 0
    for perm in itertools.permutations(range(k)):
        best = max(best, sum(perm[p] == y for p, y in zip(pred, labels)))
    return best / len(labels)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 5).flatmap(lambda k: st.tuples(
    st.just(k),
    st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=30))))
def test_acc_equals_best_permutation(case):
    k, pairs = case
    labels = np.array([p[0] for p in pairs])
    pred = np.array([p[1] for p in pairs])
    assert math.isclose(accuracy(labels, pred), brute_force_acc(labels, pred, k))


def test_acc_is_invariant_to_cluster_names_and_handles_more_clusters():
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert accuracy(labels, np.array([7, 7, 3, 3, 5, 5])) == 1.0
    # four clusters for three classes: one cluster can map to nothing
    assert math.isclose(accuracy(labels, np.array([0, 1, 2, 2, 3, 3])), 5 / 6)


def _entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return -(p * np.log(p)).sum()


def _comb2(x):
    return x * (x - 1) / 2


def test_nmi_and_ari_match_their_formulas():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 5, 200))
    table = np.zeros((4, 5))
    np.add.at(table, (labels, pred), 1)
    n = table.sum()
    pij = table / n
    outer = pij.sum(1, keepdims=True) @ pij.sum(0, keepdims=True)
    mi = (pij[pij > 0] * np.log(pij[pij > 0] / outer[pij > 0])).sum()
    nmi = mi / ((_entropy(table.sum(1)) + _entropy(table.sum(0))) / 2)
    index = _comb2(table).sum()
    a, b = _comb2(table.sum(1)).sum(), _comb2(table.sum(0)).sum()
    expected = a * b / _comb2(n)
    ari = (index - expected) / ((a + b) / 2 - expected)
    scores = clustering_scores(labels, pred)
    assert math.isclose(scores["nmi"], nmi, rel_tol=1e-9)
    assert math.isclose(scores["ari"], ari, rel_tol=1e-9)
