"""AR-DMVC and AR-DMVC-AM (docs/ARCHITECTURE.md, section 6), as a wrapper that a baseline trained
through its loss can wear.

    L_AR-DMVC    = L(x) + lambda L(x~),  x~ = PGD argmax of the contrastive loss in B_eps(x) and [0, 1]
    L_AR-DMVC-AM = L_AR-DMVC + gamma KL(p(a~|x~) || p(a|x))

L is the backbone's own loss (for CoMVC: DDC1-3 + contrastive). The wrapper is itself a model of the
one interface: forward is the backbone's, so attacks, evaluation and checkpoints treat it like any
baseline, and the trainer needs no special case: the adversarial terms are part of `loss()`.
"""
from __future__ import annotations

import torch
from torch import nn

from robustmvc.attacks.pgd import pgd
from robustmvc.models import losses
from robustmvc.models.losses import kl_term
from robustmvc.models.blocks import ModelOutput

def contrastive_objective(pairs: str = "all", tau: float = 0.1):
    """What PGD maximises: the NT-Xent contrastive loss between views of the adversarial batch.

    `all`: every view pair; `first`: views 0 and 1 only, as the public code does (then the other views
    keep only their random start).
    """
    if pairs not in ("all", "first"):
        raise ValueError(f"pgd_pairs must be 'all' or 'first', got {pairs!r}")

    def objective(model, clean, adv):
        zs = model(adv).z
        return losses.contrastive(zs if pairs == "all" else zs[:2], tau)

    return objective


class AdversarialTraining(nn.Module):
    def __init__(self, backbone: nn.Module, *, adv_weight: float, kl_weight: float, kl_direction: str,
                 pgd_eps: float, pgd_step: float, pgd_steps: int, pgd_pairs: str, pgd_batchnorm: str, tau: float,
                 seed: int | None):
        """`backbone`: a built baseline trained through its loss (`registry.build` makes and checks it)."""
        super().__init__()
        if not (pgd_eps >= 0 and pgd_step >= 0 and pgd_steps >= 0):  # refused before training, not at its first batch
            raise ValueError(f"pgd_eps, pgd_step and pgd_steps must be at least 0, got {pgd_eps}, {pgd_step}, {pgd_steps}; "
                             "set them so under models.<name> (or --set)")
        if pgd_batchnorm not in ("eval", "train"):
            raise ValueError(f"pgd_batchnorm must be 'eval' or 'train', got {pgd_batchnorm!r}")
        kl_term(torch.ones(1, 2) / 2, torch.ones(1, 2) / 2, kl_direction)  # validate the direction early
        self.backbone = backbone
        self.adv_weight, self.kl_weight, self.kl_direction = adv_weight, kl_weight, kl_direction
        self.pgd_eps, self.pgd_step, self.pgd_steps = pgd_eps, pgd_step, pgd_steps
        self.pgd_batchnorm = pgd_batchnorm
        self.objective = contrastive_objective(pgd_pairs, tau)
        # PGD's random starts draw from their own generator, seeded from the run's seeded RNG after the
        # backbone is initialised: the backbone's initialisation and training order stay those of
        # the plain backbone for the same seed
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        self.pgd_generator = torch.Generator().manual_seed(seed)

    def __getattr__(self, name: str):
        # The trainer's optional hooks are the backbone's: its pretraining (which stays clean: the
        # adversarial terms join in the main phase), its per-epoch updates and its optimiser groups.
        # A backbone without a hook leaves the wrapper without it, so `hasattr` answers for both.
        if name in ("pretrain_loss", "start_epoch", "make_optimizers"):
            return getattr(self.backbone, name)
        return super().__getattr__(name)

    def forward(self, views: list[torch.Tensor]) -> ModelOutput:
        return self.backbone(views)

    def adversarial_views(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """x~ by PGD. With pgd_batchnorm `train` (default) the search runs in train mode as the public code
        does: BatchNorm on batch statistics, each search step also updating the running statistics; `eval`
        searches on the running statistics and leaves them untouched."""
        return pgd(self.backbone, views, self.objective, self.pgd_eps, self.pgd_step, self.pgd_steps,
                   random_start=True, generator=self.pgd_generator,
                   keep_mode=self.pgd_batchnorm == "train")

    def loss(self, views, out: ModelOutput) -> dict[str, torch.Tensor]:
        return self.loss_at(views, out, self.adversarial_views(views))

    def loss_at(self, views, out: ModelOutput, adv: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss once x~ is found: a stack of seeds (`stack.py`) searches x~ for every seed at once,
        outside the per-seed map that computes the rest."""
        terms = self.backbone.loss(views, out)
        adv_out = self.backbone(adv)
        terms.update({f"adv_{k}": self.adv_weight * v for k, v in self.backbone.loss(adv, adv_out).items()})
        if self.kl_weight > 0:
            terms["kl"] = self.kl_weight * kl_term(out.probs, adv_out.probs, self.kl_direction)
        return terms

    def probs_from_h(self, h: torch.Tensor) -> torch.Tensor:
        return self.backbone.probs_from_h(h)

    def assign(self, out: ModelOutput) -> torch.Tensor:
        return self.backbone.assign(out)

    def predict(self, views: list[torch.Tensor]) -> torch.Tensor:
        return self.backbone.predict(views)
