"""Multi-VAE (Xu et al., ICCV 2021): per-view continuous latents + one shared discrete cluster code.

Facts from DanielTrosten/DeepMVC (src/models/mvae, adapted there from SubmissionsIn/Multi-VAE):
- per view: cnn_small encoder -> Linear(d, 256) + ReLU -> mean and log-variance of a 10-d Gaussian;
  the shared code's parameters alpha = softmax(Linear(concatenated 256-d hiddens -> K));
- training samples z_v by reparameterisation and c by Gumbel-softmax (temperature 0.67); evaluation uses
  the means (and, in the reference, the one-hot argmax of alpha);
- each view is decoded from [z_v, c]: Linear(10 + K, 256) + ReLU + Linear(256, d) + ReLU + cnn decoder;
- loss = BCE reconstruction (x pixels) + beta |C_cont - KL(q(z_v) || N(0, I))| / pixels_v per view
  + beta V |C_disc - KL(alpha || uniform)| / total pixels, beta = 30, the capacities growing linearly
  from 0 to 5 (continuous) and log K (discrete) over 25,000 iterations (`kl_per_pixel` false drops the
  division by pixels, as the original JointVAE-style code has it);
- clusters: k-means on [c, z_1, ..., z_V]. Adam lr 5e-4, batch 64 (the config's training keys).

The annealing clock is the registered buffer `iteration`: the number of optimiser steps taken, advanced
by `train_step` (never by forward), saved in checkpoints. `loss` reads it, so a loss computed outside
training (e.g. by an attack) uses the capacities training ended with.

In evaluation mode c is alpha itself rather than its one-hot argmax (the reference's choice): the same
clusters once alpha is confident, and differentiable, so an attack on the consensus h gets gradients.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robustmvc.models.blocks import ModelOutput, batched_forward, decoders, encoders, kmeans_labels

EPS = 1e-12


def kl_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)): summed over dimensions, averaged over the batch."""
    return (-0.5 * (1 + logvar - mean ** 2 - logvar.exp())).mean(0).sum()


def kl_uniform(alpha: torch.Tensor) -> torch.Tensor:
    """KL(Categorical(alpha) || uniform over K) = log K - H(alpha), averaged over the batch."""
    return math.log(alpha.shape[1]) + (alpha * torch.log(alpha + EPS)).sum(1).mean()


class MultiVAE(nn.Module):
    def __init__(self, view_shapes, n_clusters: int, *, encoder_width: int, hidden_dim: int, cont_dim: int,
                 temperature: float, beta: float, cont_capacity: float, capacity_iterations: int,
                 kl_per_pixel: bool, kmeans_n_init: int, kmeans_seed: int):
        super().__init__()
        self.encoders, dims = encoders(view_shapes, encoder_width)
        self.decoders = decoders(view_shapes, encoder_width)
        for dec in self.decoders:  # the decoders give logits (BCE in logits form); forward applies the sigmoid
            dec[-1] = nn.Identity()
        n_views = len(view_shapes)
        self.to_hidden = nn.ModuleList(nn.Sequential(nn.Linear(d, hidden_dim), nn.ReLU()) for d in dims)
        self.means = nn.ModuleList(nn.Linear(hidden_dim, cont_dim) for _ in dims)
        self.logvars = nn.ModuleList(nn.Linear(hidden_dim, cont_dim) for _ in dims)
        self.alpha = nn.Linear(hidden_dim * n_views, n_clusters)
        self.to_features = nn.ModuleList(
            nn.Sequential(nn.Linear(cont_dim + n_clusters, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, d), nn.ReLU())
            for d in dims)
        self.pixels = [int(math.prod(s)) for s in view_shapes]
        self.n_clusters, self.temperature, self.beta = n_clusters, temperature, beta
        self.cont_capacity, self.capacity_iterations = cont_capacity, capacity_iterations
        self.kl_per_pixel, self.kmeans_n_init, self.kmeans_seed = kl_per_pixel, kmeans_n_init, kmeans_seed
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    def gumbel_softmax(self, alpha: torch.Tensor) -> torch.Tensor:
        gumbel = -torch.log(-torch.log(torch.rand_like(alpha) + EPS) + EPS)
        return torch.softmax((torch.log(alpha + EPS) + gumbel) / self.temperature, dim=1)

    def forward(self, views: list[torch.Tensor]) -> ModelOutput:
        hiddens = [lin(enc(x)) for enc, lin, x in zip(self.encoders, self.to_hidden, views)]
        means = [m(h) for m, h in zip(self.means, hiddens)]
        logvars = [lv(h) for lv, h in zip(self.logvars, hiddens)]
        alpha = torch.softmax(self.alpha(torch.cat(hiddens, dim=1)), dim=1)
        if self.training:
            zs = [m + torch.randn_like(m) * (0.5 * lv).exp() for m, lv in zip(means, logvars)]
            code = self.gumbel_softmax(alpha)
        else:
            zs, code = means, alpha
        logits = [dec(feat(torch.cat([z, code], dim=1)))
                  for dec, feat, z in zip(self.decoders, self.to_features, zs)]
        extra = {"alpha": alpha}
        for v, (m, lv, lg) in enumerate(zip(means, logvars, logits)):
            extra.update({f"mean{v}": m, f"logvar{v}": lv, f"recon{v}": torch.sigmoid(lg), f"recon_logits{v}": lg})
        return ModelOutput(z=zs, h=torch.cat([code, *zs], dim=1), probs=alpha, extra=extra)

    def capacities(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(continuous, discrete) capacities at the current iteration: linear from 0, then constant.
        0-d tensors computed where the clock lives: reading them is no host-device sync per step."""
        frac = (self.iteration.float() / self.capacity_iterations).clamp(max=1.0)
        return frac * self.cont_capacity, frac * math.log(self.n_clusters)

    def loss(self, views, out: ModelOutput) -> dict[str, torch.Tensor]:
        n_views = len(views)
        cont_cap, disc_cap = self.capacities()
        terms = {}
        for v, x in enumerate(views):
            # logits form: BCE of the sigmoid without its log(0) clamp, accepted by autocast, no CUDA assert
            logits = out.extra[f"recon_logits{v}"]
            terms[f"rec{v}"] = F.binary_cross_entropy_with_logits(logits.flatten(1), x.flatten(1)) * self.pixels[v]
            kl = kl_normal(out.extra[f"mean{v}"], out.extra[f"logvar{v}"])
            scale = self.pixels[v] if self.kl_per_pixel else 1
            terms[f"kl_cont{v}"] = self.beta * (cont_cap - kl).abs() / scale
        scale = sum(self.pixels) / n_views if self.kl_per_pixel else 1
        terms["kl_disc"] = self.beta * (disc_cap - kl_uniform(out.extra["alpha"])).abs() / scale
        return terms

    def train_step(self, views, optimizers, phase: str) -> dict[str, torch.Tensor]:
        """The default step (sum of `loss`), then the annealing clock advances by one iteration."""
        terms = self.loss(views, self(views))
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        for opt in optimizers.values():
            opt.step()
        self.iteration += 1
        return {k: v.detach() for k, v in terms.items()}

    def assign(self, out: ModelOutput) -> torch.Tensor:
        """k-means on [c, z_1, ..., z_V] of the whole set at once (the set's output, however it was batched)."""
        return kmeans_labels(out.h, self.n_clusters, self.kmeans_seed, self.kmeans_n_init)[0]

    def predict(self, views: list[torch.Tensor]) -> torch.Tensor:
        """`assign` on the whole set's output in evaluation mode (alpha and the means)."""
        return self.assign(batched_forward(self, views))
