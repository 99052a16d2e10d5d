"""Our CoMVC and AR-DMVC-AM beside the public AR-DMVC code's, on the same data, seed by seed.

    python benchmarks/public_differential.py [--datasets noisyfashion noisymnist] [--seeds 0 1 2]
        [--width 16] [--comvc-epochs 10] [--ardmvc-am-epochs 3] [--attack-epochs 10]
        [--public results/differential/public] [--work results/differential]

Builds each dataset at 10,000 samples with the public code's view-2 draw (`--pairing paper`: 5,000
train, 5,000 eval), then per model and seed trains with `robustmvc train` (fp32, the given encoder
width) and attacks the checkpoint with the paper's GAN attack under the paper protocol (the target
on batch statistics, fitted and scored on the eval half; eps 0.15 on NoisyFashion, 0.3 on
NoisyMNIST, as the public code). The public side is `benchmarks/public_side.py`, run inside a
checkout of the public code on the same .npz files (docs/public-differential.md has its command
lines); its JSON files, named `public-{dataset}-{model}-seed{seed}.json`, are read from `--public`.

Writes docs/public-differential.md: per dataset, model and seed, clean ACC (running statistics) and
the attack's pre -> post ACC of each side, then mean +- std over seeds. Runs whose files exist are
not run again, so an interrupted invocation resumes.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from precision_pairs import ROOT, cli, cpu_model

PUBLIC_NAME = {"noisyfashion": "noisyfashionmnist", "noisymnist": "noisymnist"}
RAW = {"noisyfashion": "/usr/share/datasets/fashion-mnist", "noisymnist": str(ROOT.parent / "shared/data/mnist-10k")}
EPS = {"noisyfashion": 0.15, "noisymnist": 0.3}  # the public run_other.py's atk_eps
PUBLIC_MODEL = {"comvc": "comvc", "ardmvc-am": "ardmvc_am"}


def ours(work: Path, dataset: str, model: str, seed: int, epochs: int, args) -> dict:
    """Train and attack one (dataset, model, seed) with the CLI; returns the row of our side."""
    data = work / f"{dataset}-10k.npz"
    if not data.exists():
        cli("data", "build", dataset, "--out", str(data), "--max-samples", "10000", "--pairing", "paper",
            "--raw-dir", RAW[dataset], "--no-download")
    overlay = work / "overlay.yaml"
    stem = work / f"ours-{dataset}-{model}-seed{seed}"
    common = ["--config", "config/config.yaml", "--config", str(overlay), "--device", "cpu",
              "--threads", str(args.threads)]
    if not Path(f"{stem}-gan.json").exists():
        # AR-DMVC-AM's lambda and gamma per dataset are the public run.py's already (config.yaml); its KL is
        # taken in the direction the public code computes
        extra = ["--set", "kl_direction=code"] if model == "ardmvc-am" else []
        cli("train", "--data", str(data), "--model", model, "--seed", str(seed), "--epochs", str(epochs),
            "--out", f"{stem}.pt", "--metrics", f"{stem}-clean.json", *extra, *common)
        cli("attack", "--data", str(data), "--checkpoint", f"{stem}.pt", "--out", f"{stem}-gan.json",
            "--attack", "gan", "--objective", "both", "--eps", str(EPS[dataset]), "--epochs",
            str(args.attack_epochs), "--protocol", "paper", *common)
    clean = json.loads(Path(f"{stem}-clean.json").read_text())
    attacked = json.loads(Path(f"{stem}-gan.json").read_text())
    return {"clean": clean["clean"]["acc"], "pre": attacked["clean"]["acc"], "post": attacked["attacked"]["acc"]}


def public(folder: Path, dataset: str, model: str, seed: int) -> dict | None:
    path = folder / f"public-{dataset}-{model}-seed{seed}.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    return {"clean": r["clean_acc"], "pre": r["pre"][0], "post": r["post"][0]}


def fmt(row: dict | None) -> str:
    if row is None:
        return "(not run) | |"
    return f"{row['clean']:.3f} | {row['pre']:.3f} | {row['post']:.3f}"


def summary(rows: list[dict]) -> str:
    if len(rows) < 2:
        return "- | - | -"
    cells = []
    for key in ("clean", "pre", "post"):
        x = np.array([r[key] for r in rows])
        cells.append(f"{x.mean():.3f} +- {x.std(ddof=1):.3f}")
    drop = np.array([r["pre"] - r["post"] for r in rows])
    return " | ".join(cells) + f" (drop {drop.mean():.3f} +- {drop.std(ddof=1):.3f})"


def difference(ours_rows: list[dict], public_rows: list[dict]) -> str:
    """Ours - public of the mean clean, pre, post ACC and drop, each with Welch's two-sided p over seeds
    (the seeds of the two sides are different draws, so unpaired): a small p is a difference that the
    seed-to-seed spread does not explain."""
    from scipy.stats import ttest_ind

    if len(ours_rows) < 2 or len(public_rows) < 2:
        return "- | - | -"
    cells = []
    for key in ("clean", "pre", "post", "drop"):
        o = np.array([r["pre"] - r["post"] if key == "drop" else r[key] for r in ours_rows])
        p = np.array([r["pre"] - r["post"] if key == "drop" else r[key] for r in public_rows])
        cells.append(f"{key} {o.mean() - p.mean():+.3f} (p {ttest_ind(o, p, equal_var=False).pvalue:.2f})")
    return " | ".join(cells[:2]) + " | " + ", ".join(cells[2:])


def table(results: dict, args, command: str) -> str:
    lines = [
        "# Our code beside the public AR-DMVC code",
        "",
        f"Command (our side): `{command}`  ",
        f"Machine: {cpu_model()}, {args.threads} torch thread(s) per run, fp32 on both sides.  ",
        f"Data: `robustmvc data build <dataset> --max-samples 10000 --pairing paper` (5,000 train, 5,000 eval), "
        f"the same file on both sides. Encoder width {args.width}; CoMVC {args.comvc_epochs} epochs, AR-DMVC-AM "
        f"{args.ardmvc_am_epochs} epochs (10-step PGD, eps 0.2, train-mode BatchNorm, the public run.py's lambda and gamma, its KL direction); "
        f"the paper's GAN attack, {args.attack_epochs} epochs, eps 0.15 (NoisyFashion) / 0.3 (NoisyMNIST), the "
        f"target on batch statistics, fitted and scored on the eval half.",
        "",
        "clean: ACC on the eval half with BatchNorm's running statistics; pre / post: the attack's ACC before "
        "and after (batch statistics of shuffled batches of 100, as the public code scores). The last row of "
        "each block: ours - public of the means, with Welch's two-sided p over seeds.",
        "",
        "| dataset | model | seed | ours clean | ours pre | ours post | public clean | public pre | public post |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (dataset, model), per_seed in results.items():
        for seed, (o, p) in per_seed.items():
            if o or p:
                lines.append(f"| {dataset} | {model} | {seed} | {fmt(o)} | {fmt(p)} |")
        o_rows = [o for o, _ in per_seed.values() if o]
        p_rows = [p for _, p in per_seed.values() if p]
        lines.append(f"| {dataset} | {model} | mean +- sd | {summary(o_rows)} | {summary(p_rows)} |")
        lines.append(f"| {dataset} | {model} | ours - public | {difference(o_rows, p_rows)} | | | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["noisyfashion", "noisymnist"], choices=list(EPS))
    p.add_argument("--models", nargs="+", default=["comvc", "ardmvc-am"], choices=list(PUBLIC_MODEL))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--comvc-epochs", type=int, default=10)
    p.add_argument("--ardmvc-am-epochs", type=int, default=3)
    p.add_argument("--attack-epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default="results/differential")
    p.add_argument("--public", default="results/differential/public", help="the public side's JSON files")
    p.add_argument("--out", default="docs/public-differential-table.md")
    p.add_argument("--table-only", action="store_true", help="only rewrite the table from files on disk")
    args = p.parse_args()
    # the command that runs (or resumes) these runs: --table-only only reads them back
    command = "python benchmarks/public_differential.py " + shlex.join(a for a in sys.argv[1:] if a != "--table-only")
    work = (ROOT / args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    (work / "overlay.yaml").write_text(f"precision: fp32\narchitecture: {{encoder_width: {args.width}}}\n")
    epochs = {"comvc": args.comvc_epochs, "ardmvc-am": args.ardmvc_am_epochs}
    results: dict = {}
    for dataset in args.datasets:
        for model in args.models:
            for seed in args.seeds:
                stem = work / f"ours-{dataset}-{model}-seed{seed}"
                done = Path(f"{stem}-gan.json").exists()
                row = ours(work, dataset, model, seed, epochs[model], args) if done or not args.table_only else None
                results.setdefault((dataset, model), {})[seed] = (row, public(ROOT / args.public, dataset, model, seed))
                (ROOT / args.out).write_text(table(results, args, command))
    print((ROOT / args.out).read_text())


if __name__ == "__main__":
    main()
