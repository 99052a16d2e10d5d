"""A run's results as a portable archive, and what the DAG keeps of merged results.

What the reports and verdicts read is small and separate from what can be rebuilt: the per-run metrics
(their histories, lineage and provenance inside), the sensitivity, detection and transfer results, the
adversarial-example figures, the stage times, and the per-job pages with the images and files they link.
Data (.npz), checkpoints and saved attackers (.pt), executed notebooks, logs and what the evaluation
stage aggregates (all.csv, the scorecard, its pages) stay behind: the DAG rebuilds them.

`export` writes them as one .tar.gz (paths relative to the results and report folders, under `results/`
and `reports/`); `merge` adds an archive to a results folder. A run already there is kept as it is, so
merging twice changes nothing; a run recorded with other settings under the same path is refused whole,
before anything is written. A run spread over machines (`make cpu-scale-shard`) exports with `new_only`
only what this machine added, so each committed shard holds its own runs once.

A merged folder holds results without the checkpoints they came from. `kept_*` tell the DAG's input
functions which jobs are finished that way: a merge brought their results (listed in merged.json), they
are recorded with the settings the config gives now, and what they were made from is gone. Such a job is
given no inputs, so Snakemake plans it only if a result it must deliver is missing (a file without
metadata in .snakemake/ fires no params or code trigger). A kept job's page is not such a result: runs
made off the workflow (`robustmvc.lease`) come without one, and the landing page links the pages there are.
"""
from __future__ import annotations

import hashlib
import json
import re
import tarfile
from pathlib import Path

from robustmvc.files import atomic_path, write_json

# what an archive carries, relative to the results folder and to the report folder of the scale
RESULT_GLOBS = ("metrics/*/**/*.json", "sensitivity/**/*.json", "detection/**/*.json", "transfer/*.csv",
                "attacks/**/*.png", "benchmarks/**/*.tsv")
PAGE_GLOBS = ("01_prepare_data/*.html", "02_train/*.html", "03_attack/*.html")
MERGED = "merged.json"  # in the results folder: the results merge brought there (`merged`)
LINKED = re.compile(r'(?:src|href)="\.\./([^"#?]+)"')  # what a page links beside it: images, data, style


def _members(results: Path, reports: Path) -> dict[str, Path]:
    """Archive name -> file: the results the reports read, the pages, and every file a page links."""
    files = {f"results/{p.relative_to(results).as_posix()}": p
             for pattern in RESULT_GLOBS for p in results.glob(pattern) if p.is_file()}
    for pattern in PAGE_GLOBS:
        for page in reports.glob(pattern):
            files[f"reports/{page.relative_to(reports).as_posix()}"] = page
            for link in LINKED.findall(page.read_text(errors="replace")):
                target = page.parent.parent / link
                if target.is_file() and reports.resolve() in target.resolve().parents:
                    files[f"reports/{target.resolve().relative_to(reports.resolve()).as_posix()}"] = target
    return dict(sorted(files.items()))


def export(results: str | Path, reports: str | Path, archive: str | Path, new_only: bool = False) -> dict:
    """Write the results of the run in `results` (pages from `reports`) as one .tar.gz, without what merges
    brought there when `new_only` (and no archive when that leaves nothing); returns {"files": n, "bytes":
    archive size}."""
    results, reports = Path(results), Path(reports)
    if not (results / "metrics").is_dir():
        raise ValueError(f"{results} holds no metrics folder; export the results folder a run wrote (results_dir)")
    members = _members(results, reports)
    if new_only:  # what a merge brought and nothing here has rewritten since
        brought = _brought(results)
        members = {name: path for name, path in members.items() if brought.get(name) != _digest(path.read_bytes())}
        if not members:  # a shard that finished nothing: no empty archive to commit
            return {"files": 0, "bytes": 0}
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for name, path in members.items():
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return {"files": len(members), "bytes": Path(archive).stat().st_size}


def _settings(blob: bytes) -> str | None:
    """The settings hash a result records (its lineage), or None for files that record none."""
    try:
        return (json.loads(blob).get("lineage") or {}).get("settings")
    except (ValueError, AttributeError):
        return None


def _made(blob: bytes) -> str:
    where = json.loads(blob).get("provenance") or {}
    return f"on {where.get('machine', 'an unrecorded machine')} at commit {where.get('commit', 'unknown')}"


