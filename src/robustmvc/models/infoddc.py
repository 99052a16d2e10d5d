"""InfoDDC (Trosten et al., CVPR 2023; "MIMVC" in DanielTrosten/DeepMVC): mutual-information view alignment + DDC.

Facts from DeepMVC (src/models/mimvc): each view's encoder output goes through a softmax; the softmaxed
views are fused (weighted mean) and clustered by the DDC head. The views are aligned by Completer's
mutual-information contrast on the softmaxed outputs (alpha = 9). Pre-training (the config's
`pretrain_epochs`) uses the MI term alone (weight 1), then DDC1 + DDC2 + DDC3 + 0.1 x MI term.

`projection_dim` optionally puts one Linear layer per view between the encoder and the softmax (a
"small projection"); None (the reference) takes the softmax over the flattened encoder output itself.
The reference sums the MI term over pairs u <= v (each view with itself too, a loop-bound slip); here
it is the sum over view pairs u < v.
"""
from __future__ import annotations

import itertools
import sys

import torch
from torch import nn

from robustmvc.models import losses
from robustmvc.models.blocks import DDCHead, ModelOutput, WeightedMean, batched_forward, encoders

MI_EPS = sys.float_info.epsilon  # the reference's floor on probabilities before the log


def joint_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Symmetrised, normalised joint P = (sum_i p_i q_i^T + its transpose) / 2 / total, k x k."""
    joint = p.T @ q
    joint = (joint + joint.T) / 2
    return joint / joint.sum()


def mi_contrast(p: torch.Tensor, q: torch.Tensor, alpha: float = 9.0) -> torch.Tensor:
    """Completer's contrast: -sum_ij P_ij (log P_ij - (alpha + 1)(log P_i + log P_j)) on the joint of two soft views.

    Minimising it maximises I(p; q) + alpha (H(p) + H(q)): agreeing views, spread over all components.
    """
    joint = joint_distribution(p, q)
    p_i = joint.sum(1, keepdim=True).expand_as(joint).clamp_min(MI_EPS)
    p_j = joint.sum(0, keepdim=True).expand_as(joint).clamp_min(MI_EPS)
    joint_c = joint.clamp_min(MI_EPS)
    return -(joint_c * (joint_c.log() - (alpha + 1) * p_i.log() - (alpha + 1) * p_j.log())).sum()


class InfoDDC(nn.Module):
    def __init__(self, view_shapes, n_clusters: int, *, encoder_width: int, hidden: int,
                 projection_dim: int | None, alpha: float, mi_weight: float, rel_sigma: float):
        super().__init__()
        self.encoders, dims = encoders(view_shapes, encoder_width)
        if projection_dim:
            self.projections = nn.ModuleList(nn.Linear(d, projection_dim) for d in dims)
            dims = [projection_dim] * len(dims)
        else:
            self.projections = nn.ModuleList(nn.Identity() for _ in dims)
        if len(set(dims)) != 1:
            raise ValueError(f"weighted-mean fusion needs equal encoder outputs per view, got {dims}; "
                             "use views of the same shape or set projection_dim")
        self.fusion = WeightedMean(len(view_shapes))
        self.head = DDCHead(dims[0], n_clusters, hidden)
        self.alpha, self.mi_weight, self.rel_sigma = alpha, mi_weight, rel_sigma

    def forward(self, views: list[torch.Tensor]) -> ModelOutput:
        zs = [torch.softmax(proj(enc(x)), dim=1) for enc, proj, x in zip(self.encoders, self.projections, views)]
        hidden, probs = self.head(self.fusion(zs))
        return ModelOutput(z=zs, h=hidden, probs=probs)

    def mi_term(self, zs: list[torch.Tensor]) -> torch.Tensor:
        return sum(mi_contrast(zs[u], zs[v], self.alpha) for u, v in itertools.combinations(range(len(zs)), 2))

    def pretrain_loss(self, views, out: ModelOutput) -> dict[str, torch.Tensor]:
        return {"mi": self.mi_term(out.z)}

    def loss(self, views, out: ModelOutput) -> dict[str, torch.Tensor]:
        terms = losses.ddc_terms(out.probs, out.h, self.rel_sigma)
        if len(out.z) > 1 and self.mi_weight > 0:
            terms["mi"] = self.mi_weight * self.mi_term(out.z)
        return terms

    def assign(self, out: ModelOutput) -> torch.Tensor:
        """Labels from the model's output on a whole set: the most probable cluster."""
        return out.probs.argmax(1)

    def predict(self, views: list[torch.Tensor]) -> torch.Tensor:
        return self.assign(batched_forward(self, views))
