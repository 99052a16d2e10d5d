"""Does bf16 change results beyond seed noise? fp32 against bf16, paired by seed, through the real CLI.

    python benchmarks/precision_pairs.py [--width 16] [--seeds 0 1 2] [--jobs 2] [--threads 1]

Builds NoisyFashion-10k with `robustmvc data build` (5,000 train / 5,000 eval, Debian's Fashion-MNIST
IDX files), then for each model, seed and precision trains with `robustmvc train` and attacks the
checkpoint with the paper's GAN attack under the paper protocol (`robustmvc attack --attack gan`,
eps 0.15, a short attack of `--attack-epochs`). Both precisions of a seed start from the same
initialisation and data order, so their difference is that of the arithmetic alone; seed-to-seed
spread is the noise it is judged against. The attack runs in the precision the model trained in.
`--jobs` runs that many commands side by side, each on `--threads` torch threads.

Writes benchmarks/precision_pairs.md (the command, the machine, one row per model and seed, the mean
bf16 - fp32 difference with the fp32 seed spread beside it) after every run; the runs' files go to
--work, and a run whose files are there is not run again (an interrupted invocation resumes).
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "bf16")


def cli(*args: str) -> None:
    """One `python -m robustmvc` command; its error output is shown if it fails."""
    cmd = [sys.executable, "-m", "robustmvc", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{done.stderr[-3000:]}")


def cpu_model() -> str:
    """lscpu's model name (the machine the numbers come from)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or "unknown"
    names = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    return names[0] if names else "unknown"


def run_pair_member(work: Path, data: Path, model: str, seed: int, precision: str, epochs: int,
                    args: argparse.Namespace) -> dict:
    """Train, then attack, one (model, seed, precision); returns clean and attacked ACC and the seconds."""
    overlay = work / f"{precision}.yaml"
    stem = work / f"{model}-seed{seed}-{precision}"
    threads = ["--threads", str(args.threads)]
    start = time.perf_counter()
    if Path(f"{stem}-gan.json").exists():  # done by an earlier, interrupted invocation
        return collect(stem, model, seed, precision, None)
    cli("train", "--data", str(data), "--model", model, "--seed", str(seed), "--epochs", str(epochs),
        "--config", "config/config.yaml", "--config", str(overlay), "--out", f"{stem}.pt",
        "--metrics", f"{stem}-clean.json", "--device", "cpu", *threads)
    cli("attack", "--data", str(data), "--checkpoint", f"{stem}.pt", "--out", f"{stem}-gan.json",
        "--attack", "gan", "--objective", "both", "--eps", str(args.eps), "--epochs", str(args.attack_epochs),
        "--protocol", "paper", "--config", "config/config.yaml", "--config", str(overlay), "--device", "cpu",
        *threads)
    return collect(stem, model, seed, precision, time.perf_counter() - start)


def collect(stem: Path, model: str, seed: int, precision: str, seconds: float | None) -> dict:
    clean = json.loads(Path(f"{stem}-clean.json").read_text())
    attacked = json.loads(Path(f"{stem}-gan.json").read_text())
    return {"model": model, "seed": seed, "precision": precision, "clean_acc": clean["clean"]["acc"],
            "attack_pre_acc": attacked["clean"]["acc"], "attack_post_acc": attacked["attacked"]["acc"],
            "train_seconds": clean["train_seconds"], "attack_seconds": attacked["seconds"], "seconds": seconds}


def summary(diffs: list[float], fp32: list[float]) -> str:
    """The mean paired difference, the fp32 seed spread it is judged against, and the paired t-test's p
    (a one-sample t-test of the differences against 0, the same thing)."""
    p = stats.ttest_1samp(diffs, 0.0).pvalue if np.std(diffs) > 0 else float("nan")
    return f"{np.mean(diffs):+.1f} ({np.std(fp32, ddof=1):.1f}; p {p:.2f})"