def merge(archive: str | Path, results: str | Path, reports: str | Path) -> dict:
    """Add the archive's files to `results` and `reports`: a result already there is kept, and one recorded
    there with other settings than in the archive refuses the whole merge. A page (or a file it links) that
    differs from the archive's is replaced: it renders a run, and one left from an earlier rendering of the
    report must not stand for the run merged now. Returns {"added": n, "kept": n}."""
    archive, results, reports = Path(archive), Path(results), Path(reports)
    roots = {"results": results, "reports": reports}
    incoming = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            top, _, rel = member.name.partition("/")
            parts = Path(rel).parts
            if not member.isfile() or top not in roots or not rel or Path(rel).is_absolute() or ".." in parts:
                raise ValueError(f"{archive.name} holds {member.name!r}, which is not a file under results/ or "
                                 "reports/; merge only archives written by `robustmvc results export`")
            incoming[(top, rel)] = tar.extractfile(member).read()
    added = []
    for (top, rel), blob in incoming.items():
        target = roots[top] / rel
        if not target.exists() or (top == "reports" and target.read_bytes() != blob):
            added.append((target, blob))
            continue
        ours, theirs = _settings(target.read_bytes()), _settings(blob)
        if ours != theirs:
            raise ValueError(
                f"{archive.name} holds {rel} made with settings {theirs} {_made(blob)}, but {results} already "
                f"holds it made with settings {ours} {_made(target.read_bytes())}; nothing was merged: merge "
                "into another results folder, or delete the one there to take the archive's")
    for target, blob in added:  # copied now, so each is newer than what the DAG aggregates from them
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            Path(tmp).write_bytes(blob)
    before = _brought(results)
    brought = before | {f"{top}/{rel}": _digest((roots[top] / rel).read_bytes()) for top, rel in incoming}
    if brought != before:
        write_json(results / MERGED, {key: {n.partition("/")[2]: h for n, h in sorted(brought.items())
                                            if n.startswith(f"{top}/")}
                                      for key, top in (("files", "results"), ("pages", "reports"))})
    return {"added": len(added), "kept": len(incoming) - len(added)}


# ---- what the DAG keeps of merged results


def _digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]


def _brought(results: Path) -> dict[str, str]:
    """Archive name (`results/...`, `reports/...`) -> content hash of what merges brought into `results` and its
    report folder (the hash of what is there after the merge: a file kept as it was is listed as it is)."""
    try:
        listed = json.loads((Path(results) / MERGED).read_text())
    except FileNotFoundError:
        return {}
    return {f"{top}/{name}": h for key, top in (("files", "results"), ("pages", "reports"))
            for name, h in listed[key].items()}


def merged(results: str | Path) -> set[Path]:
    """The result files a merge brought into `results` (as `results / name`): only these are ever kept without
    their inputs, so a checkpoint deleted where it was made is rebuilt as before."""
    return {Path(results) / name.partition("/")[2] for name in _brought(Path(results)) if name.startswith("results/")}


def recorded(path: str | Path) -> dict | None:
    """The lineage a result file records, or None when it is absent or records none."""
    try:
        return json.loads(Path(path).read_text()).get("lineage")
    except (OSError, ValueError, AttributeError):
        return None


def kept(result: str | Path, settings: str, made_from: list, delivered: list = (), brought: set = frozenset()) -> bool:
    """Whether the job that wrote `result` is finished without what it was made from: a merge brought the file
    (`brought`: `merged`), it records the settings hash `settings`, the job's other outputs the DAG reads
    (`delivered`: an attack's figure) are present, and some file of `made_from` (its checkpoint, data) is gone."""
    made = recorded(result) if Path(result) in brought else None
    return (bool(made) and made.get("settings") == settings and all(Path(p).exists() for p in delivered)
            and not all(Path(p).exists() for p in made_from))


def kept_attack(metrics, settings: str, clean, train_settings: str, made_from: list, delivered: list = (),
                brought: set = frozenset()) -> bool:
    """An attack run is kept when it is (`kept`), and so is the training of the checkpoint it attacked
    (`clean`, its clean metrics, records the same checkpoint): a retrained model is attacked again."""
    if not (kept(metrics, settings, made_from, delivered, brought) and kept(clean, train_settings, made_from, (), brought)):
        return False
    return recorded(metrics).get("checkpoint") == recorded(clean).get("checkpoint")


def kept_derived(result, made_from: list, runs_kept: bool, brought: set = frozenset()) -> bool:
    """A result that records no settings (a detection, a transfer table) is kept when a merge brought it, the
    attack runs it was made from are kept (`runs_kept`) and some file it was made from is gone."""
    return Path(result) in brought and Path(result).exists() and runs_kept and not all(Path(p).exists() for p in made_from)
