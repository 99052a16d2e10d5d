"""What each output was made from, and where it was made.

Lineage ties a result to its inputs, so that a stage refuses inputs that do not belong together: a
checkpoint, a saved attacker and a metrics file record the identity of the dataset they came from
(a hash of its samples and one of its train/eval split: another build of the same dataset, or another
split, has other hashes), the hash of the checkpoint an attack ran on, and a hash of the settings the
run depends on. A dataset is identified by its arrays, not by its file's bytes: `np.savez` stamps the
time into the zip, so two builds of the same samples differ as files.

Provenance says where a run was made: the commit and whether the tree was clean, the machine (CPU
model and the vector instructions torch uses there, or GPU name), torch's version, the precision, the
threads, and the wall and CPU seconds. Neither records an absolute path of the machine (`shown`).

Files written before lineage was recorded are accepted with a warning: their lineage cannot be
checked, and retraining or refitting them makes it checkable.
"""
from __future__ import annotations

import hashlib
import json
import logging
import platform
import subprocess
from pathlib import Path

import numpy as np

from robustmvc.attack_settings import check_attack_settings

log = logging.getLogger(__name__)
CHARS = 16  # hex digits kept of a sha256: 64 bits, ample to tell builds and files apart
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def _digest(parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()[:CHARS]


def settings_hash(settings: dict) -> str:
    """The settings as canonical JSON (sorted keys), hashed: equal settings, equal hash, in any key order."""
    return _digest([json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str).encode()])


def train_hash(model_name: str, job: dict, seed: int) -> str:
    """The settings hash a training run records (its lineage): the model's settings and the training's with
    the seed, not the runtime, so a run made on a GPU matches the same run's settings on a CPU."""
    return settings_hash({"model": model_name, **job["model"], "train": dict(job["training"], seed=seed)})


def attack_hash(job: dict) -> str:
    """The settings hash an attack run records (its lineage), as `train_hash` without the runtime."""
    return settings_hash({"attack": job["attack"], **check_attack_settings(job["attack"], job["settings"])})


def file_hash(path: str | Path) -> str:
    """A file's content hash (how an attack names the checkpoint it ran on)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:CHARS]


def _arrays(*arrays) -> str:
    return _digest(memoryview(np.ascontiguousarray(a)).cast("B") for a in arrays)


def of_data(ds) -> dict:
    """A dataset's identity (`data.MultiViewData`): its name, a hash of its samples (views and labels,
    in order) and a hash of its split (the train and eval indices)."""
    return {"dataset": ds.meta.get("dataset"), "samples": _arrays(*ds.views, ds.labels),
            "split": _arrays(ds.train_idx, np.array([-1]), ds.eval_idx)}


def untracked(path, what: str) -> None:
    log.warning("%s records no lineage (written before lineage was recorded), so %s cannot be checked; "
                "%s to have it checked", shown(path), what, "retrain it" if Path(path).suffix == ".pt" else "rerun it")


def check_data(recorded: dict | None, data: dict, path, data_path, fix: str) -> None:
    """Refuse an output of another dataset build or split than `data` (`of_data` of the file `data_path`);
    `recorded` is the lineage's `data` entry of the file at `path`, `fix` what to do instead."""
    if recorded is None:
        untracked(path, f"that it belongs to {shown(data_path)}")
        return
    if recorded.get("dataset") != data.get("dataset"):
        raise ValueError(f"{shown(path)} comes from the dataset {recorded.get('dataset')}, {shown(data_path)} holds "
                         f"{data.get('dataset')}; {fix}")
    if recorded.get("samples") != data["samples"]:
        raise ValueError(f"{shown(path)} comes from another build of {data.get('dataset')} than {shown(data_path)} "
                         f"(samples {recorded.get('samples')}, here {data['samples']}), so their samples differ; {fix}")
    if recorded.get("split") != data["split"]:
        raise ValueError(f"{shown(path)} comes from the samples of {shown(data_path)} split another way into train and "
                         f"eval halves (split {recorded.get('split')}, here {data['split']}), so the eval half would hold "
                         f"training samples; {fix}")


def check_checkpoint(recorded: str | None, checkpoint, path, fix: str) -> None:
    """Refuse an output (a saved attacker) made against another checkpoint than the file `checkpoint`."""
    if recorded is None:
        untracked(path, f"that it was fitted against {shown(checkpoint)}")
        return
    actual = file_hash(checkpoint)
    if recorded != actual:
        raise ValueError(f"{shown(path)} was made against another checkpoint than {shown(checkpoint)} (checkpoint "
                         f"{recorded}, here {actual}); {fix}")


def shown(path) -> str:
    """A path as an output may record it: relative to the working folder when inside it, else the file's
    name alone, never an absolute path of the machine."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


def git_state() -> tuple[str, bool]:
    """(short commit of the code's checkout, whether its tracked files differ from it); ("unknown", False)
    when the package does not sit in a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True, cwd=PACKAGE_ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, cwd=PACKAGE_ROOT).stdout.strip()
    return commit, bool(dirty)


def changed_files() -> list[str]:
    """The tracked files whose content differs from the commit (`git_state`'s dirty flag, by name), relative
    to the checkout, so a record of uncommitted changes says what changed; [] outside a git checkout."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                             check=True, cwd=PACKAGE_ROOT).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return sorted(line[3:].split(" -> ")[-1] for line in out.splitlines() if line.strip())


SHOWN_CHANGES = 5  # changed files a page names before it counts the rest


def changes_text(changed: list[str] | None) -> str:
    """`uncommitted changes to a, b (and N more files)` for a dirty tree, as pages and the scorecard show it."""
    if not changed:
        return "uncommitted changes (which files was not recorded)"
    more = len(changed) - SHOWN_CHANGES
    return (f"uncommitted changes to {', '.join(changed[:SHOWN_CHANGES])}"
            + (f" and {more} more file{'s' if more != 1 else ''}" if more > 0 else ""))


def machine(device="cpu") -> str:
    """The GPU's name on CUDA, else the CPU's model (Linux /proc/cpuinfo, else what Python knows of it) with
    the vector instructions torch's kernels use there: two CPUs of one model name ("AMD EPYC" with and without
    AVX-512) run other kernels and round differently, so a run repeats only on the same model and kernels."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    model = None
    try:
        model = next((" ".join(line.split(":", 1)[1].split()) for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), None)
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown"
    return f"{model} ({torch.backends.cpu.get_cpu_capability()})"


def provenance(device, precision: str, wall_seconds: float, cpu_seconds: float) -> dict:
    """Where and how a run was made (see the module's docstring)."""
    import torch

    commit, dirty = git_state()
    return {"commit": commit, "dirty": dirty, **({"changed": changed_files()} if dirty else {}),
            "machine": machine(device), "device": str(device),
            "torch": str(torch.__version__), "precision": precision, "threads": torch.get_num_threads(),
            "wall_seconds": round(float(wall_seconds), 3), "cpu_seconds": round(float(cpu_seconds), 3)}
