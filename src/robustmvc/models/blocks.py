"""Building blocks shared by the models: image encoders, fusion, the DDC clustering head."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ModelOutput:
    """What every model's forward returns (the one interface attacks and defenses use).

    z: view-specific representations (attacked by L_a-com); h: consensus representation
    (attacked by L_a-con); probs: soft cluster assignments, rows sum to 1 (what a black-box
    attacker sees); extra: model-specific tensors its own loss needs (reconstructions, ...).
    """
    z: list[torch.Tensor]
    h: torch.Tensor
    probs: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


def cnn_small(in_channels: int, width: int) -> nn.Sequential:
    """The paper's encoder: two blocks of [conv3x3, ReLU, conv3x3, BN, ReLU, maxpool2], no padding."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"encoder_width must be a whole number of channels, at least 1, got {width!r}; "
                         "set it so under architecture (or --set encoder_width=...)")
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(2):
        layers += [nn.Conv2d(channels, width, 3), nn.ReLU(), nn.Conv2d(width, width, 3),
                   nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
        channels = width
    layers.append(nn.Flatten())
    return nn.Sequential(*layers)


def output_dim(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Size of the flattened output for one input of `shape` (found by a dry run, no grad)."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        dim = module(torch.zeros(1, *shape)).shape[1]
    module.train(was_training)
    return int(dim)


def encoders(view_shapes, width: int) -> tuple[nn.ModuleList, list[int]]:
    """One encoder per view (never shared), with the flattened size of each."""
    mods = nn.ModuleList(cnn_small(shape[0], width) for shape in view_shapes)
    return mods, [output_dim(m, s) for m, s in zip(mods, view_shapes)]


class WeightedMean(nn.Module):
    """Fusion by a weighted mean; weights = softmax of trainable logits that start equal."""

    def __init__(self, n_views: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_views))

    @property
    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=0)

    def forward(self, zs: list[torch.Tensor]) -> torch.Tensor:
        return torch.einsum("v,vnd->nd", self.weights, torch.stack(zs))


class DDCHead(nn.Module):
    """Linear -> ReLU -> BatchNorm (the hidden layer the DDC kernel uses) -> Linear -> softmax."""

    def __init__(self, in_dim: int, n_clusters: int, hidden: int):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.BatchNorm1d(hidden))
        self.out = nn.Linear(hidden, n_clusters)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden(x)
        return hidden, torch.softmax(self.out(hidden), dim=1)


@contextmanager
def frozen_parameters(model: nn.Module):
    """`model` with requires_grad off on every parameter, restored on exit: gradients still reach the
    inputs, but autograd records no edge to a weight, so a search over inputs (PGD, an attack's
    generator) neither builds nor computes anything for the weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)


class evaluating:
    """Context manager: the model in eval mode (BatchNorm on running statistics), restored after."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was_training)


@torch.no_grad()
def batched_forward(model: nn.Module, views: list[torch.Tensor], batch_size: int = 1000) -> ModelOutput:
    """The model's output on a whole set, computed batch by batch in eval mode."""
    with evaluating(model):
        outs = [model([v[i:i + batch_size] for v in views]) for i in range(0, len(views[0]), batch_size)]
    return ModelOutput(
        z=[torch.cat([o.z[v] for o in outs]) for v in range(len(outs[0].z))],
        h=torch.cat([o.h for o in outs]),
        probs=torch.cat([o.probs for o in outs]),
        extra={k: torch.cat([o.extra[k] for o in outs]) for k in outs[0].extra},
    )


def cnn_small_decoder(shape: tuple[int, ...], width: int) -> nn.Sequential:
    """Mirror of `cnn_small` for a view of `shape` (C, H, W): flattened code in, the view's exact shape out.

    Each encoder block maps a side s -> (s - 4) // 2 (two valid 3x3 convs, maxpool 2); each decoder block
    upsamples to the pre-pool size and grows it back by 4 with two 3x3 transposed convs, so odd sides come
    back exactly (1x28x28 and 3x128x64 alike). Sigmoid output: views are in [0, 1].
    """
    channels, height, width_px = shape
    sizes = [(height, width_px)]  # the input size of each encoder block
    for _ in range(2):
        h, w = sizes[-1]
        sizes.append(((h - 4) // 2, (w - 4) // 2))
    if min(sizes[-1]) < 1:
        raise ValueError(f"views of shape {tuple(shape)} are too small for the cnn_small encoder (need >= 16x16)")
    layers: list[nn.Module] = [nn.Unflatten(1, (width, *sizes[2]))]
    for block, (h, w) in enumerate([sizes[1], sizes[0]]):
        last = block == 1
        layers += [nn.Upsample(size=(h - 4, w - 4), mode="nearest"),
                   nn.ConvTranspose2d(width, width, 3), nn.ReLU(),
                   nn.ConvTranspose2d(width, channels if last else width, 3)]
        layers += [nn.Sigmoid()] if last else [nn.BatchNorm2d(width), nn.ReLU()]
    return nn.Sequential(*layers)


def decoders(view_shapes, width: int) -> nn.ModuleList:
    """One `cnn_small_decoder` per view, taking that view's flattened encoder output."""
    return nn.ModuleList(cnn_small_decoder(tuple(shape), width) for shape in view_shapes)


def kmeans_labels(features: torch.Tensor, n_clusters: int, seed: int = 0, n_init: int = 10):
    """sklearn k-means on the rows of `features`: (labels as LongTensor, centres as float Tensor), on features' device."""
    from sklearn.cluster import KMeans

    x = features.detach().double().cpu().numpy()
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(x)
    return (torch.as_tensor(km.labels_, dtype=torch.long, device=features.device),
            torch.as_tensor(km.cluster_centers_, dtype=features.dtype, device=features.device))
