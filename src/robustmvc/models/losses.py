"""Loss terms as plain functions of tensors (docs/ARCHITECTURE.md, section 3), shared by every model that uses them."""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

EPS = 1e-9


def sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances, clamped at 0 against round-off."""
    d = (x * x).sum(1, keepdim=True) - 2 * x @ y.T + (y * y).sum(1)[None]
    return d.clamp_min(0)


def gaussian_kernel(h: torch.Tensor, rel_sigma: float = 0.15) -> torch.Tensor:
    """exp(-d^2 / (2 sigma^2)), sigma^2 = rel_sigma x median squared distance, no gradient via sigma."""
    d = sq_dists(h, h)
    sigma2 = (rel_sigma * d.median()).detach().clamp_min(EPS)
    return torch.exp(-d / (2 * sigma2))


def upper_mean_cs(a: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """d_CS: 2/(K(K-1)) sum_{i<j} a_i^T K a_j / sqrt(a_i^T K a_i a_j^T K a_j), over columns of a."""
    k = a.shape[1]
    nom = a.T @ kernel @ a
    diag = torch.diagonal(nom)
    denom = torch.sqrt((diag[:, None] * diag[None, :]).clamp_min(EPS ** 2))
    ratio = nom.clamp_min(EPS) / denom
    return 2.0 / (k * (k - 1)) * torch.triu(ratio, diagonal=1).sum()


def ddc1(probs: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return upper_mean_cs(probs, kernel)


def ddc2(probs: torch.Tensor) -> torch.Tensor:
    """Mean over sample pairs of a_i . a_j: small when assignments are orthogonal (one-hot, spread)."""
    n = probs.shape[0]
    return 2.0 / (n * (n - 1)) * torch.triu(probs @ probs.T, diagonal=1).sum()


def ddc3(probs: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """d_CS on M_ij = exp(-||a_i - e_j||^2): pulls assignments to simplex corners."""
    corners = torch.eye(probs.shape[1], device=probs.device, dtype=probs.dtype)
    return upper_mean_cs(torch.exp(-sq_dists(probs, corners)), kernel)


def ddc_terms(probs: torch.Tensor, hidden: torch.Tensor, rel_sigma: float = 0.15) -> dict[str, torch.Tensor]:
    kernel = gaussian_kernel(hidden, rel_sigma)
    return {"ddc1": ddc1(probs, kernel), "ddc2": ddc2(probs), "ddc3": ddc3(probs, kernel)}


def nt_xent(u: torch.Tensor, v: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """NT-Xent between two views: positives are the same sample, negatives every other sample of both views."""
    n = u.shape[0]
    z = F.normalize(torch.cat([u, v]), dim=1)
    logits = z @ z.T / tau
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n, device=z.device), torch.arange(n, device=z.device)])
    return F.cross_entropy(logits, target)


def contrastive(zs: list[torch.Tensor], tau: float = 0.1) -> torch.Tensor:
    """CoMVC's contrastive term at the scale of its public code: 2/(V(V-1)) sum_{u<v} (loss_a + loss_b).

    Per view pair, loss_a is the cross-entropy over the n rows of view u (positive: the same sample in
    view v; negatives: every other sample of both views) and loss_b the same over the n rows of view v,
    each a mean over n. Their sum is twice `nt_xent` (a mean over all 2n rows), so a weight of 0.1 here
    is the reference weight 0.1 of CoMVC, AECoDDC and the models built on them.
    """
    pairs = list(itertools.combinations(range(len(zs)), 2))
    return sum(2 * nt_xent(zs[a], zs[b], tau) for a, b in pairs) / len(pairs)


def reconstruction(views: list[torch.Tensor], recons: list[torch.Tensor]) -> torch.Tensor:
    """Sum over views of the mean squared reconstruction error (AECoDDC, SEM)."""
    return sum(F.mse_loss(r, x.reshape(r.shape)) for x, r in zip(views, recons))


PROB_FLOOR = 1e-4  # kl_term: added to both distributions before the log, as the public code does


def kl_term(p_clean: torch.Tensor, p_adv: torch.Tensor, direction: str = "paper") -> torch.Tensor:
    """Mean over the batch of KL between adversarial and clean soft assignments.

    `paper`: KL(p(a~|x~) || p(a|x)), the bound of Theorem 4.2; `code`: KL(p(a|x) || p(a~|x~)), the
    direction the public code computes.
    """
    p, q = p_clean + PROB_FLOOR, p_adv + PROB_FLOOR
    if direction == "paper":
        p, q = q, p
    elif direction != "code":
        raise ValueError(f"kl_direction must be 'paper' or 'code', got {direction!r}")
    return (p * (p.log() - q.log())).sum(1).mean()
