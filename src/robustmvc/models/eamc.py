"""EAMC (Zhou & Shen, CVPR 2020): attention fusion + adversarial alignment of the views + DDC.

Facts from DanielTrosten/DeepMVC (src/models/eamc), the code the paper's baselines come from:
- attention over the concatenated view representations: linear layers V*d -> 100 -> 50 -> V, per-sample
  e_i = softmax(sigmoid(a_i) / tau), tau = 10; the fusion weights are the batch mean of e_i;
- one discriminator per extra view (MLP d -> 256 -> 256 -> 128, LeakyReLU 0.2, -> 1, sigmoid) that tells
  view 1's representation ("real") from view v's ("fake"); the encoders are the generators;
- encoder-side loss DDC1 + DDC2 on columns (the "flipped" variant) + DDC3 + attention kernel loss
  + 10 x generator BCE; the discriminators are updated in an alternating step on their own BCE;
- Adam groups: encoders and clustering head at the training lr (1e-5), attention at 1e-4, betas
  (0.95, 0.999); discriminators at 1e-3, betas (0.5, 0.999).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustmvc.adam import Adam
from robustmvc.models import losses
from robustmvc.models.blocks import DDCHead, ModelOutput, batched_forward, encoders


def ddc2_flipped(probs: torch.Tensor) -> torch.Tensor:
    """DDC2 on columns (EAMC's variant): mean over cluster pairs of a_i^T a_j, columns a_i of probs."""
    k = probs.shape[1]
    return 2.0 / (k * (k - 1)) * torch.triu(probs.T @ probs, diagonal=1).sum()


def attention_kernel_loss(weights: torch.Tensor, zs: list[torch.Tensor], fused: torch.Tensor,
                          rel_sigma: float = 0.15) -> torch.Tensor:
    """||K_fused - sum_v w_v K_v||_F^2 (= trace(D D^T)): the fused kernel should match the weighted view kernels."""
    kernels = torch.stack([losses.gaussian_kernel(z, rel_sigma) for z in zs], dim=-1)
    diff = losses.gaussian_kernel(fused, rel_sigma) - (kernels * weights).sum(-1)
    return (diff * diff).sum()


class Attention(nn.Module):
    """Per-sample attention over the views from their concatenated representations.

    The reference's attention MLP has no activations between its Dense layers (DeepMVC's Dense default),
    so it is a factorised linear map V*d -> 100 -> 50 -> V; kept so here.
    """

    def __init__(self, in_dim: int, n_views: int, tau: float, hidden: tuple[int, ...] = (100, 50)):
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers.append(nn.Linear(in_dim, width))
            in_dim = width
        self.mlp = nn.Sequential(*layers, nn.Linear(in_dim, n_views))
        self.tau = tau

    def forward(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """n x V per-sample weights e_i = softmax(sigmoid(a_i) / tau); every row sums to 1."""
        return torch.softmax(torch.sigmoid(self.mlp(torch.cat(zs, dim=1))) / self.tau, dim=1)


def discriminator(in_dim: int, hidden: tuple[int, ...] = (256, 256, 128)) -> nn.Sequential:
    """The reference's discriminator without its final sigmoid: it returns logits, which the losses take
    through `binary_cross_entropy_with_logits` (equal to BCE of the sigmoid, but finite in saturation,
    accepted by autocast, and never a device-side assert on CUDA). A sigmoid has no weights, so
    checkpoints written with it load unchanged."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.LeakyReLU(0.2)]
        in_dim = width
    return nn.Sequential(*layers, nn.Linear(in_dim, 1))


class EAMC(nn.Module):
    def __init__(self, view_shapes, n_clusters: int, *, encoder_width: int, hidden: int, tau: float,
                 rel_sigma: float, generator_weight: float, attention_weight: float, attention_lr: float,
                 discriminator_lr: float, encoder_betas, discriminator_betas):
        super().__init__()
        if len(view_shapes) < 2:
            raise ValueError("EAMC aligns views adversarially and needs at least 2 views")
        self.encoders, dims = encoders(view_shapes, encoder_width)
        if len(set(dims)) != 1:
            raise ValueError(f"EAMC's attention fusion needs equal encoder outputs per view, got {dims}; "
                             "use views of the same shape")
        self.attention = Attention(dims[0] * len(view_shapes), len(view_shapes), tau)
        self.head = DDCHead(dims[0], n_clusters, hidden)
        # discriminators[v - 1] tells view 1 (real) from view v + 1 (fake)
        self.discriminators = nn.ModuleList(discriminator(dims[0]) for _ in range(len(view_shapes) - 1))
        self.rel_sigma, self.generator_weight, self.attention_weight = rel_sigma, generator_weight, attention_weight
        self.attention_lr, self.discriminator_lr = attention_lr, discriminator_lr
        self.encoder_betas, self.discriminator_betas = tuple(encoder_betas), tuple(discriminator_betas)

    @staticmethod
    def fusion_weights(attention: torch.Tensor) -> torch.Tensor:
        """The fusion weights of a batch: the batch mean of the per-sample attention (sums to 1)."""
        return attention.mean(0)

    def fuse(self, zs: list[torch.Tensor], attention: torch.Tensor) -> torch.Tensor:
        return torch.einsum("v,vnd->nd", self.fusion_weights(attention), torch.stack(zs))

    def forward(self, views: list[torch.Tensor]) -> ModelOutput:
        zs = [enc(x) for enc, x in zip(self.encoders, views)]
        attention = self.attention(zs)
        hidden, probs = self.head(self.fuse(zs, attention))
        return ModelOutput(z=zs, h=hidden, probs=probs, extra={"attention": attention})

    def loss(self, views, out: ModelOutput) -> dict[str, torch.Tensor]:
        """The encoders' (generators') terms; the discriminators' own loss is `discriminator_loss`."""
        kernel = losses.gaussian_kernel(out.h, self.rel_sigma)
        attention = out.extra["attention"]
        ones = torch.ones(len(out.probs), 1, device=out.probs.device)
        generator = sum(F.binary_cross_entropy_with_logits(d(z), ones) for d, z in zip(self.discriminators, out.z[1:]))
        return {
            "ddc1": losses.ddc1(out.probs, kernel),
            "ddc2": ddc2_flipped(out.probs),
            "ddc3": losses.ddc3(out.probs, kernel),
            "attention": self.attention_weight * attention_kernel_loss(
                self.fusion_weights(attention), out.z, self.fuse(out.z, attention), self.rel_sigma),
            "generator": self.generator_weight * generator,
        }

    def discriminator_loss(self, zs: list[torch.Tensor]) -> torch.Tensor:
        """BCE of each discriminator: view 1's representation is real (1), view v's is fake (0)."""
        ones = torch.ones(len(zs[0]), 1, device=zs[0].device)
        return sum(F.binary_cross_entropy_with_logits(d(zs[0]), ones)
                   + F.binary_cross_entropy_with_logits(d(z), torch.zeros_like(ones))
                   for d, z in zip(self.discriminators, zs[1:]))

    def make_optimizers(self, lr: float) -> dict[str, Adam]:
        """`lr` (the training lr) drives encoders and clustering head; attention and discriminators have their own."""
        main = Adam([
            {"params": list(self.encoders.parameters()) + list(self.head.parameters()), "lr": lr},
            {"params": self.attention.parameters(), "lr": self.attention_lr},
        ], betas=self.encoder_betas)
        disc = Adam(self.discriminators.parameters(), lr=self.discriminator_lr,
                                betas=self.discriminator_betas)
        return {"main": main, "discriminator": disc}

    def train_step(self, views, optimizers, phase: str) -> dict[str, torch.Tensor]:
        """One encoder/attention/head step on `loss`, then one discriminator step on the detached representations."""
        out = self(views)
        terms = self.loss(views, out)
        optimizers["main"].zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        optimizers["main"].step()
        d_loss = self.discriminator_loss([z.detach() for z in out.z])
        optimizers["discriminator"].zero_grad(set_to_none=True)  # drops the generator step's gradients on D
        d_loss.backward()
        optimizers["discriminator"].step()
        return {**{k: v.detach() for k, v in terms.items()}, "discriminator": d_loss.detach()}

    def assign(self, out: ModelOutput) -> torch.Tensor:
        """Labels from the model's output on a whole set: the most probable cluster."""
        return out.probs.argmax(1)

    def predict(self, views: list[torch.Tensor]) -> torch.Tensor:
        return self.assign(batched_forward(self, views))
