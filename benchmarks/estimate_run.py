"""How long the jobs still to run in a DAG will take, from the seconds the same jobs took before.

    python benchmarks/estimate_run.py --configfile config/config.yaml config/cpu-scale.yaml [--cores N]
                                      [--measured DIR ...] [--config KEY=VALUE ...]

`snakemake -n` lists the jobs still to run (so a resumed run is estimated from where it stands); each
is priced at the CPU seconds Snakemake's `benchmark:` recorded for the same job in an earlier run
(the run's own `{results_dir}/benchmarks`, any `--measured` folder, then the committed
benchmarks/cpu-scale-jobs.tsv), else at the median of its rule among the measured jobs. The wall
estimate divides the CPU time by the jobs that run at once (cores / threads per job); the last
jobs of a DAG run alone, so it is a lower bound. `make cpu-scale` prints it before it starts.

`--write-table` saves what was measured as that committed table. Where a run's benchmarks folder is
gone but its metrics survive (a report's `data/metrics`), `--metrics DIR` takes each training's and
attack's own seconds from them (`train_seconds`, `seconds`: the job without its interpreter start
and notebook, so a little under its CPU time on one thread); benchmark files win where both exist.
"""
import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "benchmarks" / "cpu-scale-jobs.tsv"


def job_key(benchmark: str) -> str:
    """A job's name independent of where its results live: the benchmark path below `benchmarks/`."""
    return benchmark.split("/benchmarks/", 1)[-1].removesuffix(".tsv")


def planned_jobs(snakemake_args: list[str]) -> tuple[list[tuple[str, str | None, int]], str]:
    """(rule, benchmark key or None, threads) of every job a dry run would start, and the results dir."""
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--nolock", *snakemake_args], cwd=ROOT,
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"the dry run failed:\n{run.stderr[-2000:]}")
    jobs, results = [], None
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", run.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if not rule or rule.group(1) == "all":
            continue
        bench = re.search(r"^\s+benchmark: (\S+)", block, re.M)
        threads = re.search(r"^\s+threads: (\d+)", block, re.M)
        if bench and results is None:
            results = bench.group(1).split("/benchmarks/", 1)[0]
        jobs.append((rule.group(1), job_key(bench.group(1)) if bench else None,
                     int(threads.group(1)) if threads else 1))
    return jobs, results


def measured_seconds(folders: list[Path], table: bool = True) -> dict[str, float]:
    """CPU seconds per job key: the committed table (unless `table` is False), then each benchmarks
    folder (later ones win)."""
    seconds = {}
    if table and TABLE.is_file():
        with TABLE.open() as f:
            seconds.update({row["job"]: float(row["cpu_s"]) for row in csv.DictReader(f, delimiter="\t")})
    for folder in folders:
        for path in folder.rglob("*.tsv"):
            with path.open() as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
            if rows and rows[-1].get("cpu_time") not in (None, "", "NA"):
                seconds[str(path.relative_to(folder).with_suffix(""))] = float(rows[-1]["cpu_time"])
    return seconds


def metrics_seconds(folder: Path) -> dict[str, float]:
    """Seconds per job key from a metrics folder: `{dataset}/{model}/clean/seed{s}.json` is the training
    job, `{dataset}/{model}/{variant}/{protocol}/seed{s}.json` an attack job."""
    seconds = {}
    for path in folder.glob("*/*/**/seed*.json"):
        parts = path.relative_to(folder).with_suffix("").parts
        record = json.loads(path.read_text())
        if len(parts) == 4 and parts[2] == "clean" and "train_seconds" in record:
            seconds[f"02_train/{parts[0]}-{parts[1]}-{parts[3]}"] = float(record["train_seconds"])
        elif len(parts) == 5 and "seconds" in record:
            seconds[f"03_attack/{'-'.join(parts)}"] = float(record["seconds"])
    return seconds


def groups_of(key: str) -> list[tuple[str, ...]]:
    """The groups whose median prices an unmeasured job, closest first: its stage (the rule's benchmark
    folder) and dataset, then its stage."""
    stage, _, name = key.partition("/")
    return [(stage, name.split("-", 1)[0]), (stage,)]


def price(jobs, seconds: dict[str, float]) -> dict[str, list]:
    """Per rule: [jobs, jobs measured, CPU seconds, jobs left unpriced]. A job measured before costs what
    it cost; another costs the median of its closest group (`groups_of`) among the measured jobs."""
    by_group = defaultdict(list)
    for key, s in seconds.items():
        for group in groups_of(key):
            by_group[group].append(s)
    medians = {group: statistics.median(v) for group, v in by_group.items()}
    per_rule = defaultdict(lambda: [0, 0, 0.0, 0])
    for rule, key, _ in jobs:
        row = per_rule[rule]
        row[0] += 1
        if key in seconds:
            row[1] += 1
            row[2] += seconds[key]
        elif key and any(g in medians for g in groups_of(key)):
            row[2] += next(medians[g] for g in groups_of(key) if g in medians)
        else:
            row[3] += 1
    return dict(per_rule)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", nargs="+", default=["config/config.yaml"])
    parser.add_argument("--config", nargs="*", default=[], help="KEY=VALUE overrides, as snakemake's")
    parser.add_argument("--measured", nargs="*", type=Path, default=[], help="benchmarks folders of earlier runs")
    parser.add_argument("--metrics", type=Path, help="a metrics folder whose jobs' own seconds --write-table "
                        "saves where no benchmark file has them")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="default: this machine's")
    parser.add_argument("--write-table", action="store_true",
                        help=f"save the seconds measured in the benchmarks folders to {TABLE.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    snakemake_args = ["--configfile", *args.configfile] + (["--config", *args.config] if args.config else [])
    jobs, results = planned_jobs(snakemake_args)
    folders = ([Path(results) / "benchmarks"] if results else []) + list(args.measured)
    seconds = measured_seconds([f for f in folders if f.is_dir()])
    per_rule = price(jobs, seconds)
    threads = max([t for _, _, t in jobs] or [1])
    total = sum(r[2] for r in per_rule.values())
    print(f"{'rule':<20}{'jobs':>6}{'measured':>10}{'CPU min':>10}")
    for rule, (n, known, s, unpriced) in sorted(per_rule.items(), key=lambda kv: -kv[1][2]):
        print(f"{rule:<20}{n:>6}{known:>10}{s / 60:>10.1f}" + (f"  ({unpriced} not priced)" if unpriced else ""))
    at_once = max(1, args.cores // threads)
    print(f"{len(jobs)} jobs to run; {total / 3600:.1f} CPU-hours; at least {total / at_once / 3600:.1f} h wall "
          f"with {at_once} job(s) at once on {args.cores} cores")
    if args.write_table:
        measured = metrics_seconds(args.metrics) if args.metrics else {}
        measured.update(measured_seconds([f for f in folders if f.is_dir()], table=False))
        with TABLE.open("w") as f:
            f.write("job\tcpu_s\n")
            f.writelines(f"{key}\t{measured[key]:.1f}\n" for key in sorted(measured))
        print(f"wrote {len(measured)} jobs' CPU seconds to {TABLE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
