"""DDC and contrastive terms against direct loop implementations in numpy."""
import itertools
import math

import numpy as np
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


def test_contrastive_term_matches_hand_computation():
    g = torch.Generator().manual_seed(1)
    zs = [torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(3)]
    expected = np.mean([_np_nt_xent(zs[a].numpy(), zs[b].numpy(), 0.1) for a, b in [(0, 1), (0, 2), (1, 2)]])
    assert math.isclose(losses.contrastive(zs, tau=0.1).item(), expected, rel_tol=1e-9)
    # aligned views give a lower loss than unrelated ones
    assert losses.contrastive([zs[0], zs[0] + 0.01]).item() < losses.contrastive(zs[:2]).item()


def test_comvc_contrastive_weight_uses_min_fusion_weight():
    from robustmvc.models import build

    model = build("comvc", [(1, 28, 28)] * 2, 3, encoder_width=4).double()
    with torch.no_grad():
        model.fusion.logits.copy_(torch.tensor([0.0, 1.0]))
    views = [torch.rand(6, 1, 28, 28, dtype=torch.float64) for _ in range(2)]
    out = model(views)
    w_min = torch.softmax(torch.tensor([0.0, 1.0], dtype=torch.float64), 0).min().item()
    expected = 0.1 * w_min * losses.contrastive(out.z, 0.1).item()
    assert math.isclose(model.loss(views, out)["contrast"].item(), expected, rel_tol=1e-9)
