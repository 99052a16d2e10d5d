"""Reading the project config and resolving what one (model, dataset) run uses.

The config is flat on purpose: `training` holds defaults for every model, `architecture` the
encoder settings every model takes, and `models.<name>` one flat dict that may override any
training key and set model settings; `models.<name>.per_dataset.<dataset>` overrides again.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import yaml

from robustmvc import registry, variants
from robustmvc.attack_settings import resolve_settings
from robustmvc.schema import stated, stated_defaults



def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# the training settings and their defaults, as config/schema.yaml states them (the commands take partial configs)
DEFAULT_TRAINING = stated_defaults("training")
TRAIN_KEYS = tuple(DEFAULT_TRAINING)


# every config list (or mapping) whose entries name models: "a.b" is cfg["a"]["b"]
MODEL_LISTS = ("models", "seeds_per_model", "attack.pgd", "attack.blackbox_models", "attack.embedding_models",
               "attack.ablation_models", "transfer.models", "detection.models", "evaluation.eps_sweep.models",
               "evaluation.tsne_models")

# keys that were renamed: an old config is told the new name instead of a bare "unexpected key"
RENAMED = {("attack", "blackbox"): "attack.blackbox_models", ("attack", "embedding"): "attack.embedding_models"}


def read_yaml(path: str | Path) -> dict:
    """One YAML file as a mapping; a missing file or a syntax error is one sentence naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"config file {path} is not valid YAML{where} ({problem}); fix the file") from None
    if cfg is not None and not isinstance(cfg, dict):
        raise ValueError(f"config file {path} holds a {type(cfg).__name__}, not a mapping of settings; fix the file")
    return cfg or {}


def load(*paths: str | Path) -> dict:
    """Later files override earlier ones key by key, as snakemake's repeated --configfile does; the
    merged result is validated (`validate`)."""
    cfg: dict = {}
    for path in paths:
        cfg = deep_merge(cfg, read_yaml(path))
    validate(cfg, complete=False, source=" + ".join(str(p) for p in paths))
    return cfg


def validate(cfg: dict, complete: bool = True, source: str = "the config") -> dict:
    """Check `cfg` against config/schema.yaml (closed at every level, each model's keys from its
    constructor) and every model name against the registry, and fill in the schema's defaults, in place.
    The one reading of a config: the Snakefile, the commands and the notebooks all come through here.

    `complete=False` skips the schema's list of required sections: the commands take partial configs
    (`train --config` needs only the sections it reads). The first problem is one sentence that names
    the key by its path. Returns `cfg`."""
    import jsonschema

    check_renamed(cfg, source)
    check_model_names(cfg, source)
    schema = full_schema()
    if not complete:
        schema.pop("required", None)
    error = jsonschema.exceptions.best_match(_filling_validator()(schema).iter_errors(cfg))
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        problem, fix = f"{key}: {error.message}", "fix it (see config/schema.yaml)"
        numeric_text = isinstance(error.instance, str) and _is_number(error.instance)
        in_list = bool(error.path) and isinstance(error.path[-1], int)
        if numeric_text and in_list and "Snakemake" in source:
            # snakemake's --config key=[0,1] reads every item of a list as a string (YAML's BaseLoader)
            fix = ("a list written on snakemake's command line (--config key=[...]) arrives as strings: put it in "
                   "a YAML overlay instead (--configfile config/demo.yaml my-overlay.yaml)")
        elif numeric_text:
            fix = "write it as a number YAML reads as one, e.g. 1.0e-4 rather than 1e-4"
        elif error.validator == "pattern" and error.schema.get("description"):
            problem = f"{key} {error.instance!r} is not {error.schema['description']}"
        elif error.validator == "minItems" and not error.instance:
            problem, fix = f"{key} is an empty list", f"give at least {error.validator_value} entry"
        raise ValueError(f"{source}: {problem}; {fix}")
    return cfg


def full_schema() -> dict:
    """config/schema.yaml with `models.<name>` (and its `per_dataset.<dataset>`) for each registered model,
    closed on that model's own keys: its settings ($defs.models.<name>, which tests/test_defaults.py holds
    to its constructor's keywords), the encoder width and the training keys."""
    from robustmvc.data import DATASETS  # numpy: only where a config is checked

    schema = stated()
    models = schema["properties"]["models"]
    training = _undefaulted(schema["properties"]["training"]["properties"])
    width = _undefaulted(schema["properties"]["architecture"]["properties"])
    # the name lists are the code's, each written once: the registry's models, the datasets, the attack variants
    props = schema["properties"]
    datasets = props["datasets"]["propertyNames"] = {"enum": list(DATASETS)}
    props["attack"]["properties"]["objectives"]["items"]["enum"] = list(variants.OBJECTIVES)
    props["detection"]["properties"]["attacks"]["items"]["pattern"] = f"^({variants.FITTED})$"
    models["propertyNames"] = {"enum": registry.names()}
    models["properties"] = {}
    for name in registry.names():
        # the defaults stay out of the config: registry.build fills them in (a config holds what it gives)
        own = {**width, **_undefaulted(schema["$defs"]["models"][name]), **training}
        per_dataset = {"type": "object", "propertyNames": datasets,
                       "additionalProperties": {"type": ["object", "null"], "additionalProperties": False,
                                                "properties": own}}
        # false leaves the model out (`run_models`): an overlay cannot delete a key the base config sets
        models["properties"][name] = {"type": ["object", "null", "boolean"], "additionalProperties": False,
                                      "properties": {**own, "per_dataset": per_dataset}}
    return schema


