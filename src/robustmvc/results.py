"""A run's results as a portable archive, and what the DAG keeps of merged results.

What the reports and verdicts read is small and separate from what can be rebuilt: the per-run metrics
(their histories, lineage and provenance inside), the sensitivity, detection and transfer results, the
adversarial-example figures, the stage times, and the per-job pages with the images and files they link.
Data (.npz), checkpoints and saved attackers (.pt), executed notebooks, logs and what the evaluation
stage aggregates (all.csv, the scorecard, its pages) stay behind: the DAG rebuilds them (a shard carries
the .pt files that jobs not finished yet read, below).

`export` writes them as one .tar.gz (paths relative to the results and report folders, under `results/`
and `reports/`); `merge` adds an archive to a results folder. A run already there is kept as it is, so
merging twice changes nothing; a run recorded with other settings under the same path is refused whole,
before anything is written. A run spread over machines (`make cpu-scale-shard`) exports with `new_only`
only what this machine added, so each committed shard holds its own runs once, and with `carry` the
checkpoints and attackers that jobs not finished yet will read (the workflow's `carry` rule lists them), so
the machine that continues the run does not train again a model whose results it already holds.

A training made again (on another machine, from a lost checkpoint) records another checkpoint than the one
kept: the merge replaces a kept training that no result was made from (a shard stopped between a training
and its attacks), and refuses an archive whose results would then be read beside a training other than
the one they were made from.

A merged folder holds results without the checkpoints they came from. `kept_*` tell the DAG's input
functions which jobs are finished that way: a merge brought their results (listed in merged.json), they
are recorded with the settings the config gives now, and their checkpoint is gone or is the very file they
record. Such a job is given no inputs, so Snakemake plans it only if a result it must deliver is missing (a
file without metadata in .snakemake/ fires no params or code trigger). A kept job's page is not such a
result: runs made off the workflow (`robustmvc.lease`) come without one, and the landing page links the
pages there are.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import tarfile
from pathlib import Path

from robustmvc import lineage
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


def _carried(results: Path, carry: str | Path) -> dict[str, Path]:
    """Archive name -> file of each file `carry` lists (one path relative to `results` a line) that is there."""
    try:
        listed = Path(carry).read_text().splitlines()
    except FileNotFoundError:
        raise ValueError(f"no carry list {carry}: write it with the workflow's `carry` rule (`snakemake carry "
                         "--forcerun=carry` and the run's config, the target first) or leave out --carry") from None
    files = {}
    for rel in filter(None, (line.strip() for line in listed)):
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ValueError(f"{carry} lists {rel!r}, which is not a path inside {results}; write it again with "
                             "the workflow's `carry` rule")
        if (results / rel).is_file():
            files[f"results/{Path(rel).as_posix()}"] = results / rel
    return files


def export(results: str | Path, reports: str | Path, archive: str | Path, new_only: bool = False,
           carry: str | Path | None = None) -> dict:
    """Write the results of the run in `results` (pages from `reports`) as one .tar.gz, with the files the list
    `carry` names, without what merges brought there when `new_only` (and no archive when that leaves
    nothing); returns {"files": n, "bytes": archive size}."""
    results, reports = Path(results), Path(reports)
    if not (results / "metrics").is_dir():
        raise ValueError(f"{results} holds no metrics folder; export the results folder a run wrote (results_dir)")
    members = _members(results, reports) | (_carried(results, carry) if carry else {})
    members = dict(sorted(members.items()))
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


def _lineage(blob: bytes) -> dict:
    """The lineage a result records ({} for files that record none: pages, tables, checkpoints)."""
    try:
        return json.loads(blob).get("lineage") or {}
    except (ValueError, AttributeError, UnicodeDecodeError):
        return {}


def _settings(blob: bytes) -> str | None:
    """The settings hash a result records, or None for files that record none."""
    return _lineage(blob).get("settings")


def _made(blob: bytes) -> str:
    where = json.loads(blob).get("provenance") or {}
    return f"on {where.get('machine', 'an unrecorded machine')} at commit {where.get('commit', 'unknown')}"


def page_of(metrics: str) -> str | None:
    """The page of the run whose metrics are `metrics` (relative to the results folder), relative to the
    report folder: a training's (`metrics/<dataset>/<model>/clean/seed<s>.json`) or an attack's
    (`metrics/<dataset>/<model>/<variant>/<protocol>/seed<s>.json`); None for any other file."""
    parts = Path(metrics).parts
    if parts[:1] != ("metrics",) or not metrics.endswith(".json") or len(parts) not in (5, 6):
        return None
    stage = "02_train" if len(parts) == 5 else "03_attack"
    return f"{stage}/{'-'.join(p for p in parts[1:-1] if p != 'clean')}-{Path(parts[-1]).stem}.html"


def _is_training(rel: str) -> bool:
    parts = Path(rel).parts
    return len(parts) == 5 and parts[0] == "metrics" and parts[3] == "clean"


def _training_of(rel: str) -> str | None:
    """The clean run (training) a result under `rel` was made from: an attack's metrics or a detection
    (`<metrics|detection>/<dataset>/<model>/<variant>/<protocol>/seed<s>.json`); None for any other file."""
    parts = Path(rel).parts
    if len(parts) == 6 and parts[0] in ("metrics", "detection") and parts[-1].endswith(".json"):
        return Path("metrics", parts[1], parts[2], "clean", parts[5]).as_posix()
    return None


def _read_from(results: Path, checkpoint: str, but: Path) -> bool:
    """Whether a result in `results` other than `but` records being made from `checkpoint` (its file hash)."""
    return any(f != but and _lineage(f.read_bytes()).get("checkpoint") == checkpoint
               for top in ("metrics", "detection") for f in (results / top).glob("**/*.json"))


def trainings_left_out(listed: str | Path) -> set[tuple[str, str, str]]:
    """The trainings a list names (`<dataset>/<model>/seed<s>` a line, `#` comments): runs to make again."""
    runs = set()
    for line in Path(listed).read_text().splitlines():
        run = line.split("#", 1)[0].strip()
        parts = run.split("/")
        if not run:
            continue
        if len(parts) != 3 or not re.fullmatch(r"seed\d+", parts[2]):
            raise ValueError(f"{listed} names {run!r}; name a training as <dataset>/<model>/seed<s>, one a line")
        runs.add((parts[0], parts[1], parts[2]))
    return runs


def _left_out(incoming: dict, runs: set) -> set:
    """The archive's files of the trainings `runs` and of every run made from them: their metrics (clean,
    attacks), detections, attackers' figures and files, stage times and pages."""
    out = set()
    for top, rel in incoming:
        parts = Path(rel).parts
        if top == "results" and parts[0] in ("metrics", "detection", "attacks") and len(parts) >= 4 \
                and (parts[1], parts[2], Path(parts[-1]).stem) in runs:
            out.add((top, rel))
            page = page_of(rel) if parts[0] == "metrics" else None
            if page:
                stage, name = page.split("/")
                out |= {("reports", page), ("results", f"benchmarks/{stage}/{Path(name).stem}.tsv")}
    return out


