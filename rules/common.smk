# What every stage's rules share: the config's lists, the helpers that build notebook commands, the resources
# of torch jobs, and the runs of each stage that other stages read. Included first by the Snakefile, so the
# stage files may be included in any order and name nothing of each other.
import functools
import json
import os
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

from robustmvc import config as config_mod
from robustmvc import results as results_mod
from robustmvc import lineage, variants

PY = shlex.quote(sys.executable)  # the interpreter snakemake runs in, so tools need not be on PATH
R = config["results_dir"]
REPORTS = config["report_dir"]
SEEDS = config["seeds"]
# Every setting is read as config["a"]["b"]: the Snakefile's validate filled in the defaults of config/schema.yaml.
# An overlay leaves a dataset out by setting it to null; RegDB is left out until its folder is set
DATASETS = [d for d, e in config["datasets"].items() if e is not None and (d != "regdb" or e["dir"])]
MODELS = config_mod.run_models(config)  # less those an overlay sets to false
# the files the landing page shows; no job reads them: each is given the values it uses (below)
CONFIGFILES = [os.path.relpath(f) for f in (workflow.overwrite_configfiles or ["config/config.yaml"])]


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(sorted(MODELS, key=len, reverse=True)),
    seed=r"\d+",
    protocol="paper|strict",
    lam=r"[0-9.e+-]+",
    gam=r"[0-9.e+-]+",


def seeds_of(model):
    """Seeds `model` is trained and attacked with: `seeds_per_model.<model>`, else `seeds`."""
    return config["seeds_per_model"].get(model, SEEDS)


def first_seed(model):
    return seeds_of(model)[0]


# What every torch job (training, attack, sensitivity_point, transfer, detect) declares. `threads:` becomes
# its torch.set_num_threads (notebook parameter `threads`, CLI --threads), so `--cores all` runs
# cores / threads jobs at once and never oversubscribes. `gpu` is 1 when `device` resolves to cuda, else 0:
# on a GPU machine `snakemake --cores all --resources gpu=N` runs N torch jobs at once on the GPU(s)
# (e.g. gpu=4 shares one large GPU between four jobs); mem_mb and runtime (minutes) are for cluster profiles.
TORCH_THREADS = config["threads"]


def _uses_gpu():
    device = config["device"]
    if device != "auto":
        return int(device.startswith("cuda"))
    import torch  # only when the config leaves the device to the machine

    return int(torch.cuda.is_available())


TORCH_RESOURCES = {"gpu": _uses_gpu(), **config["job_resources"]}


# ---- what each job is given: the resolved values it uses, never the config files. A rule holds them in a
# param that is a function of the wildcards alone (`settings`), as canonical JSON: Snakemake records such
# params and reruns a job when they change (params computed from input or output paths are not tracked),
# so a changed value reruns exactly the jobs that use it and what reads their outputs.
@functools.cache
def train_settings(model, dataset):
    """Every setting one training job uses (robustmvc.config.train_job)."""
    return config_mod.train_job(config, model, dataset)


@functools.cache
def attack_settings(dataset, variant, protocol, seed):
    """Every setting one attack job uses (robustmvc.config.attack_job), its variant and protocol included."""
    v = variants.parse(variant)
    return config_mod.attack_job(config, v.attack, dataset, protocol=protocol, seed=int(seed), eps=v.eps,
                                 objective=v.objective if v.attack == "gan" else None)


def notebook_args(params):
    """Notebook parameters as one shell-quoted JSON argument for papermill's -y."""
    return shlex.quote(json.dumps(params))


def papermill(notebook):
    """Shell command of a notebook rule: run the notebook with `params.nb`, keep the executed copy
    as the rule's log (kept when the job fails), and render it without code to `output.html`."""
    return f"{PY} -m robustmvc notebook {notebook} {{log.notebook:q}} {{output.html:q}} --params {{params.nb}}"


# ---- training: every configured model on every dataset and seed
TRAIN_RUNS = [(d, m, s) for d in DATASETS for m in MODELS for s in seeds_of(m)]
CLEAN_METRICS = [f"{R}/metrics/{d}/{m}/clean/seed{s}.json" for d, m, s in TRAIN_RUNS]