def _undefaulted(specs: dict) -> dict:
    return {key: {k: v for k, v in spec.items() if k != "default"} for key, spec in specs.items()}


def _filling_validator():
    """A Draft 2020-12 validator that also sets each absent property that has a `default` (as Snakemake's
    `validate` does), so the rules and the jobs read every setting as cfg["a"]["b"]."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for key, spec in props.items():
                if isinstance(spec, dict) and "default" in spec and key not in instance:
                    instance[key] = copy.deepcopy(spec["default"])
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_renamed(cfg: dict, source: str = "the config") -> None:
    """Refuse a key of an older config by its new name; run before the schema, whose error would only say
    the old key is unexpected."""
    for (section, key), new in RENAMED.items():
        if isinstance(cfg.get(section), dict) and key in cfg[section]:
            raise ValueError(f"{source}: {section}.{key} is now {new}: rename it")


def check_model_names(cfg: dict, source: str = "the config") -> None:
    """Every model named in the config is a registered one (a typo would silently drop its jobs)."""
    known = set(registry.names())
    for dotted in MODEL_LISTS:
        node = cfg
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, (list, dict)):
            continue
        unknown = [m for m in node if m not in known]
        if unknown:
            raise ValueError(f"{source}: {dotted} names unknown model(s) {', '.join(map(str, unknown))}; "
                             f"known models: {', '.join(sorted(known))}")
    switched = [m for m, entry in (cfg.get("models") or {}).items() if entry is True]
    if switched:
        raise ValueError(f"{source}: models.{switched[0]} is true; a model takes its settings (or nothing, for its "
                         "defaults), and false leaves it out of the run")
    sensitivity = (cfg.get("sensitivity") or {}).get("model")
    if sensitivity is not None and sensitivity not in known:
        raise ValueError(f"{source}: sensitivity.model {sensitivity!r} is not a known model; "
                         f"known models: {', '.join(sorted(known))}")


def parse_value(text: str):
    """A command-line value read as YAML, with numbers YAML 1.1 leaves as text (`1e-4`) read as numbers."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number; give a finite value")
    return value


def check_training(train: dict, source: str) -> None:
    """Resolved training settings (after command-line overrides) against the schema's `training` section."""
    validate({"training": {k: v for k, v in train.items() if k in TRAIN_KEYS}}, complete=False, source=source)


# what every torch job is given besides its own settings
RUNTIME_KEYS = ("device", "precision", "deterministic")


def runtime(cfg: dict) -> dict:
    """The device, precision and determinism a job runs with, from a validated config."""
    return {key: cfg[key] for key in RUNTIME_KEYS}


def canonical(job: dict) -> str:
    """A job's settings as one JSON text with sorted keys: what a rule's params hold, so Snakemake reruns the
    job exactly when a value it uses changes, whatever the order or the files the values came from."""
    return json.dumps(job, sort_keys=True)


def train_job(cfg: dict, model: str, dataset: str, **overrides) -> dict:
    """Every setting one training run of `model` on `dataset` uses, from a validated config: `model` (its
    constructor's keywords), `training` (epochs, batch size, ...) and the runtime. `overrides` replace single
    values (training keys go to training, the rest to the model), e.g. a sensitivity point's weights."""
    settings, train = resolve(cfg, model, dataset)
    for key, value in overrides.items():
        (train if key in TRAIN_KEYS else settings)[key] = value
    job = {"model": settings, "training": train, **runtime(cfg)}
    check_train_job(job, model)
    return job


def check_train_job(job: dict, model: str, source: str = "the training settings") -> None:
    """A training job's settings, however they came (the DAG, a notebook run by hand, the command line),
    through the same schema as the config: every key known to `model`, none missing."""
    missing = [k for k in ("model", "training", *RUNTIME_KEYS) if k not in job]
    missing += [f"training.{k}" for k in TRAIN_KEYS if k not in (job.get("training") or {})]
    if missing:
        raise ValueError(f"{source} lack {', '.join(missing)}; pass every setting "
                         "(robustmvc.config.train_job resolves them from a config)")
    unknown = sorted(set(job) - {"model", "training", *RUNTIME_KEYS})
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(unknown)}; the keys are model, training, "
                         f"{', '.join(RUNTIME_KEYS)}")
    validate({"models": {model: {**job["model"], **job["training"]}}, **{k: job[k] for k in RUNTIME_KEYS}},
             complete=False, source=source)


def attack_job(cfg: dict, attack: str, dataset: str, **overrides) -> dict:
    """Every setting one attack run uses, from a validated config: `attack`, its resolved `settings`
    (robustmvc.attack_settings.resolve_settings: its config section, the dataset's budget, the per-run
    `overrides` such as protocol, objective, eps and seed) and the runtime."""
    return {"attack": attack, "settings": resolve_settings(attack, cfg, dataset, **overrides), **runtime(cfg)}


def data_job(cfg: dict, dataset: str) -> dict:
    """The keywords `data.build` makes `dataset` with, from a validated config: what the data notebook is given
    and what a run made off the workflow (`robustmvc.lease`) builds the same file from."""
    entry, opts = cfg["datasets"][dataset], cfg["data"]
    return {"raw_dir": entry["dir"] if dataset == "regdb" else entry["raw_dir"], "max_samples": entry["max_samples"],
            "views": entry["views"], "n_identities": entry["n_identities"], "seed": opts["seed"],
            "pairing": opts["pairing"], "cache_dir": opts["cache_dir"]}


def run_models(cfg: dict) -> list[str]:
    """The models a config runs: those under `models`, less those an overlay set to false."""
    return [name for name, entry in (cfg.get("models") or {}).items() if entry is not False]


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
