"""DDC and contrastive terms against direct loop implementations in numpy."""
import itertools
import math

import numpy as np
import pytest
import torch

from robustmvc.models import losses


def _np_kernel(h, rel_sigma=0.15):
    n = len(h)
    d = np.array([[np.sum((h[i] - h[j]) ** 2) for j in range(n)] for i in range(n)])
    sigma2 = rel_sigma * np.median(d)
    return np.exp(-d / (2 * sigma2))


def _np_cs(a, kmat):
    k = a.shape[1]
    total = 0.0
    for i, j in itertools.combinations(range(k), 2):
        num = a[:, i] @ kmat @ a[:, j]
        den = math.sqrt((a[:, i] @ kmat @ a[:, i]) * (a[:, j] @ kmat @ a[:, j]))
        total += num / den
    return 2 * total / (k * (k - 1))


def _batch(n=9, k=4, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(n, k, generator=g, dtype=torch.float64) * 2, 1)
    hidden = torch.randn(n, d, generator=g, dtype=torch.float64)
    return probs, hidden


def test_kernel_matches_direct_computation():
    _, h = _batch()
    assert np.allclose(losses.gaussian_kernel(h).numpy(), _np_kernel(h.numpy()), atol=1e-10)


def test_ddc_terms_match_loops():
    probs, hidden = _batch()
    a, kmat = probs.numpy(), _np_kernel(hidden.numpy())
    n, k = a.shape
    ddc2 = sum(a[i] @ a[j] for i, j in itertools.combinations(range(n), 2)) * 2 / (n * (n - 1))
    m = np.array([[math.exp(-np.sum((a[i] - np.eye(k)[j]) ** 2)) for j in range(k)] for i in range(n)])
    terms = losses.ddc_terms(probs, hidden)
    assert math.isclose(terms["ddc1"].item(), _np_cs(a, kmat), rel_tol=1e-9)
    assert math.isclose(terms["ddc2"].item(), ddc2, rel_tol=1e-9)
    assert math.isclose(terms["ddc3"].item(), _np_cs(m, kmat), rel_tol=1e-9)


def test_ddc_prefers_confident_separated_clusters():
    hidden = torch.cat([torch.zeros(5, 3), torch.ones(5, 3) * 5]).double() + torch.randn(10, 3).double() * 0.01
    good = torch.cat([torch.tensor([[1.0, 0.0]]).repeat(5, 1), torch.tensor([[0.0, 1.0]]).repeat(5, 1)]).double()
    bad = torch.full((10, 2), 0.5).double()
    total = lambda p: sum(losses.ddc_terms(p, hidden).values()).item()  # noqa: E731
    assert total(good * 0.98 + 0.01) < total(bad)


def _np_nt_xent(u, v, tau):
    z = np.concatenate([u, v])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(u)
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        sims = [np.exp(z[i] @ z[j] / tau) for j in range(2 * n) if j != i]
        total += -math.log(math.exp(z[i] @ z[pos] / tau) / sum(sims))
    return total / (2 * n)


def test_nt_xent_matches_hand_computation():
    g = torch.Generator().manual_seed(1)
    zs = [torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    expected = _np_nt_xent(zs[0].numpy(), zs[1].numpy(), 0.1)
    assert math.isclose(losses.nt_xent(*zs, tau=0.1).item(), expected, rel_tol=1e-9)


def _np_public_contrast(zs, tau):
    """CoMVC's public loss written out: per view pair u < v, loss_a + loss_b with explicit similarity
    matrices (ab, aa with the diagonal removed) and logsumexp, each a mean over the n rows; the pairs
    summed with the factor 2 / (V (V - 1))."""
    from scipy.special import logsumexp

    zs = [z / np.linalg.norm(z, axis=1, keepdims=True) for z in zs]
    n, views = len(zs[0]), len(zs)
    off = ~np.eye(n, dtype=bool)
    total = 0.0
    for u in range(views):
        for v in range(u + 1, views):
            pair = 0.0
            for a, b in ((zs[u], zs[v]), (zs[v], zs[u])):
                s_ab, s_aa = a @ b.T / tau, a @ a.T / tau
                rows = [np.diag(s_ab)[i] - logsumexp(np.concatenate([s_ab[i], s_aa[i][off[i]]])) for i in range(n)]
                pair += -np.mean(rows)
            total += pair
    return 2 / (views * (views - 1)) * total


@pytest.mark.parametrize("views", [2, 3])
def test_contrastive_term_is_the_public_codes_loss_a_plus_loss_b(views):
    g = torch.Generator().manual_seed(views)
    zs = [torch.randn(7, 5, generator=g, dtype=torch.float64) for _ in range(views)]
    expected = _np_public_contrast([z.numpy() for z in zs], 0.1)
    assert math.isclose(losses.contrastive(zs, tau=0.1).item(), expected, rel_tol=1e-9)
    # twice the mean NT-Xent over the 2n rows (the scale before the public code's was adopted)
    half = np.mean([_np_nt_xent(zs[a].numpy(), zs[b].numpy(), 0.1) for a in range(views) for b in range(a + 1, views)])
    assert math.isclose(expected, 2 * half, rel_tol=1e-9)
    # aligned views give a lower loss than unrelated ones
    assert losses.contrastive([zs[0], zs[0] + 0.01]).item() < losses.contrastive(zs[:2]).item()


def test_comvc_contrastive_weight_uses_min_fusion_weight():
    from robustmvc.registry import build

    model = build("comvc", [(1, 28, 28)] * 2, 3, encoder_width=4).double()
    with torch.no_grad():
        model.fusion.logits.copy_(torch.tensor([0.0, 1.0]))
    views = [torch.rand(6, 1, 28, 28, dtype=torch.float64) for _ in range(2)]
    out = model(views)
    w_min = torch.softmax(torch.tensor([0.0, 1.0], dtype=torch.float64), 0).min().item()
    expected = 0.1 * w_min * losses.contrastive(out.z, 0.1).item()
    assert math.isclose(model.loss(views, out)["contrast"].item(), expected, rel_tol=1e-9)
