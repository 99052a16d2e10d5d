"""AECoDDC (Trosten et al., CVPR 2023, "On the effects of self-supervision..."): autoencoder + contrast + DDC.

Facts from DanielTrosten/DeepMVC (src/models/contrastive_ae, model CAE): one cnn_small encoder and one
mirrored decoder per view, weighted-mean fusion, the DDC head; no projector. Pre-training (the
`pretrain_epochs` of the config) on 0.1 x contrast + reconstruction MSE, then DDC1 + DDC2 + DDC3
+ 0.1 x contrast + MSE. The contrastive term has no adaptive (fusion-weight) factor, unlike CoMVC's.
It is the mean over view pairs of NT-Xent at tau 0.1, as in this package's CoMVC (DeepMVC sums the
two directions of each pair, which is twice this value).
"""
from __future__ import annotations

import torch
from torch import nn

from robustmvc.models import losses
from robustmvc.models.blocks import DDCHead, ModelOutput, WeightedMean, batched_forward, decoders, encoders


class AECoDDC(nn.Module):
    def __init__(self, view_shapes, n_clusters: int, *, encoder_width: int, hidden: int, contrast_weight: float,
                 tau: float, reconstruction_weight: float, rel_sigma: float):
        super().__init__()
        self.encoders, dims = encoders(view_shapes, encoder_width)
        if len(set(dims)) != 1:
            raise ValueError(f"weighted-mean fusion needs equal encoder outputs per view, got {dims}; "
                             "use views of the same shape")
        self.decoders = decoders(view_shapes, encoder_width)
        self.fusion = WeightedMean(len(view_shapes))
        self.head = DDCHead(dims[0], n_clusters, hidden)
        self.contrast_weight, self.tau = contrast_weight, tau
        self.reconstruction_weight, self.rel_sigma = reconstruction_weight, rel_sigma

    def forward(self, views: list[torch.Tensor]) -> ModelOutput:
        zs = [enc(x) for enc, x in zip(self.encoders, views)]
        hidden, probs = self.head(self.fusion(zs))
        extra = {f"recon{v}": dec(z) for v, (dec, z) in enumerate(zip(self.decoders, zs))}
        return ModelOutput(z=zs, h=hidden, probs=probs, extra=extra)

    def pretrain_loss(self, views, out: ModelOutput) -> dict[str, torch.Tensor]:
        recons = [out.extra[f"recon{v}"] for v in range(len(views))]
        terms = {"mse": self.reconstruction_weight * losses.reconstruction(views, recons)}
        if len(out.z) > 1 and self.contrast_weight > 0:
            terms["contrast"] = self.contrast_weight * losses.contrastive(out.z, self.tau)
        return terms

    def loss(self, views, out: ModelOutput) -> dict[str, torch.Tensor]:
        return {**losses.ddc_terms(out.probs, out.h, self.rel_sigma), **self.pretrain_loss(views, out)}

    def assign(self, out: ModelOutput) -> torch.Tensor:
        """Labels from the model's output on a whole set: the most probable cluster."""
        return out.probs.argmax(1)

    def predict(self, views: list[torch.Tensor]) -> torch.Tensor:
        return self.assign(batched_forward(self, views))
