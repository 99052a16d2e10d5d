"""The model registry: every model is built by name from its view shapes, cluster count and settings."""
from __future__ import annotations

from typing import Callable

from torch import nn

from robustmvc.models.blocks import ModelOutput
from robustmvc.models.comvc import CoMVC

REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "comvc": CoMVC,
}


def names() -> list[str]:
    return list(REGISTRY)


def build(name: str, view_shapes, n_clusters: int, **settings) -> nn.Module:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(REGISTRY)}")
    try:
        return REGISTRY[name](view_shapes, n_clusters, **settings)
    except TypeError as err:
        raise ValueError(f"bad settings for model {name!r}: {err}") from err


__all__ = ["REGISTRY", "ModelOutput", "build", "names"]