def train_page(dataset, model, seed):
    return f"{REPORTS}/{results_mod.page_of(f'metrics/{dataset}/{model}/clean/seed{seed}.json')}"


# ---- attacks: every trained model on its eval half, under each protocol of `evaluation.protocols`
# (`paper`: batch-statistics BatchNorm, fitted and scored on the same samples, as the public code;
# `strict`: running statistics, scored on samples the attacker was not fitted on). Variants
# (robustmvc.variants): `gan-both` (the paper's attack) and `pgd` on every model; `gan-com` and `gan-con`
# (the ablation) on attack.ablation_models; `blackbox` / `whitebox` (Chhabra et al.'s attack, query-only or
# with exact gradients) on attack.blackbox_models; `embedding` (ALRDC's attack on h) on attack.embedding_models;
# a suffix `-eps0.1` sets the budget (the eps sweep of the evaluation stage).
EVALUATION = config["evaluation"]
PROTOCOLS = EVALUATION["protocols"]


def attack_protocols(variant):
    """Protocols a variant runs under: the paper's attack under every one of `evaluation.protocols`; the
    other variants too, or only under those of `evaluation.extra_variant_protocols` when it is set."""
    extra = EVALUATION["extra_variant_protocols"]
    return PROTOCOLS if variant == "gan-both" or extra is None else [p for p in PROTOCOLS if p in extra]


def attack_variants(model):
    """Variants `model` is attacked by at the dataset's budget."""
    section = config["attack"]
    ablation = model in section.get("ablation_models", MODELS)  # a default the schema cannot state: every model
    names = [variants.name("gan", o) for o in section["objectives"] if o == "both" or ablation]
    pgd = section["pgd"]
    names += ["pgd"] if pgd is True or (isinstance(pgd, list) and model in pgd) else []
    names += ["blackbox", "whitebox"] if model in section["blackbox_models"] else []
    return names + (["embedding"] if model in section["embedding_models"] else [])


def attack_seeds(model, variant):
    """Seeds a variant runs on: the paper's attack on every seed of the model; the other variants on
    every seed too, or on the first only with `attack.extra_variants_seeds: first`."""
    seeds = seeds_of(model)
    first_only = config["attack"]["extra_variants_seeds"] == "first"
    return seeds[:1] if first_only and variant != "gan-both" else seeds


def attack_run(dataset, model, variant, protocol, seed):
    """What one attack job writes, by kind: `metrics`, `generator` (variants that fit an attacker),
    `examples` (the figure), `html` (its page), `notebook` (the executed notebook) and `benchmark`."""
    run = f"{dataset}/{model}/{variant}/{protocol}/seed{seed}"
    name = f"{dataset}-{model}-{variant}-{protocol}-seed{seed}"
    return {
        "metrics": f"{R}/metrics/{run}.json",
        "generator": f"{R}/attacks/{run}.pt",
        "examples": f"{R}/attacks/{run}.png",
        "html": f"{REPORTS}/{results_mod.page_of(f'metrics/{run}.json')}",
        "notebook": f"{R}/notebooks/03_attack/{name}.ipynb",
        "benchmark": f"{R}/benchmarks/03_attack/{name}.tsv",
    }


def checkpoint_of(dataset, model, seed):
    """The checkpoint the training of (dataset, model, seed) writes."""
    return f"{R}/models/{dataset}/{model}/seed{seed}.pt"


# ---- merged results (robustmvc.results): a job whose results a merge brought from another machine, recorded
# with the settings the config gives now, and whose checkpoint is absent or the one they record is given no
# inputs: Snakemake then plans it only if an output the DAG reads is missing, never for its data or checkpoint.
MERGED = results_mod.merged(R)

# What a shard carries to the machine that continues the run (rules/report.smk: carry): each stage adds
# (a result, the checkpoints and attackers the job that makes it reads); those of results not made yet go.
READERS = []
# Results whose job reads such a file when it is here and leaves a figure out when it is not (the t-SNE):
# carried, never a reason to make the file again.
READ_IF_THERE = set()