def table(rows: list[dict], models: dict[str, int], args: argparse.Namespace, command: str, wall: float) -> str:
    by = {(r["model"], r["seed"], r["precision"]): r for r in rows}
    lines = [
        "# fp32 against bf16, paired by seed",
        "",
        f"Command: `{command}`  ",
        f"Machine: {cpu_model()}, {args.jobs} job(s) side by side, {args.threads} torch thread(s) each; "
        f"wall time of the last invocation {wall / 60:.1f} min.  ",
        f"NoisyFashion-10k (`robustmvc data build noisyfashion --max-samples 10000`: 5,000 train, 5,000 eval), "
        f"encoder width {args.width}, epochs {', '.join(f'{m} {e}' for m, e in models.items())}, the rest of "
        f"config/config.yaml. Clean ACC on the eval half; post-attack ACC under the paper's GAN attack "
        f"(objective both, eps {args.eps}, {args.attack_epochs} epochs, paper protocol), run in the model's "
        f"own precision. Clean: the eval half scored with BatchNorm's running statistics (`robustmvc train --metrics`); "
        f"attacked: after the attack (its own pre-attack ACC, on batch statistics, is in rows.json). "
        f"Differences are bf16 - fp32 in ACC points (x100).",
        "",
        "| model | seed | clean fp32 | clean bf16 | diff | attacked fp32 | attacked bf16 | diff | train s fp32 | train s bf16 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        d_clean, d_att, f_clean, f_att = [], [], [], []
        for seed in args.seeds:
            if (model, seed, "fp32") not in by or (model, seed, "bf16") not in by:
                lines.append(f"| {model} | {seed} | (not run yet) | | | | | | | |")
                continue
            a, b = by[(model, seed, "fp32")], by[(model, seed, "bf16")]
            d_clean.append(100 * (b["clean_acc"] - a["clean_acc"]))
            d_att.append(100 * (b["attack_post_acc"] - a["attack_post_acc"]))
            f_clean.append(100 * a["clean_acc"])
            f_att.append(100 * a["attack_post_acc"])
            lines.append(f"| {model} | {seed} | {100 * a['clean_acc']:.1f} | {100 * b['clean_acc']:.1f} | "
                         f"{d_clean[-1]:+.1f} | {100 * a['attack_post_acc']:.1f} | {100 * b['attack_post_acc']:.1f} | "
                         f"{d_att[-1]:+.1f} | {a['train_seconds']:.0f} | {b['train_seconds']:.0f} |")
        if len(d_clean) > 1:
            lines.append(f"| {model} | mean diff (fp32 seed sd; paired p) | | | {summary(d_clean, f_clean)} "
                         f"| | | {summary(d_att, f_att)} | | |")
    lines += ["", "A mean difference well inside the fp32 seed standard deviation is seed noise; p is the two-sided "
              "paired t-test of bf16 against fp32 over the seeds (with three seeds it reaches 0.05 only when the "
              "differences agree closely). Train seconds are wall time on the machine above, shared with other "
              "jobs: indicative only.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--comvc-epochs", type=int, default=10)
    p.add_argument("--ardmvc-am-epochs", type=int, default=3)
    p.add_argument("--attack-epochs", type=int, default=5)
    p.add_argument("--eps", type=float, default=0.15)
    p.add_argument("--jobs", type=int, default=2, help="commands run side by side")
    p.add_argument("--threads", type=int, default=1, help="torch threads per command")
    p.add_argument("--work", default="results/precision_pairs", help="data, checkpoints and metrics go here")
    p.add_argument("--out", default="benchmarks/precision_pairs.md")
    args = p.parse_args()
    if len(args.seeds) < 2:
        p.error("--seeds needs at least two seeds: the seed spread is what the differences are judged against")
    command = "python benchmarks/precision_pairs.py " + shlex.join(sys.argv[1:])
    models = {"comvc": args.comvc_epochs, "ardmvc-am": args.ardmvc_am_epochs}

    work = (ROOT / args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    for precision in PRECISIONS:
        (work / f"{precision}.yaml").write_text(
            f"precision: {precision}\narchitecture: {{encoder_width: {args.width}}}\n")
    data = work / "noisyfashion-10k.npz"
    start = time.perf_counter()
    if not data.exists():
        cli("data", "build", "noisyfashion", "--out", str(data), "--max-samples", "10000",
            "--raw-dir", "/usr/share/datasets/fashion-mnist", "--no-download")
    runs = [(model, seed, precision, epochs) for seed in args.seeds for model, epochs in models.items()
            for precision in PRECISIONS]
    rows = []
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_pair_member, work, data, m, s, prec, e, args) for m, s, prec, e in runs]
        for future in futures:  # the table is rewritten after each run: an interrupted invocation leaves
            rows.append(future.result())  # the pairs done so far, and the next one resumes from its files
            r = rows[-1]
            print(f"{r['model']} seed {r['seed']} {r['precision']}: clean {r['clean_acc']:.3f}, "
                  f"attacked {r['attack_post_acc']:.3f}", flush=True)
            (work / "rows.json").write_text(json.dumps(rows, indent=1))
            (ROOT / args.out).write_text(table(rows, models, args, command, time.perf_counter() - start))
    print((ROOT / args.out).read_text())


if __name__ == "__main__":
    main()