def merge(archive: str | Path, results: str | Path, reports: str | Path, leave_out: set = frozenset()) -> dict:
    """Add the archive's files to `results` and `reports`: a result already there is kept, and one recorded
    there with other settings than in the archive refuses the whole merge. A page (or a file it links) that
    differs from the archive's is replaced: it renders a run, and one left from an earlier rendering of the
    report must not stand for the run merged now. A training made again replaces the one here when no result
    here was made from it; an archive whose attacks or detections would then sit beside another training
    than the one they were made from is refused whole. The trainings `leave_out` names ((dataset, model,
    "seed<s>"), `trainings_left_out`) and every run made from them are not merged: the DAG makes them again.
    Returns {"added": n, "kept": n}."""
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
    for name in _left_out(incoming, set(leave_out)):
        incoming.pop(name, None)
    added, stays = {}, set()
    for (top, rel), blob in incoming.items():
        target = roots[top] / rel
        if not target.exists() or (top == "reports" and target.read_bytes() != blob):
            added[target] = blob
            continue
        ours = target.read_bytes()
        if _settings(ours) != _settings(blob):
            raise ValueError(
                f"{archive.name} holds {rel} made with settings {_settings(blob)} {_made(blob)}, but {results} "
                f"already holds it made with settings {_settings(ours)} {_made(ours)}; nothing was merged: merge "
                "into another results folder, or delete the one there to take the archive's")
        ours_from = _lineage(ours).get("checkpoint")
        if top == "results" and _is_training(rel) and ours_from != _lineage(blob).get("checkpoint") \
                and not _read_from(results, ours_from, target):
            added[target] = blob  # no result here was made from ours: the archive's training replaces it
        elif top == "results" and ours != blob and page_of(rel):
            stays.add(reports / page_of(rel))  # the run made again stays ours, and so does its page
    for page in stays:
        added.pop(page, None)
    for (top, rel), blob in incoming.items():
        training = _training_of(rel) if top == "results" else None
        clean = results / training if training else None
        if clean is None or not (clean in added or clean.exists()):
            continue
        result, trained = results / rel, added.get(clean) or clean.read_bytes()
        made_from = _lineage(added.get(result) or result.read_bytes()).get("checkpoint")
        if made_from != _lineage(trained).get("checkpoint"):
            raise ValueError(
                f"{archive.name} holds {rel}, made from another training than the {training} {results} would "
                f"hold (made {_made(trained)}): the archive's run trained that model again on a machine without "
                "its checkpoint; nothing was merged: merge into another results folder, or delete the results "
                "made from one of the two trainings and merge again")
    for target, blob in added.items():  # copied now, so each is newer than what the DAG aggregates from them
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