def finished_with(made):
    """Whether the checkpoint or attacker `made` is here with the metrics the job that wrote it wrote beside it
    (checkpoint_of: models/<dataset>/<model>/seed<s>.pt; attack_run: attacks/<run>.pt)."""
    rel = Path(os.path.relpath(made, R))
    if rel.parts[0] == "models":
        metrics = Path(R, "metrics", *rel.parts[1:3], "clean", f"{rel.stem}.json")
    else:
        metrics = Path(R, "metrics", *rel.parent.parts[1:], f"{rel.stem}.json")
    return Path(made).is_file() and metrics.is_file()


def unless_kept(kept, inputs):
    """An input function for `unpack`: `inputs(wildcards)`, or none when `kept(**wildcards)`."""
    return lambda w: {} if kept(**dict(w.items())) else inputs(w)


def train_kept(dataset, model, seed):
    """A kept training (results.kept) whose checkpoint is gone stays kept unless a job still to run takes that
    checkpoint as an input (results.train_again): Snakemake would plan the training for it with no inputs."""
    weights = checkpoint_of(dataset, model, seed)
    return results_mod.kept(
        f"{R}/metrics/{dataset}/{model}/clean/seed{seed}.json",
        lineage.train_hash(model, train_settings(model, dataset), int(seed)),
        made_from=weights,
        brought=MERGED,
    ) and not results_mod.train_again(weights, [result for result, read in READERS
                                                if weights in read and result not in READ_IF_THERE],
                                      f"{dataset}/{model}/seed{seed}")


def attack_kept(dataset, model, variant, protocol, seed):
    run = attack_run(dataset, model, variant, protocol, seed)
    return results_mod.kept_attack(
        run["metrics"],
        lineage.attack_hash(attack_settings(dataset, variant, protocol, seed)),
        clean=f"{R}/metrics/{dataset}/{model}/clean/seed{seed}.json",
        train_settings=lineage.train_hash(model, train_settings(model, dataset), int(seed)),
        made_from=checkpoint_of(dataset, model, seed),
        delivered=[run["examples"]],
        brought=MERGED,
    )


def pages_of(runs_, page, result, kept):
    """The pages of `runs_` the landing page waits for: a kept run merged without its page (made off the
    workflow, robustmvc.lease) is linked without one rather than rerun for it."""
    return [page(*run) for run in runs_
            if Path(page(*run)).exists() or Path(result(*run)) not in MERGED or not kept(*run)]


TRAIN_REPORTS = pages_of(TRAIN_RUNS, train_page, lambda d, m, s: f"{R}/metrics/{d}/{m}/clean/seed{s}.json", train_kept)


ATTACK_RUNS = [
    (d, m, v, p, s)
    for d in DATASETS
    for m in MODELS
    for v in attack_variants(m)
    for p in attack_protocols(v)
    for s in attack_seeds(m, v)
]
ATTACK_REPORTS = pages_of(ATTACK_RUNS, lambda *run: attack_run(*run)["html"], lambda *run: attack_run(*run)["metrics"],
                          attack_kept)
ATTACK_METRICS = [attack_run(*run)["metrics"] for run in ATTACK_RUNS]
READERS += [(attack_run(d, m, v, p, s)["metrics"], [checkpoint_of(d, m, s)]) for d, m, v, p, s in ATTACK_RUNS]


# ---- related systems: every table of notebook 08 reads the runs and generators of one protocol,
# `evaluation.related_protocol` (default: the first of `evaluation.protocols`), on each model's first seed
TRANSFER_MODELS = [m for m in config["transfer"]["models"] if m in MODELS]
TRANSFER_TABLES = [f"{R}/transfer/{d}.csv" for d in DATASETS] if len(TRANSFER_MODELS) > 1 else []
RELATED_PROTOCOL = EVALUATION.get("related_protocol", PROTOCOLS[0])  # a default the schema cannot state
if RELATED_PROTOCOL not in PROTOCOLS:
    raise ValueError(
        f"evaluation.related_protocol {RELATED_PROTOCOL!r} is not one of evaluation.protocols {PROTOCOLS}; "
        "add it there or name one of them"
    )


def related_run(dataset, model, variant, kind):
    """What the attack job of (dataset, model, variant, the related protocol, first seed) writes of `kind`."""
    return attack_run(dataset, model, variant, RELATED_PROTOCOL, first_seed(model))[kind]
