"""The one evaluation protocol: predictions of a model on a set of views, scored against labels."""
from __future__ import annotations

import numpy as np
import torch

from robustmvc.device import to_tensors
from robustmvc.metrics import clustering_scores


def predict(model, views, device=None) -> np.ndarray:
    device = device or next(model.parameters()).device
    with torch.no_grad():
        return model.predict(to_tensors(views, device)).cpu().numpy()


def evaluate(model, views, labels, device=None) -> dict[str, float]:
    return clustering_scores(labels, predict(model, views, device))
