"""One attack on one trained model under one evaluation protocol (`gan.PROTOCOLS`: `paper` or `strict`):
split the eval half as the protocol says, fit the attacker, score clean and attacked samples with the
protocol's BatchNorm mode, and write the metrics JSON (plus, optionally, the generators and a figure).

`attack_files(...)` is what the CLI (`python -m robustmvc attack`) and the notebooks call;
`detect_files(...)` scores anomaly detectors against a saved attacker.

Attacks: `gan` (the paper's), `pgd`, `blackbox` (Chhabra et al.'s, queries only), `whitebox` (the same
loss with exact gradients) and `embedding` (ALRDC's perturbation of h; the inputs stay clean).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from robustmvc import config as config_mod
from robustmvc import data as data_mod
from robustmvc import detect
from robustmvc.attacks import blackbox, embedding, gan, pgd
from robustmvc.device import resolve_device, resolve_precision, seed_everything, to_tensors
from robustmvc.files import check_outputs, load_module_file, together, write_json
from robustmvc.metrics import clustering_scores
from robustmvc.train import load_checkpoint

log = logging.getLogger(__name__)

ATTACKS = ("gan", "pgd", "blackbox", "whitebox", "embedding")


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


def collapse_record(result: AttackResult) -> dict:
    """What explains a collapse, for the metrics JSON: the size of every cluster clean and attacked
    (an NMI of 0 after the attack means one cluster took every sample), and per view the perturbation's
    mean |delta|, the share of pixels pushed to the full budget +-eps, and the per-sample L2 norm.

    A pixel counts as at the budget when |delta| >= eps (1 - 1e-3): float rounding of the clamp leaves
    it a hair below. Attacks without an input budget (the embedding attack) record sizes only.
    """
    k = int(max(result.pred_clean.max(initial=0), result.pred_adv.max(initial=0), result.labels.max(initial=0))) + 1
    sizes = {"clean": np.bincount(result.pred_clean, minlength=k).tolist(),
             "attacked": np.bincount(result.pred_adv, minlength=k).tolist()}
    n = max(len(result.pred_adv), 1)
    record = {"cluster_sizes": sizes,
              "largest_cluster_share": {p: max(v) / n for p, v in sizes.items()}}
    eps = result.settings.get("eps")
    if eps is None or result.attack == "embedding":
        return record
    deltas = [(a - c).reshape(len(c), -1) for a, c in zip(result.adv_views, result.clean_views)]
    record["perturbation"] = {
        "eps": float(eps),
        "mean_abs": [float(np.abs(d).mean()) for d in deltas],
        "share_at_eps": [float((np.abs(d) >= float(eps) * (1 - 1e-3)).mean()) for d in deltas],
        "l2_mean": [float(np.linalg.norm(d, axis=1).mean()) for d in deltas],
        "l2_max": [float(np.linalg.norm(d, axis=1).max()) for d in deltas],
    }
    return record


def split(n: int, protocol: str, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit positions, scored positions) within the eval half. `paper`: both are all n samples;
    `strict`: a seeded shuffle, the first `fraction` fits the attacker, the rest is scored."""
    if gan.PROTOCOLS[gan.check_protocol(protocol)]["samples"] == "same":
        return np.arange(n), np.arange(n)
    perm = np.random.default_rng(seed).permutation(n)
    n_fit = int(round(fraction * n))
    if not 0 < n_fit < n:
        raise ValueError(f"strict protocol with {n} samples and fraction {fraction} leaves a part empty")
    return np.sort(perm[:n_fit]), np.sort(perm[n_fit:])


