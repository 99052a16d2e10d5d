"""ALRDC (Yang et al., NeurIPS 2020) on multi-view data: a backbone whose clustering is trained to
survive a learned perturbation of its consensus representation h.

Each batch plays one round of a two-player game:
(a) the wrapper's own `EmbeddingPerturber` (the embedding attack) takes one ascent step on
    KL(p(a|h) || p(a|h + delta)) with the backbone fixed;
(b) the backbone takes one step on  L(x) - mi_weight * I(a; a~),  where a~ is the assignment of
    h + delta (delta from the updated perturber, held fixed), so the gradient reaches the
    encoders, fusion and clustering layer through h and teaches them assignments that a bounded
    move of h cannot change.

The wrapper is a model of the one interface (forward, loss, predict are the backbone's plus the
alignment term), so the trainer, attacks, evaluation and checkpoints need no special case.
"""
from __future__ import annotations

import torch
from torch import nn

from robustmvc.adam import Adam
from robustmvc.attacks.embedding import EmbeddingPerturber, embedding_head
from robustmvc.models.blocks import ModelOutput, evaluating
from robustmvc.models.losses import kl_term

MI_FLOOR = 1e-8  # inside the logs only: an empty cell of the joint contributes 0 log 0 = 0


def _log(t: torch.Tensor) -> torch.Tensor:
    return t.clamp_min(MI_FLOOR).log()


def mutual_information(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """I(a; a~) of two soft assignments of the same samples, as in IIC (Ji et al., ICCV 2019).

    The joint of the two discrete cluster variables is P = mean_i p_i q_i^T, symmetrised (both come
    from the same clustering layer, so (a, a~) and (a~, a) are the same event), and
    I = sum P log(P / (P_row P_col)). This is the estimator used in place of ALRDC's Deep-InfoMax-style
    neural estimator: the assignments are discrete with k values, so the mutual information of
    their joint is exact and needs no critic network that would itself have to be trained (a third
    player in the game) and that only gives a bound. Maximising it also keeps clusters balanced and
    assignments confident, which is what the clustering objective wants anyway.
    """
    joint = p.t() @ q / len(p)
    joint = (joint + joint.t()) / 2
    rows, cols = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    return (joint * (_log(joint) - _log(rows) - _log(cols))).sum()


class ALRDC(nn.Module):
    def __init__(self, backbone: nn.Module, view_shapes, *, mi_weight: float, bound: float, perturber_lr: float,
                 perturber_hidden: int, seed: int | None):
        """`backbone`: a built baseline with a clustering layer on h, trained through its loss
        (`registry.build` makes and checks it); `view_shapes` size the perturber to its h.

        mi_weight 0.3: I(a; a~) reaches ~log k (2.3 for 10 clusters), several times a DDC term; at 1.0
        it overrode the clustering objective (demo, width 8, 10 epochs: clean ACC 0.86 -> 0.76), at 0.3
        clean ACC stays within 2 points. bound 0.2, below the attack's 0.5: a perturber that takes one
        step per batch chases a moving target; trained at 0.5, ALRDC kept less ACC under the 0.5 attack than
        trained at 0.2 or 0.3 (demo, two seeds)."""
        super().__init__()
        self.backbone = backbone
        embedding_head(self.backbone)  # fails early for a backbone without `probs_from_h`
        with torch.no_grad(), evaluating(self.backbone):
            dim = self.backbone([torch.zeros(1, *shape) for shape in view_shapes]).h.shape[1]
        self.mi_weight, self.perturber_lr = mi_weight, perturber_lr
        # the perturber is initialised from its own seed, drawn (when not given) from the run's seeded RNG
        # after the backbone: the backbone's initialisation is that of the plain backbone for the same seed
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.perturber = EmbeddingPerturber(dim, bound, perturber_hidden)

    def forward(self, views: list[torch.Tensor]) -> ModelOutput:
        return self.backbone(views)

    def probs_from_h(self, h: torch.Tensor) -> torch.Tensor:
        return self.backbone.probs_from_h(h)

    def loss(self, views, out: ModelOutput) -> dict[str, torch.Tensor]:
        """The backbone's terms plus -mi_weight I(a; a~) against the current perturber, held fixed."""
        terms = self.backbone.loss(views, out)
        with torch.no_grad():
            delta = self.perturber(out.h.detach())
        terms["mi_align"] = -self.mi_weight * mutual_information(out.probs, self.probs_from_h(out.h + delta))
        return terms

    def make_optimizers(self, lr: float) -> dict[str, Adam]:
        """`lr` (the training lr) drives the backbone; the perturber has its own."""
        return {"backbone": Adam(self.backbone.parameters(), lr=lr),
                "perturber": Adam(self.perturber.parameters(), lr=self.perturber_lr)}

    def train_step(self, views, optimizers, phase: str) -> dict[str, torch.Tensor]:
        """One perturber step (a), then one backbone step (b) on the same forward pass.

        (a) sees h detached, so its backward stops at the clustering layer's weights; the gradient it
        leaves there is cleared before (b). perturber_kl is logged as the KL the attacker reached.
        """
        out = self.backbone(views)
        h = out.h.detach()
        kl = kl_term(out.probs.detach(), self.probs_from_h(h + self.perturber(h)), "code")
        optimizers["perturber"].zero_grad(set_to_none=True)
        (-kl).backward()
        optimizers["perturber"].step()
        terms = self.loss(views, out)
        optimizers["backbone"].zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        optimizers["backbone"].step()
        return {**{k: v.detach() for k, v in terms.items()}, "perturber_kl": kl.detach()}

    def assign(self, out: ModelOutput) -> torch.Tensor:
        return self.backbone.assign(out)

    def predict(self, views: list[torch.Tensor]) -> torch.Tensor:
        return self.backbone.predict(views)
