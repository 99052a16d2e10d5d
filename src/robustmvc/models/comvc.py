"""CoMVC (Trosten et al., CVPR 2021): weighted-mean fusion + DDC head + contrastive view alignment.

The backbone of AR-DMVC. SiMVC is the same model with the contrastive weight set to 0.
"""
from __future__ import annotations

import torch
from torch import nn

from robustmvc.models import losses
from robustmvc.models.blocks import DDCHead, ModelOutput, WeightedMean, batched_forward, encoders


class CoMVC(nn.Module):
    def __init__(self, view_shapes, n_clusters: int, *, encoder_width: int, hidden: int, contrast_weight: float,
                 tau: float | None, rel_sigma: float):
        super().__init__()
        self.encoders, dims = encoders(view_shapes, encoder_width)
        if len(set(dims)) != 1:
            raise ValueError(f"weighted-mean fusion needs equal encoder outputs per view, got {dims}; "
                             "use views of the same shape")
        self.fusion = WeightedMean(len(view_shapes))
        self.head = DDCHead(dims[0], n_clusters, hidden)
        self.contrast_weight, self.tau, self.rel_sigma = contrast_weight, tau, rel_sigma

    def forward(self, views: list[torch.Tensor]) -> ModelOutput:
        zs = [enc(x) for enc, x in zip(self.encoders, views)]
        hidden, probs = self.head(self.fusion(zs))
        return ModelOutput(z=zs, h=hidden, probs=probs)

    def probs_from_h(self, h: torch.Tensor) -> torch.Tensor:
        """The clustering layer alone, so an attack or defense can perturb h itself (the embedding-space
        attack); on forward's own h it gives forward's probs."""
        return torch.softmax(self.head.out(h), dim=1)

    def contrastive_loss(self, out: ModelOutput) -> torch.Tensor:
        """The weighted contrastive term: weight x min fusion weight (detached) x `losses.contrastive`."""
        return self.contrast_weight * self.fusion.weights.min().detach() * losses.contrastive(out.z, self.tau)

    def loss(self, views, out: ModelOutput) -> dict[str, torch.Tensor]:
        terms = losses.ddc_terms(out.probs, out.h, self.rel_sigma)
        if self.contrast_weight > 0 and len(out.z) > 1:
            terms["contrast"] = self.contrastive_loss(out)
        return terms

    def assign(self, out: ModelOutput) -> torch.Tensor:
        """Labels from the model's output on a whole set: the most probable cluster."""
        return out.probs.argmax(1)

    def predict(self, views: list[torch.Tensor]) -> torch.Tensor:
        return self.assign(batched_forward(self, views))
