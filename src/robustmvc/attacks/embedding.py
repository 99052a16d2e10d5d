"""The embedding-space attack of ALRDC (Yang et al., NeurIPS 2020), on the consensus representation h.

ALRDC argues that a deep clustering model can be fooled without touching its input: a small move of
the embedding is enough for the clustering layer to change its mind. Here a perturber network learns,
for each h_i, a delta_i with ||delta_i||_2 <= bound * ||h_i||_2 that maximises

    mean_i KL(p(a|h_i) || p(a|h_i + delta_i))

through the target's clustering layer alone (`probs_from_h`). The bound is relative because the
scale of h differs between models and datasets; a fixed radius would be harmless for one and
overwhelming for another. The target's parameters never change.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from robustmvc.adam import Adam
from robustmvc.attack_settings import check_embedding
from robustmvc.attacks.gan import LOWER_LR
from robustmvc.device import precision_of, resolve_precision
from robustmvc.files import load_module_file, save_module
from robustmvc.loop import run_epochs
from robustmvc.models.blocks import batched_forward
from robustmvc.models.losses import kl_term
from robustmvc.protocols import batchnorm_of, frozen_target

def embedding_head(model: nn.Module):
    """The model's map h -> probs, which the attack differentiates through.

    A wrapper (a defense) delegates `probs_from_h` to its backbone, so the backbone at the bottom of
    the chain is the one that has to have it.
    """
    inner = model
    while hasattr(inner, "backbone"):
        inner = inner.backbone
    if not hasattr(inner, "probs_from_h"):
        raise ValueError(f"the embedding attack needs a model whose clustering layer maps h to probs; "
                         f"{type(inner).__name__} has none (`python -m robustmvc models` lists the models that do)")
    return model.probs_from_h


class EmbeddingPerturber(nn.Module):
    """An MLP from h to a perturbation of h, projected into the relative L2 ball of each row."""

    def __init__(self, dim: int, bound: float, hidden: int = 128):
        super().__init__()
        self.dim, self.bound, self.hidden = int(dim), float(bound), int(hidden)
        self.net = nn.Sequential(nn.Linear(self.dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """delta_i = raw_i * min(1, bound ||h_i|| / ||raw_i||): a rescaling, so the direction the network
        chose survives and the gradient still reaches it when the bound is active."""
        raw = self.net(h)
        radius = self.bound * h.norm(dim=1, keepdim=True)
        scale = (radius / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
        return raw * scale


def embeddings(model: nn.Module, views: list[torch.Tensor], batchnorm: str = "eval",
               batch_size: int = 100) -> torch.Tensor:
    """h of the frozen target on a whole set, batch by batch, without gradients."""
    with frozen_target(model, batchnorm):
        return batched_forward(model, views, batch_size).h


def fit(model: nn.Module, views: list[torch.Tensor], settings: dict, progress: bool = True,
        name: str = "embedding", precision: str = "fp32") -> tuple[EmbeddingPerturber, list[dict]]:
    """Train a perturber against the frozen `model` on `views` (tensors on the model's device).

    The clean h and p(a|h) never change while the perturber learns, so they are computed once; each
    step then costs one pass through the clustering layer. Returns the perturber (eval mode) and the
    per-epoch history (mean KL reached, seconds). `precision` is that of the target's conv stacks while
    the clean h is computed; the perturber and the clustering layer are linear and stay fp32.
    """
    s = check_embedding(settings)
    head = embedding_head(model)
    bs = int(s["batch_size"])
    batchnorm = batchnorm_of(s)
    with precision_of(model, resolve_precision(precision, views[0].device)):
        h = embeddings(model, views, batchnorm, bs)
    torch.manual_seed(int(s["seed"]))
    perturber = EmbeddingPerturber(h.shape[1], s["bound"], int(s["hidden"])).to(h.device)
    opt = Adam(perturber.parameters(), lr=s["lr"])
    with frozen_target(model, batchnorm):
        p_clean = head(h)

        def step(epoch, idx):
            kl = kl_term(p_clean[idx], head(h[idx] + perturber(h[idx])), "code")
            opt.zero_grad(set_to_none=True)
            (-kl).backward()
            opt.step()
            return {"kl": kl}

        # every sample, the last batch short: the clustering layer alone needs no batch statistics
        history = run_epochs(step, len(h), bs, int(s["epochs"]), seed=int(s["seed"]), device=h.device,
                             label=f"attack {name}", fix=LOWER_LR, progress=progress, full_batches=False,
                             show={"kl": "kl"})
    perturber.eval()
    return perturber, history


@torch.no_grad()
def attacked_predictions(model: nn.Module, perturber: EmbeddingPerturber, views: list[torch.Tensor],
                         batchnorm: str = "eval", batch_size: int = 100
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean labels, attacked labels, h, h + delta) on a whole set: what a runner scores and measures."""
    head = embedding_head(model)
    h = embeddings(model, views, batchnorm, batch_size)
    h_adv = h + perturber(h)
    return head(h).argmax(1), head(h_adv).argmax(1), h, h_adv


def save_perturber(path: str | Path, perturber: EmbeddingPerturber, meta: dict) -> None:
    save_module(path, perturber, dict(meta, kind="embedding", dim=perturber.dim, bound=perturber.bound,
                                      hidden=perturber.hidden))


def load_perturber(path: str | Path, device="cpu") -> tuple[EmbeddingPerturber, dict]:
    ckpt = load_module_file(path, device, "fit one with `python -m robustmvc attack ... --attack embedding "
                                          "--generator-out PATH`")
    kind = ckpt["meta"].get("kind", "gan")
    if kind != "embedding":
        raise ValueError(f"{path} holds a {kind!r} attacker, not an embedding perturber")
    return perturber_from(ckpt, device)


def perturber_from(ckpt: dict, device="cpu") -> tuple[EmbeddingPerturber, dict]:
    """The perturber held by a loaded `save_perturber` file (`files.load_module_file`'s dict)."""
    meta = ckpt["meta"]
    perturber = EmbeddingPerturber(meta["dim"], meta["bound"], meta["hidden"])
    perturber.load_state_dict(ckpt["state_dict"])
    return perturber.to(device).eval(), meta
