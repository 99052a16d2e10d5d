"""SEM (Xu et al., NeurIPS 2023): self-weighted contrastive learning among views, with reconstruction.

Facts from SubmissionsIn/SEM (and its use in libertyhhn/AR-DMVC's SEM_trainer): per view an autoencoder
whose code is a 512-d "low-level" feature h_v, a linear head to a 128-d L2-normalised "high-level"
feature z_v; pre-training on reconstruction MSE alone; then, for every ordered view pair (v, w), the
view itself included, InfoNCE(z_v, z_w) at temperature 1.0 weighted by W_vw = exp(NMI(k-means of view v,
k-means of view w)) - 1, plus the reconstruction MSE (weight 1). The weights are computed after
pre-training from k-means on the low-level features and recomputed every `reweight_every` epochs from
k-means on the high-level features. Clusters: k-means on the concatenated high-level features.
Adam lr 3e-4, batch 256.

For image views the reference's MLP autoencoder (d -> 500 -> 500 -> 2000 -> 512) is replaced by the
project's cnn_small encoder and its mirrored decoder, with an MLP between them and the 512-d code:
flattened conv features -> Linear(d, head_hidden) + ReLU -> Linear(head_hidden, feature_dim), and back
Linear(feature_dim, head_hidden) + ReLU -> Linear(head_hidden, d) + ReLU -> conv decoder.

State lives in registered buffers set by `start_epoch` (never by forward): `view_weights` (V x V),
`centroids` (k-means centres of the fused training features, refitted at the start of every main epoch;
they give `probs`, the Student-t soft assignment of the fused feature to them, so `probs` lags the
weights by at most one epoch) and `main_epochs` (main-phase epochs started). The reference also
re-creates its Adam optimiser every epoch; the shared trainer keeps one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustmvc.metrics import nmi
from robustmvc.models import losses
from robustmvc.models.blocks import ModelOutput, batched_forward, decoders, encoders, kmeans_labels


def nmi_weights(labels: list[torch.Tensor]) -> torch.Tensor:
    """W_vw = exp(NMI(labels_v, labels_w)) - 1 for every ordered pair of views (diagonal e - 1)."""
    arrays = [lab.cpu().numpy() for lab in labels]
    n = len(arrays)
    weights = torch.empty(n, n, dtype=torch.float64)
    for v in range(n):
        for w in range(n):
            weights[v, w] = nmi(arrays[v], arrays[w])
    return weights.exp() - 1


def student_t(h: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Soft assignments q_ik proportional to (1 + ||h_i - c_k||^2)^-1, rows summing to 1."""
    q = 1.0 / (1.0 + losses.sq_dists(h, centroids))
    return q / q.sum(1, keepdim=True)


class SEM(nn.Module):
    def __init__(self, view_shapes, n_clusters: int, *, encoder_width: int, head_hidden: int, feature_dim: int,
                 high_feature_dim: int, tau: float, reconstruction_weight: float, reweight_every: int,
                 kmeans_n_init: int, kmeans_seed: int):
        super().__init__()
        if reweight_every < 1:
            raise ValueError(f"reweight_every must be >= 1 epoch, got {reweight_every}")
        self.encoders, dims = encoders(view_shapes, encoder_width)
        self.to_low = nn.ModuleList(
            nn.Sequential(nn.Linear(d, head_hidden), nn.ReLU(), nn.Linear(head_hidden, feature_dim)) for d in dims)
        self.from_low = nn.ModuleList(
            nn.Sequential(nn.Linear(feature_dim, head_hidden), nn.ReLU(), nn.Linear(head_hidden, d), nn.ReLU())
            for d in dims)
        self.decoders = decoders(view_shapes, encoder_width)
        self.to_high = nn.ModuleList(nn.Linear(feature_dim, high_feature_dim) for _ in dims)
        n_views = len(view_shapes)
        self.n_clusters, self.tau, self.reconstruction_weight = n_clusters, tau, reconstruction_weight
        self.reweight_every, self.kmeans_n_init, self.kmeans_seed = reweight_every, kmeans_n_init, kmeans_seed
        self.register_buffer("view_weights", torch.ones(n_views, n_views))
        self.register_buffer("centroids", torch.zeros(n_clusters, high_feature_dim * n_views))
        self.register_buffer("main_epochs", torch.zeros((), dtype=torch.long))

    def forward(self, views: list[torch.Tensor]) -> ModelOutput:
        lows = [low(enc(x)) for enc, low, x in zip(self.encoders, self.to_low, views)]
        zs = [F.normalize(high(h), dim=1) for high, h in zip(self.to_high, lows)]
        fused = torch.cat(zs, dim=1)
        extra = {}
        for v, (h, back, dec) in enumerate(zip(lows, self.from_low, self.decoders)):
            extra[f"low{v}"] = h
            extra[f"recon{v}"] = dec(back(h))
        return ModelOutput(z=zs, h=fused, probs=student_t(fused, self.centroids), extra=extra)

    def reconstruction_term(self, views, out: ModelOutput) -> torch.Tensor:
        recons = [out.extra[f"recon{v}"] for v in range(len(views))]
        return self.reconstruction_weight * losses.reconstruction(views, recons)

    def pretrain_loss(self, views, out: ModelOutput) -> dict[str, torch.Tensor]:
        return {"mse": self.reconstruction_term(views, out)}

    def loss(self, views, out: ModelOutput) -> dict[str, torch.Tensor]:
        n = len(out.z)
        contrast = sum(self.view_weights[v, w] * losses.nt_xent(out.z[v], out.z[w], self.tau)
                       for v in range(n) for w in range(n))
        return {"contrast": contrast, "mse": self.reconstruction_term(views, out)}

    @torch.no_grad()
    def start_epoch(self, epoch: int, phase: str, train_views: list[torch.Tensor]) -> None:
        """Main phase: every `reweight_every` epochs new view weights; every epoch new centroids."""
        if phase != "main":
            return
        out = batched_forward(self, train_views)
        if int(self.main_epochs) % self.reweight_every == 0:
            # the first weights (right after pre-training) come from the low-level features, as in the reference
            feats = ([out.extra[f"low{v}"] for v in range(len(out.z))] if int(self.main_epochs) == 0 else out.z)
            labels = [kmeans_labels(f, self.n_clusters, self.kmeans_seed, self.kmeans_n_init)[0] for f in feats]
            self.view_weights.copy_(nmi_weights(labels))
        self.centroids.copy_(kmeans_labels(out.h, self.n_clusters, self.kmeans_seed, self.kmeans_n_init)[1])
        self.main_epochs += 1

    def assign(self, out: ModelOutput) -> torch.Tensor:
        """k-means on the fused high-level features [z_1, ..., z_V] of the whole set at once."""
        return kmeans_labels(out.h, self.n_clusters, self.kmeans_seed, self.kmeans_n_init)[0]

    def predict(self, views: list[torch.Tensor]) -> torch.Tensor:
        return self.assign(batched_forward(self, views))
