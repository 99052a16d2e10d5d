"""The paper's claims run on a machine lent for minutes, without the workflow's tools, and brought back.

A lent GPU machine has torch but no Snakemake, papermill or jsonschema, runs a command for at most 10
minutes and returns a few files. So the work is split in three:

1. `plan` (here, where the config is read and checked): every job the DAG runs for the config, with its
   resolved settings: each dataset's build, each (dataset, model)'s training of all its seeds, and each
   seed's paper attack under every protocol. Written as one JSON file that travels with the tree.
2. `run` (there): builds the datasets, trains every seed of a (dataset, model) in one job and attacks them
   all at once under each protocol (side by side on CUDA: `runs.train_runs`, `runs.attack_seeds_files`), and writes every file where the DAG writes it, with the
   lineage the DAG records. It stops starting work at its deadline and exports what it finished as one
   archive (`results.export`, only what it added), so a second lease continues where the first stopped.
3. Back here, `results.merge` brings the archive into the results folder, and the DAG, run with the same
   config, finds those jobs finished (`results.kept`) and renders the reports from them.

A run of the lease has no notebook pages (papermill is not there): the DAG keeps such merged runs
without one, and the landing page links the pages that exist.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from robustmvc import config as config_mod
from robustmvc import data as data_mod
from robustmvc import lineage, results, runs, variants
from robustmvc.files import atomic_path, write_json

PLAN_VERSION = 1


def plan(cfg: dict) -> dict:
    """What the DAG runs for the validated config `cfg` in training and the paper's attack, every setting
    resolved. The config must leave every other stage out (no other attack variant, no sensitivity sweep,
    transfer, detection or eps sweep): those read checkpoints, which stay on the lent machine."""
    others = _other_stages(cfg)
    if others:
        raise ValueError(f"the config also asks for {'; '.join(others)}, which read checkpoints a lease does not "
                         "bring back; leave them out in the lease's overlay (config/gpu-lease.yaml shows how)")
    datasets = [d for d, e in cfg["datasets"].items() if e is not None and (d != "regdb" or e["dir"])]
    gan = variants.name("gan", "both")
    trainings, attacks = [], []
    for dataset in datasets:
        for model in config_mod.run_models(cfg):
            seeds = [int(s) for s in cfg["seeds_per_model"].get(model, cfg["seeds"])]
            trainings.append({"dataset": dataset, "model": model, "seeds": seeds,
                              "job": config_mod.train_job(cfg, model, dataset)})
            for protocol in cfg["evaluation"]["protocols"]:
                for seed in seeds:
                    attacks.append({"dataset": dataset, "model": model, "variant": gan, "protocol": protocol,
                                    "seed": seed, "job": config_mod.attack_job(cfg, "gan", dataset, protocol=protocol,
                                                                               seed=seed, objective="both")})
    return {"version": PLAN_VERSION, "results_dir": cfg["results_dir"], "report_dir": cfg["report_dir"],
            "data": {d: config_mod.data_job(cfg, d) for d in datasets}, "trainings": trainings, "attacks": attacks}


def _other_stages(cfg: dict) -> list[str]:
    """The stages besides training and the paper's attack that `cfg` asks for (rules/common.smk's lists)."""
    attack, evaluation = cfg["attack"], cfg["evaluation"]
    found = []
    if [o for o in attack["objectives"] if o != "both"] and attack.get("ablation_models", True):
        found.append("the ablation (attack.objectives com/con with attack.ablation_models)")
    for key in ("blackbox_models", "embedding_models"):
        if attack[key]:
            found.append(f"attack.{key}")
    if attack["pgd"]:
        found.append("attack.pgd")
    if evaluation["eps_sweep"]["datasets"] and evaluation["eps_sweep"].get("models", True):
        found.append("evaluation.eps_sweep")
    if evaluation["tsne_models"]:
        found.append("evaluation.tsne_models")
    if cfg["sensitivity"]["dataset"] is not None:
        found.append("the sensitivity sweep (sensitivity.dataset)")
    if len(cfg["transfer"]["models"]) > 1:
        found.append("transfer.models")
    if cfg["detection"]["models"]:
        found.append("detection.models")
    return found


def write_plan(cfg: dict, path: str | Path) -> dict:
    made = plan(cfg)
    write_json(path, made)
    return made


def _done(path: Path, settings: str) -> bool:
    """Whether `path` holds a result recorded with the settings hash `settings` (made here, or merged)."""
    return (results.recorded(path) or {}).get("settings") == settings


def run(plan_path: str | Path, minutes: float, archive: str | Path, results_dir: str | Path | None = None,
        progress: bool = False, log=print) -> dict:
    """Run the plan at `plan_path` into `results_dir` (default: the plan's) for about `minutes`: no training
    or attack starts after the deadline. A run already there with the plan's settings is skipped, so a lease
    continues the last one's work once its archive is merged.

    The unit of work is a seed of a (dataset, model): its training and all its attacks. Only whole units
    leave the machine: checkpoints stay behind, so a seed trained here but not attacked in full could not
    be attacked later without retraining it into another checkpoint. The archive (what this call made, as
    `results.export`) is rewritten after every (dataset, model), so a command killed at its time limit
    still leaves the units finished before. Returns {"trained": seeds trained and attacked in full, "attacked": attack runs made,
    "left": units not finished, "archive": {"files", "bytes"}}."""
    deadline = time.monotonic() + 60 * float(minutes)
    made = json.loads(Path(plan_path).read_text())
    if made.get("version") != PLAN_VERSION:
        raise ValueError(f"{plan_path} is a plan of version {made.get('version')}, this code reads version "
                         f"{PLAN_VERSION}; write it again with `robustmvc lease plan`")
    root, reports = Path(results_dir or made["results_dir"]), Path(made["report_dir"])
    for dataset, build in made["data"].items():
        path = root / "data" / f"{dataset}.npz"
        if not path.exists():
            log(f"building {dataset}")
            data_mod.save(path, data_mod.build(dataset, **build))
    done = {"trained": 0, "attacked": 0, "left": 0, "archive": {"files": 0, "bytes": 0}}
    for group in made["trainings"]:
        d, m, job = group["dataset"], group["model"], group["job"]
        data = root / "data" / f"{d}.npz"
        clean = {s: root / "metrics" / d / m / "clean" / f"seed{s}.json" for s in group["seeds"]}
        checkpoint = {s: root / "models" / d / m / f"seed{s}.pt" for s in group["seeds"]}
        attacks = {s: [a for a in made["attacks"] if (a["dataset"], a["model"], a["seed"]) == (d, m, s)
                       and not _done(_attack_files(root, a)[0], lineage.attack_hash(a["job"]))] for s in group["seeds"]}
        trained = [s for s in group["seeds"] if not _done(clean[s], lineage.train_hash(m, job, s))]
        # a seed trained before whose checkpoint is gone cannot be attacked without a new checkpoint
        stranded = [s for s in group["seeds"] if s not in trained and attacks[s] and not checkpoint[s].exists()]
        if stranded:
            log(f"{m} on {d}, seeds {stranded}: attacks missing for a training merged without its checkpoint; "
                "delete those clean metrics to retrain them")
        if trained and time.monotonic() < deadline:
            start, cpu = time.monotonic(), time.process_time()
            runs.train_runs(data, m, trained, [checkpoint[s] for s in trained], job, [clean[s] for s in trained],
                            progress=progress)
            wall = time.monotonic() - start
            for seed in trained:  # a stack's time shared out, as its provenance does
                _benchmark(root, "02_train", f"{d}-{m}-seed{seed}", wall / len(trained),
                           (time.process_time() - cpu) / len(trained))
            log(f"trained {m} on {d}, seeds {trained}: {wall:.0f} s")
        elif trained:
            done["left"] += len(trained)
            continue
        ready = [s for s in group["seeds"] if s not in stranded]
        done["left"] += len(stranded)
        for protocol in sorted({a["protocol"] for s in ready for a in attacks[s]}, key=_protocols(made).index):
            if time.monotonic() >= deadline:
                break
            todo = [a for s in ready for a in attacks[s] if a["protocol"] == protocol]
            start, cpu = time.monotonic(), time.process_time()
            runs.attack_seeds_files(data, [checkpoint[a["seed"]] for a in todo], [_attack_files(root, a)[0] for a in todo],
                                    [a["job"] for a in todo], examples_outs=[_attack_files(root, a)[1] for a in todo],
                                    progress=progress)
            wall = time.monotonic() - start
            for a in todo:  # a stack's time shared out, as its provenance does
                _benchmark(root, "03_attack", _attack_name(a), wall / len(todo), (time.process_time() - cpu) / len(todo))
            done["attacked"] += len(todo)
            log(f"attacked {m} on {d} ({protocol}), seeds {[a['seed'] for a in todo]}: {wall:.0f} s")
        for seed in ready:
            unfinished = [a for a in attacks[seed] if not _done(_attack_files(root, a)[0], lineage.attack_hash(a["job"]))]
            if seed in trained and unfinished:  # not a whole unit: none of it leaves
                for path in [clean[seed], *(f for a in attacks[seed] for f in _attack_files(root, a)),
                             root / "benchmarks" / "02_train" / f"{d}-{m}-seed{seed}.tsv",
                             *(root / "benchmarks" / "03_attack" / f"{_attack_name(a)}.tsv" for a in attacks[seed])]:
                    path.unlink(missing_ok=True)
            done["left"] += bool(unfinished)
            done["trained"] += seed in trained and not unfinished
        if (root / "metrics").is_dir():
            done["archive"] = results.export(root, reports, archive, new_only=True)
    return done


def _attack_files(root: Path, attack: dict) -> tuple[Path, Path]:
    """(metrics, examples figure) of an attack run of the plan, where the DAG writes them."""
    run_dir = f"{attack['dataset']}/{attack['model']}/{attack['variant']}/{attack['protocol']}/seed{attack['seed']}"
    return root / "metrics" / f"{run_dir}.json", root / "attacks" / f"{run_dir}.png"


def _protocols(made: dict) -> list[str]:
    """The plan's protocols, in the config's order."""
    return list(dict.fromkeys(a["protocol"] for a in made["attacks"]))


def _attack_name(attack: dict) -> str:
    return f"{attack['dataset']}-{attack['model']}-{attack['variant']}-{attack['protocol']}-seed{attack['seed']}"


def _benchmark(root: Path, stage: str, name: str, wall: float, cpu: float) -> None:
    """A job's times where the DAG's job would leave them, in Snakemake's benchmark format (the stage times and
    the pages' compute lines read them); what Snakemake measures besides is not recorded here."""
    head = ("s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out", "mean_load", "cpu_time")
    clock = time.strftime("%H:%M:%S", time.gmtime(wall))
    row = (f"{wall:.4f}", clock, *["NA"] * 7, f"{cpu:.2f}")
    with atomic_path(root / "benchmarks" / stage / f"{name}.tsv") as tmp:
        Path(tmp).write_text("\t".join(head) + "\n" + "\t".join(row) + "\n")
