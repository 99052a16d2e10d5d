"""config/schema.yaml and the defaults it states: the one place every default of a setting lives.

A module of the lowest floor, so the attacks (their `DEFAULTS`) and the registry (a model's settings) read
their defaults here, below the config module that validates whole configs (robustmvc.config).
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
_STATED = yaml.safe_load(SCHEMA.read_text())


def stated() -> dict:
    """The schema as parsed once at import, a copy the caller may change (robustmvc.config closes it)."""
    return copy.deepcopy(_STATED)


def stated_defaults(section: str, model: str | None = None) -> dict:
    """The defaults the schema states for the keys of a section (`training`, `attack`, ...) or, with `model`,
    for that model's own settings ($defs.models.<model>)."""
    specs = _STATED["$defs"]["models"][model] if model else _STATED["properties"][section]["properties"]
    return {key: copy.deepcopy(spec["default"]) for key, spec in specs.items() if "default" in spec}


def model_defaults(name: str) -> dict:
    """Every setting of model `name` with the schema's default: its own ($defs.models.<name>) and the
    encoder width (architecture); robustmvc.registry.build fills in from here what a caller leaves out."""
    return {**stated_defaults("architecture"), **stated_defaults("models", name)}
