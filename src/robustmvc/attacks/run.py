"""One attack on one trained model under one evaluation protocol (`robustmvc.protocols`: `paper` or `strict`):
split the eval half as the protocol says, fit the attacker, and score clean and attacked samples with the
protocol's BatchNorm mode (`run`). Reading and writing the files around it is `runs.attack_files`.

Attacks: `gan` (the paper's), `pgd`, `blackbox` (Chhabra et al.'s, queries only), `whitebox` (the same
loss with exact gradients) and `embedding` (ALRDC's perturbation of h; the inputs stay clean).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from robustmvc import protocols
from robustmvc.attacks import blackbox, embedding, gan, pgd
from robustmvc.device import seed_everything, to_tensors
from robustmvc.metrics import clustering_scores
from robustmvc.variants import ATTACKS


@dataclass
class AttackResult:
    attack: str
    settings: dict
    labels: np.ndarray               # true classes of the scored samples
    pred_clean: np.ndarray
    pred_adv: np.ndarray
    clean_views: list[np.ndarray]    # scored samples, clean
    adv_views: list[np.ndarray]      # ... and attacked
    score_positions: np.ndarray      # positions of the scored samples within the eval half
    fit_positions: np.ndarray        # positions the attacker was fitted on (empty for PGD)
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0             # fitting (GAN) or searching (PGD) time
    perturber: torch.nn.Module | None = None
    queries: int | None = None       # black-box: samples submitted to the target while fitting
    h_clean: np.ndarray | None = None  # embedding attack: h of the scored samples ...
    h_adv: np.ndarray | None = None    # ... and h + delta

    @property
    def clean(self) -> dict[str, float]:
        return clustering_scores(self.labels, self.pred_clean)

    @property
    def attacked(self) -> dict[str, float]:
        return clustering_scores(self.labels, self.pred_adv)

    def summary(self) -> dict:
        """Scores and the size of the perturbation, measured on the scored samples."""
        diffs = [np.abs(a - c) for a, c in zip(self.adv_views, self.clean_views)]
        epochs = [h["seconds"] for h in self.history]
        return {
            "clean": self.clean,
            "attacked": self.attacked,
            "assignment_changed": float(np.mean(self.pred_adv != self.pred_clean)),
            "max_abs_perturbation": float(max(d.max() for d in diffs)),
            "max_abs_perturbation_per_view": [float(d.max()) for d in diffs],
            "mean_abs_perturbation_per_view": [float(d.mean()) for d in diffs],
            "min_value": float(min(a.min() for a in self.adv_views)),
            "max_value": float(max(a.max() for a in self.adv_views)),
            "seconds_per_epoch": float(np.mean(epochs)) if epochs else None,
            "seconds": self.seconds,
            **({} if self.queries is None else
               {"queries": int(self.queries), "queries_per_sample": self.queries / max(len(self.fit_positions), 1)}),
            **({} if self.h_adv is None else {"max_relative_embedding_perturbation": float(
                (np.linalg.norm(self.h_adv - self.h_clean, axis=1)
                 / np.maximum(np.linalg.norm(self.h_clean, axis=1), 1e-12)).max())}),
        }


def prepare(model: torch.nn.Module, views, labels, settings: dict, device: torch.device | None = None):
    """What an attack run starts from: the model on `device`, the seed set, the eval half as tensors and the
    protocol's split of it. Returns (device, tensors, labels, fit positions, score positions)."""
    device = device or next(model.parameters()).device
    model.to(device)
    seed_everything(int(settings["seed"]))
    labels = np.asarray(labels)
    fit_pos, score_pos = protocols.split(len(labels), settings["protocol"], settings["heldout_fraction"],
                                         int(settings["seed"]))
    return device, to_tensors(views, device), labels, fit_pos, score_pos


def run(model: torch.nn.Module, views, labels, settings: dict, attack: str = "gan",
        device: torch.device | None = None, progress: bool = True, precision: str = "fp32") -> AttackResult:
    """Attack `model` on the evaluation samples `views` (numpy arrays or tensors) with `labels`.

    `settings` must be complete (see `attack_settings.resolve_settings`). The model is moved to `device` (default:
    where it is) and left unchanged. `precision` applies while the attacker fits or searches;
    predictions are scored in fp32.
    """
    s = settings
    device, x, labels, fit_pos, score_pos = prepare(model, views, labels, s, device)
    score_idx = torch.as_tensor(score_pos, device=device)
    scored = [v[score_idx] for v in x]
    batchnorm = protocols.batchnorm_of(s)
    history: list[dict] = []
    perturber = queries = h_clean = h_adv = pred_clean = pred_adv = None
    fit_views = [v[torch.as_tensor(fit_pos, device=device)] for v in x]
    start = time.perf_counter()
    if attack == "gan":
        perturber, history = gan.fit(model, fit_views, s, progress=progress,
                                     score_views=scored, score_labels=labels[score_pos], precision=precision)
        adv = perturber.perturb(scored)
    elif attack in ("blackbox", "whitebox"):
        perturber, history, queries = blackbox.fit(model, fit_views, s, progress=progress, name=attack,
                                                   precision=precision)
        adv = perturber.perturb(scored)
    elif attack == "embedding":
        perturber, history = embedding.fit(model, fit_views, s, progress=progress, precision=precision)
        adv = scored  # the inputs stay clean; h is what moves
        pred_clean, pred_adv, h_clean, h_adv = (t.cpu().numpy() for t in embedding.attacked_predictions(
            model, perturber, scored, batchnorm, int(s["batch_size"])))
    elif attack == "pgd":
        fit_pos = np.array([], dtype=np.int64)
        with protocols.frozen_target(model, batchnorm):
            adv = pgd.pgd_set(model, scored, pgd.OBJECTIVES[s["pgd_objective"]], s["eps"], s["pgd_step"],
                              int(s["pgd_steps"]), int(s["batch_size"]), bool(s["random_start"]),
                              seed=int(s["seed"]), precision=precision)
    else:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    seconds = time.perf_counter() - start
    return finish(model, attack, s, labels, scored, adv, score_pos, fit_pos, history, seconds, perturber,
                  queries=queries, h=(h_clean, h_adv), pred=(pred_clean, pred_adv))


def finish(model, attack: str, s: dict, labels, scored, adv, score_pos, fit_pos, history, seconds, perturber,
           queries=None, h=(None, None), pred=(None, None)) -> AttackResult:
    """Score the attacked samples `adv` of the scored ones against the clean ones (unless the attack scored
    them itself: `pred`) under the protocol's BatchNorm mode: in the paper's, in shuffled batches of the
    attack's batch size, as the public code's loader."""
    pred_clean, pred_adv = pred
    if pred_adv is None:
        batchnorm = protocols.batchnorm_of(s)
        chunk = int(s["batch_size"]) if batchnorm == "batch" else None
        with protocols.frozen_target(model, batchnorm), torch.no_grad():
            pred_clean = protocols.predict(model, scored, chunk, int(s["seed"])).cpu().numpy()
            pred_adv = protocols.predict(model, adv, chunk, int(s["seed"]) + 1).cpu().numpy()
    return AttackResult(attack, dict(s), labels[score_pos], pred_clean, pred_adv,
                        [v.cpu().numpy() for v in scored], [v.cpu().numpy() for v in adv],
                        score_pos, fit_pos, history, seconds, perturber, queries, *h)