def resolve_settings(attack: str = "gan", cfg: dict | None = None, dataset: str | None = None,
                     **overrides) -> dict:
    """The attack's settings: code defaults < its config section (`attack:` for gan and pgd,
    `blackbox:` for blackbox and whitebox, `embedding_attack:`) < `datasets.<dataset>.eps` (else the
    paper's eps for the dataset; not for the embedding attack, bounded in h) < explicit overrides
    (None = not given). The protocol is not a section setting: it is named per run (the DAG runs every
    protocol of `evaluation.protocols`), so a section that sets it, or the BatchNorm mode it implies,
    is an error."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    defaults, section_name, check = SETTINGS[attack]
    cfg = cfg or {}
    section = cfg.get(section_name) or {}
    retired = sorted({"protocol", "target_batchnorm"} & set(section))
    if retired:
        raise ValueError(f"`{section_name}.{retired[0]}` is no longer a setting: an attack runs under a named "
                         f"protocol ({', '.join(gan.PROTOCOLS)}; paper = batch-statistics BatchNorm on the same "
                         "samples, strict = running statistics on held-out samples); list them in "
                         "`evaluation.protocols` or pass --protocol")
    settings = dict(defaults)
    settings.update({k: v for k, v in section.items() if k in defaults and v is not None})
    if "eps" in defaults:
        eps = ((cfg.get("datasets") or {}).get(dataset) or {}).get("eps") if dataset else None
        settings["eps"] = eps if eps is not None else gan.PAPER_EPS.get(dataset)
    unknown = sorted(k for k, v in overrides.items() if v is not None and k not in defaults)
    if unknown:
        raise ValueError(f"settings {unknown} do not apply to the {attack} attack")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if attack in ("blackbox", "whitebox"):
        settings["gradient"] = "nes" if attack == "blackbox" else "exact"
    if "eps" in defaults and settings["eps"] is None:
        raise ValueError(f"no attack budget for dataset {dataset!r}: set `datasets.{dataset}.eps` in the "
                         "config or pass --eps")
    return check(settings)


def _check_pgd(s: dict) -> dict:
    s = dict(s)
    if not 0 < float(s["eps"]) <= 1:
        raise ValueError(f"PGD needs 0 < eps <= 1, got {s['eps']}")
    if s["pgd_objective"] not in pgd.OBJECTIVES:
        raise ValueError(f"pgd_objective {s['pgd_objective']!r} is not one of {', '.join(pgd.OBJECTIVES)}")
    gan.check_protocol(s["protocol"])
    s["eps"] = float(s["eps"])
    if s["pgd_step"] is None:
        s["pgd_step"] = pgd.default_step(s["eps"], s["pgd_steps"])
    return s


# per attack: where its defaults live, which config section may override them, and its validation
SETTINGS = {"gan": (gan.DEFAULTS, "attack", gan.check_settings), "pgd": (pgd.DEFAULTS, "attack", _check_pgd),
            "blackbox": (blackbox.DEFAULTS, "blackbox", blackbox.check_settings),
            "whitebox": (blackbox.DEFAULTS, "blackbox", blackbox.check_settings),
            "embedding": (embedding.DEFAULTS, "embedding_attack", embedding.check_settings)}


def run(model: torch.nn.Module, views, labels, settings: dict, attack: str = "gan",
        device: torch.device | None = None, progress: bool = True, precision: str = "fp32") -> AttackResult:
    """Attack `model` on the evaluation samples `views` (numpy arrays or tensors) with `labels`.

    `settings` must be complete (see `resolve_settings`). The model is moved to `device` (default:
    where it is) and left unchanged. `precision` applies while the attacker fits or searches;
    predictions are scored in fp32.
    """
    device = device or next(model.parameters()).device
    model.to(device)
    s = settings
    seed_everything(int(s["seed"]))
    labels = np.asarray(labels)
    x = to_tensors(views, device)
    fit_pos, score_pos = split(len(labels), s["protocol"], s["heldout_fraction"], int(s["seed"]))
    score_idx = torch.as_tensor(score_pos, device=device)
    scored = [v[score_idx] for v in x]
    batchnorm = gan.batchnorm_of(s)
    # batch statistics: scored in shuffled batches of the attack's batch size, as the public code's loader
    chunk = int(s["batch_size"]) if batchnorm == "batch" else None
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
        with gan.frozen_target(model, batchnorm):
            adv = pgd.pgd_set(model, scored, pgd.OBJECTIVES[s["pgd_objective"]], s["eps"], s["pgd_step"],
                              int(s["pgd_steps"]), int(s["batch_size"]), bool(s["random_start"]),
                              seed=int(s["seed"]), precision=precision)
    else:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    seconds = time.perf_counter() - start
    if pred_adv is None:
        with gan.frozen_target(model, batchnorm), torch.no_grad():
            pred_clean = gan.predict(model, scored, chunk, int(s["seed"])).cpu().numpy()
            pred_adv = gan.predict(model, adv, chunk, int(s["seed"]) + 1).cpu().numpy()
    return AttackResult(attack, dict(s), labels[score_pos], pred_clean, pred_adv,
                        [v.cpu().numpy() for v in scored], [v.cpu().numpy() for v in adv],
                        score_pos, fit_pos, history, seconds, perturber, queries, h_clean, h_adv)


def save_attacker(path: str | Path, attack: str, perturber: torch.nn.Module, meta: dict) -> None:
    """The fitted generators (or embedding perturber), with `attack` in their meta."""
    meta = dict(meta, attack=attack)
    (embedding.save_perturber if attack == "embedding" else gan.save_perturber)(path, perturber, meta)


def load_attacker(path: str | Path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """What `save_attacker` wrote: a `gan.Perturber` (gan, blackbox, whitebox) or an
    `embedding.EmbeddingPerturber`; meta["attack"] says which (files without it come from the GAN attack)."""
    ckpt = load_module_file(path, device, "train one with `python -m robustmvc attack ... --generator-out PATH`")
    if "eps" not in ckpt["meta"] and ckpt["meta"].get("kind") != "embedding":
        raise ValueError(f"{path} is not an attacker's file (a trained model's checkpoint?); pass the file written "
                         "by `attack --generator-out`")
    build = embedding.perturber_from if ckpt["meta"].get("kind") == "embedding" else gan.perturber_from
    perturber, meta = build(ckpt, device)
    meta.setdefault("attack", "gan")
    return perturber, meta


def attack_files(data: str | Path, checkpoint: str | Path, out: str | Path, *, attack: str = "gan",
                 config: str | Path | list | dict | None = None, generator_out: str | Path | None = None,
                 examples_out: str | Path | None = None, device: str = "auto", progress: bool = True,
                 n_examples: int = 5, **overrides) -> dict:
    """Attack the checkpoint on the dataset's eval half and write the metrics JSON to `out`
    (whole or not at all); optionally the generators (`generator_out`, GAN only) and a figure of
    adversarial examples (`examples_out`). `config` is a config dict, a YAML path or a list of
    paths (later ones override). `overrides` are attack settings (eps, objective,
    epochs, protocol, seed, ...); the seed defaults to the model's. The config's `precision` (default fp32)
    and `deterministic` (default false) apply."""
    check_outputs({"--out": (out, (".json",)), "--generator-out": (generator_out, (".pt",)),
                   "--examples-out": (examples_out, (".png", ".pdf", ".svg"))},
                  {"--data": data, "--checkpoint": checkpoint})
    if isinstance(config, (str, Path)):
        config = [config]
    cfg = config_mod.load(*config) if isinstance(config, (list, tuple)) else (config or {})
    dev = resolve_device(device, bool(cfg.get("deterministic", False)))
    precision = resolve_precision(cfg.get("precision", "fp32"), dev)
    ds = data_mod.load(data)
    model, meta = load_checkpoint(checkpoint, dev)
    if [list(s) for s in ds.view_shapes] != [list(s) for s in meta["view_shapes"]]:
        raise ValueError(f"{checkpoint} was trained on views {meta['view_shapes']}, {data} has "
                         f"{ds.view_shapes}; attack it on the dataset it was trained on")
    dataset = ds.meta.get("dataset") or meta.get("dataset")
    if overrides.get("seed") is None:
        overrides["seed"] = int(meta.get("seed") or 0)
    settings = resolve_settings(attack, cfg, dataset, **overrides)
    views, labels = ds.part("eval")
    result = run(model, views, labels, settings, attack, dev, progress, precision)
    record = {"dataset": dataset, "model": meta["model"], "seed": meta.get("seed"), "attack": attack,
              "data": str(data), "checkpoint": str(checkpoint), "device": str(dev), "precision": precision,
              "protocol": settings["protocol"], "n_fit": int(len(result.fit_positions)),
              "n_eval": int(len(result.score_positions)), "settings": settings}
    record.update(result.summary())
    record.update(collapse_record(result))
    record["history"] = result.history
    with together():  # generators, figure and metrics appear together, the metrics (what rules track) last
        if generator_out and result.perturber is not None:
            save_attacker(generator_out, attack, result.perturber,
                          {"dataset": dataset, "model": meta["model"], "seed": meta.get("seed"),
                           "settings": settings, "history": result.history})
        if examples_out:
            # the figure module sits a floor above (it reads result tables too); imported here only when a
            # figure is asked for, so an attack job without one does not load matplotlib and seaborn
            from robustmvc import plots

            if attack == "embedding":
                plots.embedding_shift(result, examples_out, title=f"{meta['model']} on {dataset}: embedding "
                                                                  f"attack, bound {settings['bound']} ||h||")
            else:
                plots.attack_examples(result, examples_out, n=n_examples,
                                      title=f"{meta['model']} on {dataset}: {attack} attack, eps {settings['eps']}")
        write_json(out, record)
    return record


def detect_files(data: str | Path, checkpoint: str | Path, generator: str | Path, out: str | Path, *,
                 detectors=None, device: str = "auto", seed: int = 0) -> dict:
    """AUC of each anomaly detector (fitted on the clean train half) at telling the eval half from its
    attacked copy, made by the saved attacker `generator`; written to `out` whole or not at all."""
    dev = resolve_device(device)
    ds = data_mod.load(data)
    model, meta = load_checkpoint(checkpoint, dev)
    attacker, ameta = load_attacker(generator, dev)
    if ameta.get("model") not in (None, meta["model"]) or ameta.get("dataset") not in (None, ds.meta.get("dataset")):
        raise ValueError(f"{generator} attacks {ameta.get('model')} on {ameta.get('dataset')}, not {meta['model']} on "
                         f"{ds.meta.get('dataset')}; detect with the generator trained against this checkpoint")
    views, _ = ds.part("eval")
    train_views, _ = ds.part("train")
    x = to_tensors(views, dev)
    kinds = tuple(detectors or detect.DETECTORS)
    if ameta["attack"] == "embedding":
        settings = ameta.get("settings") or {}
        # files from before the protocols were named carry the BatchNorm mode itself
        batchnorm = settings.get("target_batchnorm") or gan.batchnorm_of({"protocol": settings.get("protocol", "paper")})
        h_adv = embedding.attacked_predictions(model, attacker, x, batchnorm)[3]
        aucs = detect.detection_aucs(model, train_views, views, attacked_h=h_adv.cpu().numpy(), kinds=kinds, seed=seed)
    else:
        adv = [a.cpu().numpy() for a in attacker.perturb(x)]
        aucs = detect.detection_aucs(model, train_views, views, attacked_views=adv, kinds=kinds, seed=seed)
    record = {"dataset": ds.meta.get("dataset"), "model": meta["model"], "seed": meta.get("seed"),
              "attack": ameta["attack"], "protocol": gan.protocol_name(ameta.get("settings") or {}),
              "generator": str(generator), "n_train": int(len(train_views[0])),
              "n_eval": int(len(views[0])), "auc": aucs}
    write_json(out, record)
    return record
