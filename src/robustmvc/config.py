"""Reading the project config and resolving what one (model, dataset) run uses.

The config is flat on purpose: `training` holds defaults for every model, `architecture` the
encoder settings every model takes, and `models.<name>` one flat dict that may override any
training key and set model settings; `models.<name>.per_dataset.<dataset>` overrides again.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

TRAIN_KEYS = ("epochs", "batch_size", "lr", "pretrain_epochs")
DEFAULT_TRAINING = {"epochs": 20, "batch_size": 100, "lr": 1e-3, "pretrain_epochs": 0}


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load(*paths: str | Path) -> dict:
    """Later files override earlier ones key by key, as snakemake's repeated --configfile does."""
    cfg: dict = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        cfg = deep_merge(cfg, yaml.safe_load(path.read_text()) or {})
    return cfg


def resolve(cfg: dict, model: str, dataset: str | None = None) -> tuple[dict, dict]:
    """(model settings, training settings) for `model` on `dataset`."""
    entry = copy.deepcopy((cfg.get("models") or {}).get(model) or {})
    per_dataset = entry.pop("per_dataset", {}) or {}
    if dataset is not None:
        entry = deep_merge(entry, per_dataset.get(dataset) or {})
    train = deep_merge(DEFAULT_TRAINING, cfg.get("training") or {})
    settings = copy.deepcopy(cfg.get("architecture") or {})
    for key, value in entry.items():
        (train if key in TRAIN_KEYS else settings)[key] = value
    return settings, train
