import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from robustmvc.metrics import accuracy, ari, best_assignment, clustering_scores, nmi


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


# The metrics are computed without scikit-learn and SciPy (robustmvc.metrics says why); these hold them to both.

@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (10, 10), (7, 12), (12, 7), (60, 60), (206, 206)])
def test_best_assignment_finds_scipys_optimum(shape):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    for table in (rng.integers(0, 4, shape), rng.integers(0, 1000, shape), rng.random(shape)):  # ties, and none
        rows, cols = best_assignment(table)
        ref_rows, ref_cols = linear_sum_assignment(-table)
        assert len(set(rows)) == len(rows) == min(shape) and len(set(cols)) == len(cols)
        assert math.isclose(table[rows, cols].sum(), table[ref_rows, ref_cols].sum(), rel_tol=1e-12)


@pytest.mark.parametrize("case", range(30))
def test_nmi_and_ari_equal_scikit_learns(case):
    rng = np.random.default_rng(case)
    n, k, j = rng.integers(1, 400), rng.integers(1, 12), rng.integers(1, 12)
    labels = rng.integers(0, k, n) * 3 + 5  # class names need not be 0..k-1
    pred = np.where(rng.random(n) < rng.random(), labels, rng.integers(0, j, n))
    assert math.isclose(nmi(labels, pred), normalized_mutual_info_score(labels, pred), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(ari(labels, pred), adjusted_rand_score(labels, pred), rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("labels, pred", [
    ([0, 0, 0], [1, 1, 1]),        # one cluster each: NMI and ARI 1
    ([0, 0, 1, 1], [0, 0, 0, 0]),  # a single cluster against two classes: no information
    ([0, 1, 2, 3], [0, 1, 2, 3]),  # singletons
    ([0, 1, 2, 3], [0, 0, 0, 0]),
])
def test_nmi_and_ari_special_cases_equal_scikit_learns(labels, pred):
    assert nmi(labels, pred) == normalized_mutual_info_score(labels, pred)
    assert ari(labels, pred) == adjusted_rand_score(labels, pred)


def test_ari_stays_exact_where_pair_counts_pass_int64():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 70_000)
    pred = np.where(rng.random(70_000) < 0.8, labels, rng.integers(0, 10, 70_000))
    assert math.isclose(ari(labels, pred), adjusted_rand_score(labels, pred), rel_tol=1e-9)
