"""The evaluation protocols (docs/ARCHITECTURE.md, section 5): what `paper` and `strict` mean, how the
attacked model's BatchNorm normalises under each (`frozen_target`), which samples fit and which score an
attacker (`split`), and how a set is scored (`predict`, and the clean evaluation of training,
`clean_scores`). The attacks, the trainer, the runs and the tables all read them from here; the table of the
two (`PROTOCOLS`) sits with the attacks' settings (robustmvc.attack_settings), which the DAG reads without torch.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from robustmvc.attack_settings import PROTOCOLS, check_protocol
from robustmvc.device import to_tensors
from robustmvc.metrics import clustering_scores
from robustmvc.models.blocks import ModelOutput, frozen_parameters

BATCHNORM_MODES = ("eval", "batch")


def batchnorm_of(settings: dict) -> str:
    """How the target's BatchNorm normalises under the settings' protocol: `batch` or `eval`."""
    return PROTOCOLS[check_protocol(settings["protocol"])]["batchnorm"]


def protocol_name(settings: dict) -> str:
    """The protocol an attack's settings (or a metrics record) were run under, old files included.

    Files written before the protocols were named set the samples (`protocol`: paper or heldout) and the
    BatchNorm mode (`target_batchnorm`: eval or batch) apart; the two combinations the protocols name map
    to them, and the other two keep a name that says what they were (the old default, same samples with
    running statistics, is `paper-running-bn`). A file with neither field ran the paper protocol.
    """
    protocol = settings.get("protocol", "paper")
    if "target_batchnorm" not in settings:
        return "strict" if protocol == "heldout" else protocol
    same = protocol == "paper"
    batch = settings["target_batchnorm"] == "batch"
    if same == batch:
        return "paper" if same else "strict"
    return "paper-running-bn" if same else "strict-batch-bn"


def split(n: int, protocol: str, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit positions, scored positions) within the eval half. `paper`: both are all n samples;
    `strict`: a seeded shuffle, the first `fraction` fits the attacker, the rest is scored."""
    if PROTOCOLS[check_protocol(protocol)]["samples"] == "same":
        return np.arange(n), np.arange(n)
    perm = np.random.default_rng(seed).permutation(n)
    n_fit = int(round(fraction * n))
    if not 0 < n_fit < n:
        raise ValueError(f"strict protocol with {n} samples and fraction {fraction} leaves a part empty")
    return np.sort(perm[:n_fit]), np.sort(perm[n_fit:])


def _batchnorms(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def frozen_target(model: nn.Module, batchnorm: str = "eval"):
    """The target as the attack sees it: parameters frozen (requires_grad False), eval mode, and
    with batchnorm='batch' its BatchNorm layers normalise with the statistics of each batch (the
    reference behaviour) without updating the running statistics. Everything is restored on exit,
    so gradients still flow through the model to its inputs but never reach its parameters.
    """
    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"BatchNorm mode {batchnorm!r} is not one of {', '.join(BATCHNORM_MODES)}")
    was_training = model.training
    hidden = []
    with frozen_parameters(model):
        try:
            model.eval()
            if batchnorm == "batch":
                for m in _batchnorms(model):
                    if m.running_mean is not None:
                        # with no running statistics, BatchNorm normalises by the batch even in eval mode
                        hidden.append((m, m.running_mean, m.running_var))
                        m.running_mean, m.running_var = None, None
            yield model
        finally:
            for m, mean, var in hidden:
                m.running_mean, m.running_var = mean, var
            model.train(was_training)


def chunks(n: int, batch_size: int) -> list[slice]:
    """Consecutive slices of at most `batch_size` covering range(n); a last slice of one sample joins the
    one before it (batch-statistics BatchNorm cannot normalise a single sample)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [slice(a, b) for a, b in zip(starts, starts[1:] + [n])]


def predict(model: nn.Module, views: list[torch.Tensor], batch_size: int | None = None,
            seed: int = 0) -> torch.Tensor:
    """Cluster labels of a whole set, in the set's order.

    batch_size None: the model's own `predict` (running-statistics BatchNorm). With a batch_size (the
    paper protocol, inside `frozen_target(model, "batch")`): the set is shuffled (seeded), the model's
    forward runs on consecutive batches of that size, so BatchNorm normalises with the statistics of
    shuffled batches as the public code's loader gives them, and the outputs go back to the set's order.
    The labels then come from `model.assign` on the whole set's output at once: a model whose clustering
    is fitted (k-means in Multi-VAE and SEM) fits it once on every sample, not once per batch, whose
    cluster numbers would not correspond across batches.
    """
    if batch_size is None:
        return model.predict(views)
    n = len(views[0])
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).to(views[0].device)
    with torch.no_grad():
        outs = [model([v[order[part]] for v in views]) for part in chunks(n, int(batch_size))]
    back = torch.argsort(order)
    out = ModelOutput(z=[torch.cat([o.z[v] for o in outs])[back] for v in range(len(outs[0].z))],
                      h=torch.cat([o.h for o in outs])[back], probs=torch.cat([o.probs for o in outs])[back],
                      extra={k: torch.cat([o.extra[k] for o in outs])[back] for k in outs[0].extra})
    return model.assign(out)


def clean_labels(model, views, device=None) -> np.ndarray:
    """Labels of a whole set under running statistics (the model's own `predict`): the clean evaluation of
    training."""
    device = device or next(model.parameters()).device
    with torch.no_grad():
        return model.predict(to_tensors(views, device)).cpu().numpy()


def clean_scores(model, views, labels, device=None) -> dict[str, float]:
    """ACC, NMI and ARI of `clean_labels` against `labels`."""
    return clustering_scores(labels, clean_labels(model, views, device))