def brought_files(results: str | Path, reports: str | Path) -> list[Path]:
    """Every file merges brought into `results` and `reports`. Where this machine made one of them before, its
    Snakemake metadata must go (`snakemake --cleanup-metadata`, `make merge-shards`): a kept job is given no
    inputs, and metadata recording the inputs it had would rerun it for a changed set of inputs."""
    roots = {"results": Path(results), "reports": Path(reports)}
    return [roots[name.partition("/")[0]] / name.partition("/")[2] for name in sorted(_brought(Path(results)))]


def recorded(path: str | Path) -> dict | None:
    """The lineage a result file records, or None when it is absent or records none."""
    try:
        return json.loads(Path(path).read_text()).get("lineage")
    except (OSError, ValueError, AttributeError):
        return None


@functools.lru_cache(maxsize=None)
def _hash(path: Path, mtime_ns: int, size: int) -> str:
    return lineage.file_hash(path)


def _is_recorded(checkpoint: str | Path, made: dict) -> bool:
    """Whether `checkpoint` is gone or is the file `made` (a result's lineage) records being made from."""
    path = Path(checkpoint)
    if not path.exists():
        return True
    stat = path.stat()
    return _hash(path, stat.st_mtime_ns, stat.st_size) == made.get("checkpoint")


def kept(result: str | Path, settings: str, made_from: str | Path, delivered: list = (),
         brought: set = frozenset()) -> bool:
    """Whether the job that wrote `result` is finished: a merge brought the file (`brought`: `merged`), it
    records the settings hash `settings`, the job's other outputs the DAG reads (`delivered`: an attack's
    figure) are present, and the checkpoint it was made from (`made_from`) is gone or is the one it records
    (a shard carried it). A checkpoint made here since (another training) makes the job run again."""
    made = recorded(result) if Path(result) in brought else None
    return (bool(made) and made.get("settings") == settings and all(Path(p).exists() for p in delivered)
            and _is_recorded(made_from, made))


def train_again(checkpoint: str | Path, readers: list, training: str) -> bool:
    """Whether a kept training whose checkpoint is gone must be made again for the results that read it
    (`readers`: the results of the jobs that take `checkpoint` as an input). None missing: it stays kept. All
    missing (a shard stopped between the training and its first attack, before shards carried checkpoints):
    nothing was made from it, so it is trained again. Some made and some not: a training made again would
    differ from the one those were made from, so it must be made again with them, which only the list of
    trainings left out of a merge can say; one error names it."""
    if Path(checkpoint).exists():
        return False
    missing = [r for r in readers if not Path(r).exists()]
    if not missing:
        return False
    if len(missing) == len(readers):
        return True
    raise ValueError(
        f"{checkpoint} was merged without the file, and {len(missing)} result(s) still to be made read it "
        f"(e.g. {missing[0]}) while {len(readers) - len(missing)} were made from it; make it again with every run "
        f"made from it: add the line {training} to the list `robustmvc results merge --leave-out` reads "
        f"(make merge-shards: shards/cpu-scale/make-again.txt) and merge the shards into a fresh results folder")


def kept_attack(metrics, settings: str, clean, train_settings: str, made_from, delivered: list = (),
                brought: set = frozenset()) -> bool:
    """An attack run is kept when it is (`kept`), and so is the training of the checkpoint it attacked
    (`clean`, its clean metrics, records the same checkpoint): a retrained model is attacked again."""
    if not (kept(metrics, settings, made_from, delivered, brought)
            and kept(clean, train_settings, made_from, (), brought)):
        return False
    return recorded(metrics).get("checkpoint") == recorded(clean).get("checkpoint")


def kept_derived(result, runs_kept: bool, brought: set = frozenset()) -> bool:
    """A result that records no settings (a detection, a transfer table) is kept when a merge brought it and
    the attack runs it was made from are kept (`runs_kept`)."""
    return Path(result) in brought and Path(result).exists() and runs_kept
