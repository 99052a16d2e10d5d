"""From per-run metric files to the tidy table and the paper-versus-ours Table 1.

Every attack run writes `{results}/metrics/{dataset}/{model}/{variant}/{protocol}/seed{seed}.json` and the
training stage `{results}/metrics/{dataset}/{model}/clean/seed{seed}.json`; `variant` is an attack (`gan-both`,
`gan-com`, `gan-con`, `pgd`, `blackbox`, `whitebox`, `embedding`, or a budget sweep point such as
`gan-both-eps0.1`; `robustmvc.variants` reads these names). Attack files hold the scores of the same samples before (`pre`) and after (`post`)
the attack. Attack files of the earlier layout (no protocol folder) are read too, their protocol named
from their settings (`protocols.protocol_name`).

Two numbers are only ever set against each other when they are *paired*: same dataset, model, seed,
sample set and protocol, except for the one thing the comparison varies (`pair`). Every table,
figure and claim that compares runs goes through `pair`.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from robustmvc import registry, variants
from robustmvc.files import read_json

METRICS = ("acc", "nmi", "ari")
COLUMNS = ["dataset", "model", "seed", "attack", "protocol", "eps", "phase", *METRICS]
MODEL_ORDER = registry.names()  # table order: the paper's Table 1, then the defenses
DATASET_ORDER = ["regdb", "noisyfashion", "noisymnist", "patchedmnist", "demo", "demo3"]


def metrics_files(results: str | Path, runs=None) -> tuple[list[Path], list[str]]:
    """(the metrics files to read, the ones on disk left out). Without `runs`, every run file under
    `results/metrics`. With `runs` (the metrics files the config names, relative to `results/metrics`,
    as the evaluate rule lists its inputs), exactly those: a missing one is an error, and a file on disk
    that `runs` does not name (a seed or model no longer configured) is left out and returned, relative
    to `results/metrics`, so the page can list it as ignored."""
    metrics = Path(results) / "metrics"
    on_disk = sorted([*metrics.glob("*/*/*/seed*.json"), *metrics.glob("*/*/*/*/seed*.json")])
    if runs is None:
        return on_disk, []
    named = sorted({Path(r).as_posix() for r in runs})
    for r in named:
        if Path(r).is_absolute() or ".." in Path(r).parts or not 4 <= len(Path(r).parts) <= 5:
            raise ValueError(f"the run {r} is not a metrics file's path under {metrics} "
                             "(DATASET/MODEL/VARIANT/[PROTOCOL/]seedN.json); name runs relative to it")
    missing = [r for r in named if not (metrics / r).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} configured run(s) have no metrics file under {metrics}, e.g. {missing[0]}; "
                         "run the workflow to make them, or leave them out of the config")
    return [metrics / r for r in named], [f.relative_to(metrics).as_posix() for f in on_disk
                                          if f.relative_to(metrics).as_posix() not in set(named)]


def collect(results: str | Path, runs=None) -> pd.DataFrame:
    """One row per (run, phase) over the metrics files under `results/metrics`: those `runs` names,
    else every one on disk (`metrics_files`); `attrs["ignored"]` lists the files on disk left out.

    The clean evaluation (`attack` none) runs the model as trained, BatchNorm on its running statistics,
    on the whole eval half: its protocol is `strict` (no attacker, so no samples to hold out).
    Runs that do not belong together are refused (`check_lineage`).
    """
    # imported here, not at module level: the attack module loads torch (seconds), which tables,
    # the report and notebook 08 otherwise never need
    from robustmvc.protocols import protocol_name

    rows, records = [], {}
    metrics = Path(results) / "metrics"
    files, ignored = metrics_files(results, runs)
    for f in files:
        parts = f.relative_to(metrics).parts
        dataset, model, variant = parts[:3]
        rec = read_json(f)
        records[f] = rec
        seed = int(f.stem.removeprefix("seed"))
        if variant == "clean":
            rows.append([dataset, model, seed, "none", "strict", 0.0, "pre", *(rec["clean"][m] for m in METRICS)])
            continue
        settings = rec.get("settings", {})
        protocol = protocol_name({**settings, **({"protocol": rec["protocol"]} if "protocol" in rec else {})})
        if len(parts) == 5 and parts[3] != protocol:
            raise ValueError(f"{f} lies in the {parts[3]!r} folder but holds a {protocol!r} run; rerun the attack")
        for phase, key in (("pre", "clean"), ("post", "attacked")):
            rows.append([dataset, model, seed, variant, protocol,
                         float(settings.get("eps", np.nan)), phase, *(rec[key][m] for m in METRICS)])
    check_lineage(records, metrics)
    tidy = pd.DataFrame(rows, columns=COLUMNS)
    tidy.attrs["ignored"] = ignored
    return tidy


def check_lineage(records: dict[Path, dict], metrics: Path) -> None:
    """Refuse runs that were not made from the same things: the runs of a dataset from different builds
    or splits of it, and an attack on another checkpoint than the one its model's clean run scored.
    Files without lineage (written before it was recorded) are not checked."""
    builds: dict[str, tuple] = {}
    checkpoints: dict[tuple, tuple] = {}
    for f, rec in records.items():
        made = rec.get("lineage") or {}
        dataset, model, variant = f.relative_to(metrics).parts[:3]
        if made.get("data"):
            build = (made["data"]["samples"], made["data"]["split"])
            first = builds.setdefault(dataset, (build, f))
            if first[0] != build:
                raise ValueError(f"{f} and {first[1]} come from different builds or splits of {dataset}, so their "
                                 f"numbers cannot be set side by side; rerun the older run (or delete it)")
        if made.get("checkpoint") and variant == "clean":
            checkpoints[(dataset, model, f.stem)] = (made["checkpoint"], f)
    for f, rec in records.items():
        dataset, model, variant = f.relative_to(metrics).parts[:3]
        clean = checkpoints.get((dataset, model, f.stem))
        attacked = (rec.get("lineage") or {}).get("checkpoint")
        if variant != "clean" and clean and attacked and attacked != clean[0]:
            raise ValueError(f"{f} attacked another checkpoint of {model} than the one {clean[1]} scored (the model "
                             "was trained again since); rerun the attack")


def summarize(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (0 for one seed) and seed count of each metric per (dataset, model, attack, phase)."""
    keys = ["dataset", "model", "attack", "protocol", "eps", "phase"]
    if tidy.empty:
        return pd.DataFrame(columns=keys + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")] + ["seeds"])
    grouped = tidy.groupby(keys, dropna=False)
    out = grouped[list(METRICS)].agg(["mean", "std"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out = out.fillna({f"{m}_std": 0.0 for m in METRICS})
    out["seeds"] = grouped.size()
    return out.reset_index()


NOT_REPORTED, ILLEGIBLE = "not reported", "illegible"


def load_paper(path: str | Path) -> pd.DataFrame:
    """The paper's Table 1 as rows (dataset, model, phase, acc, nmi, ari, and per metric a `_note`):
    a missing number is NaN, its note says why: `illegible` (null in the YAML: unreadable in the
    source) or `not reported` (`nr`: the paper gives no such number)."""
    table = yaml.safe_load(Path(path).read_text())["table1"]
    rows = []
    for model, per_dataset in table.items():
        for dataset, phases in per_dataset.items():
            for phase in ("pre", "post"):
                cells = phases[phase]
                if any(v is not None and v != "nr" and not isinstance(v, (int, float)) for v in cells):
                    raise ValueError(f"{path}: {model}/{dataset}/{phase} holds {cells}; write numbers, null "
                                     "(illegible) or nr (not reported)")
                values = [float(v) if isinstance(v, (int, float)) else np.nan for v in cells]
                notes = [ILLEGIBLE if v is None else NOT_REPORTED if v == "nr" else "" for v in cells]
                rows.append([dataset, model, phase, *values, *notes])
    return pd.DataFrame(rows, columns=["dataset", "model", "phase", *METRICS, *(f"{m}_note" for m in METRICS)])


def in_order(values, order):
    return sorted(values, key=lambda v: (order.index(v) if v in order else len(order), v))


def sort_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the tables' order: datasets as in Table 1, models as in the paper, then by seed."""
    if frame.empty:
        return frame
    rank = {**{d: i for i, d in enumerate(DATASET_ORDER)}, **{m: i for i, m in enumerate(MODEL_ORDER)}}
    cols = [c for c in ("dataset", "model", "seed") if c in frame.columns]
    return frame.sort_values(cols, kind="stable", key=lambda col: col if col.name == "seed" else col.map(
        lambda v: (rank.get(v, len(rank)), str(v))))


# ---------------------------------------------------------------------------------------------
# Pairing: the one way two runs are compared.

PAIR_KEYS = ("dataset", "model", "seed", "sample_set", "protocol")


def with_sample_set(tidy: pd.DataFrame) -> pd.DataFrame:
    """`tidy` with a `sample_set` column: the samples a row was scored on. Kept when present; otherwise
    `strict` rows were scored on the held-out part of the eval half and every other row (the paper
    protocol, and the training stage's clean evaluation) on the whole eval half."""
    if "sample_set" in tidy.columns:
        return tidy
    return tidy.assign(sample_set=np.where(tidy["protocol"] == "strict", "heldout", "eval"))


def _select(frame: pd.DataFrame, selection: dict) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for col, want in selection.items():
        if col not in frame.columns:
            raise ValueError(f"cannot select {col}={want!r}: the table has no column {col!r}")
        mask &= (frame[col] == want).to_numpy()
    return frame[mask]


def _unit(keys, values) -> str:
    """A pairing unit in words: `noisymnist comvc seed 1 (paper protocol, eval samples)`."""
    unit = dict(zip(keys, values if isinstance(values, tuple) else (values,)))
    words = [str(unit[k]) for k in ("dataset", "model") if k in unit]
    words += [f"seed {unit['seed']}"] if "seed" in unit else []
    where = [f"{unit[k]} {name}" for k, name in (("protocol", "protocol"), ("sample_set", "samples")) if k in unit]
    return " ".join(words) + (f" ({', '.join(where)})" if where else "")


def pair(tidy: pd.DataFrame, sides: dict[str, dict], value: str = "acc", drop_unpaired: bool = False) -> pd.DataFrame:
    """One row per pairing unit, one column per side: the values compared, from the same dataset, model,
    seed, sample set and protocol, except for the columns the sides themselves select on.

    `sides` maps a name to a selection, e.g. `{"both": {"attack": "gan-both", "phase": "post"},
    "com": {"attack": "gan-com", "phase": "post"}}`; a column named in any selection (here `attack`,
    `phase`) is what the comparison varies, and every other pairing key must match. A side that holds
    two rows for one unit (two eps, two sample sets under one name) is an error. A unit present in
    some sides but not all is an error naming it, unless `drop_unpaired`: then it is left out and
    listed in `out.attrs["unpaired"]`, so the page can say what was not compared.
    """
    frame = with_sample_set(tidy)
    varied = {c for selection in sides.values() for c in selection}
    keys = [k for k in PAIR_KEYS if k in frame.columns and k not in varied]
    parts = {}
    for name, selection in sides.items():
        part = _select(frame, selection)
        twice = part[part.duplicated(keys, keep=False)]
        if len(twice):
            raise ValueError(f"side {name!r} ({selection}) has several rows for "
                             f"{_unit(keys, tuple(twice.iloc[0][keys]))}; select one attack, phase and eps per side")
        parts[name] = part.set_index(keys)[value]
    if not any(len(p) for p in parts.values()):
        return pd.DataFrame(columns=keys + list(sides))
    wide = pd.concat(parts, axis=1, join="outer")
    present = pd.concat({n: pd.Series(True, index=p.index) for n, p in parts.items()}, axis=1).reindex(wide.index)
    present = present.fillna(False).astype(bool)
    unpaired = []
    for unit, row in present[~present.all(axis=1)].iterrows():
        have = [n for n in sides if row[n]]
        lack = [n for n in sides if not row[n]]
        unpaired.append(f"{_unit(keys, unit)}: {', '.join(have)} but no {', '.join(lack)}")
    if unpaired and not drop_unpaired:
        raise ValueError("these runs have no partner to compare with (" + "; ".join(unpaired) + "); run the "
                         "missing ones or compare only paired runs (drop_unpaired=True)")
    out = wide[present.all(axis=1)].reset_index()
    out.attrs["unpaired"] = unpaired
    return out


# ---------------------------------------------------------------------------------------------
# Table 1: pre and post under each protocol, ours beside the paper's, every seed shown.


def table1(tidy: pd.DataFrame, paper: pd.DataFrame, attack: str = "gan-both") -> pd.DataFrame:
    """Ours beside the paper, per (model, dataset, protocol, phase, metric), for one attack: mean, std
    and every seed's value (pre and post paired: both from the same runs). The paper's number sits
    beside the paper protocol's rows only; the strict protocol's rows are ours alone."""
    rows = []
    frame = with_sample_set(tidy)
    for (dataset, model, protocol), part in frame[frame["attack"] == attack].groupby(["dataset", "model", "protocol"]):
        for m in METRICS:
            paired = pair(part, {"pre": {"phase": "pre"}, "post": {"phase": "post"}}, value=m).sort_values("seed")
            for phase in ("pre", "post"):
                values = paired[phase].to_numpy(dtype=float)
                match = paper[(paper["dataset"] == dataset) & (paper["model"] == model) & (paper["phase"] == phase)]
                ref = float(match[m].iloc[0]) if len(match) and protocol == "paper" else np.nan
                note = (str(match[f"{m}_note"].iloc[0]) if len(match) and f"{m}_note" in match else
                        "" if len(match) else NOT_REPORTED)
                rows.append({"model": model, "dataset": dataset, "protocol": protocol, "phase": phase, "metric": m,
                             "mean": values.mean(), "std": values.std(ddof=1) if len(values) > 1 else 0.0,
                             "seeds": len(values), "values": [float(v) for v in values],
                             "seed_ids": [int(s) for s in paired["seed"]], "paper": ref, "diff": values.mean() - ref,
                             "paper_note": note})
    return pd.DataFrame(rows, columns=["model", "dataset", "protocol", "phase", "metric", "mean", "std", "seeds",
                                       "values", "seed_ids", "paper", "diff", "paper_note"])


PROTOCOL_ORDER = ["paper", "strict"]


# Table 1 shading says what a difference from the paper means, which depends on the row: before the attack,
# ours above the paper's is a higher clean accuracy (purple) and below a lower one (orange); after the attack,
# ours above the paper's means the attack took less accuracy than published, a weaker attack (brown), and
# below a stronger one (teal). Both are diverging, colour-blind-safe scales (PuOr, BrBG); cut points on |diff|.
SHADES = {"higher": ["#d8daeb", "#b2abd2", "#8073ac"], "lower": ["#fee0b6", "#fdb863", "#e08214"],
          "weaker": ["#f6e8c3", "#dfc27d", "#a6611a"], "stronger": ["#c7eae5", "#80cdc1", "#018571"]}
SHADE_WORDS = {"higher": "clean accuracy higher than published", "lower": "clean accuracy lower than published",
               "weaker": "after the attack higher than published: the attack was weaker here",
               "stronger": "after the attack lower than published: the attack was stronger here"}
SHADE_CUTS = (0.15, 0.30)  # above the tolerance: up to 0.15, up to 0.30, beyond
TOLERANCE = 0.05  # Table 1: a difference from the paper within this is not shaded (notebook 06's `tolerance`)
CHANCE_MARGIN = 0.05  # "at chance": mean ACC at most 1/K + this (claims.FLOOR_MARGIN)
NO_PAPER_STRICT = "no paper value: the paper reports its own protocol only"


def shade(diff: float, tolerance: float, phase: str = "pre") -> str:
    """CSS class of a Table 1 cell: `near` within the tolerance, else by what ours - paper means on its row
    (`SHADE_WORDS`: `higher`/`lower` before the attack, `weaker`/`stronger` attack after it) and 1..3 by how
    far."""
    if np.isnan(diff) or abs(diff) <= tolerance:
        return "near"
    level = 1 + sum(abs(diff) > c for c in SHADE_CUTS)
    if phase == "post":
        return f"{'weaker' if diff > 0 else 'stronger'}{level}"
    return f"{'higher' if diff > 0 else 'lower'}{level}"


def _shade_legend(tolerance: float) -> str:
    bounds = [f"{tolerance:.2f}&ndash;{SHADE_CUTS[0]:.2f}", f"{SHADE_CUTS[0]:.2f}&ndash;{SHADE_CUTS[1]:.2f}",
              f"&gt; {SHADE_CUTS[1]:.2f}"]
    lines = []
    for down, up, row in (("lower", "higher", "before the attack (pre)"), ("stronger", "weaker", "after the attack (post)")):
        swatches = ([f"<span class='sw {down}{i}'>by {b}</span>" for i, b in reversed(list(enumerate(bounds, 1)))]
                    + [f"<span class='sw near'>within &plusmn;{tolerance:.2f}</span>"]
                    + [f"<span class='sw {up}{i}'>by {b}</span>" for i, b in enumerate(bounds, 1)])
        lines.append(f"<p class='legend'><b>{row}</b>: {SHADE_WORDS[down]} &larr; {''.join(swatches)} &rarr; "
                     f"{SHADE_WORDS[up]}</p>")
    return "".join(lines)


def _chance(dataset: str) -> float:
    return 1 / N_CLUSTERS.get(dataset, 10)


def table1_findings(t1: pd.DataFrame, tolerance: float = TOLERANCE) -> str:
    """The main differences from the paper in one paragraph of HTML, from Table 1's ACC cells: how many
    post-attack cells show a weaker or a stronger attack than published (and the largest gap), how many
    clean cells are higher or lower, and the models the strict protocol leaves at chance while the paper's
    protocol does not."""
    acc = t1[t1["metric"] == "acc"]
    if acc.empty:
        return ""
    sentences = []
    paper = acc[(acc["protocol"] == "paper") & acc["paper"].notna()]
    for phase, (up, down), what in (("post", ("weaker", "stronger"), "After the attack"),
                                    ("pre", ("higher", "lower"), "Before the attack")):
        rows = paper[paper["phase"] == phase]
        if rows.empty:
            continue
        above, below = rows[rows["diff"] > tolerance], rows[rows["diff"] < -tolerance]
        near = len(rows) - len(above) - len(below)
        big = rows.loc[rows["diff"].abs().idxmax()]
        sentences.append(
            f"{what}, {len(above)} of {len(rows)} ACC cells with a paper value lie above the paper's by more than "
            f"{tolerance:.2f} ({SHADE_WORDS[up]}), {len(below)} below ({SHADE_WORDS[down]}) and {near} within it; the "
            f"largest gap is {html.escape(big['model'])} on {html.escape(big['dataset'])}, {big['mean']:.2f} against the "
            f"paper's {big['paper']:.2f}.")
    post = acc[acc["phase"] == "post"].set_index(["model", "dataset", "protocol"])["mean"]
    fallen = []
    for (model, dataset, protocol), value in post.items():
        if protocol != "strict" or value > _chance(dataset) + CHANCE_MARGIN:
            continue
        other = post.get((model, dataset, "paper"))
        if other is not None and other > _chance(dataset) + CHANCE_MARGIN:
            fallen.append(f"{html.escape(model)} on {html.escape(dataset)} ({value:.2f} strict, {other:.2f} paper "
                          f"protocol, chance {_chance(dataset):.2f})")
    if fallen:
        sentences.append("Under the strict protocol (running BatchNorm statistics, generators scored on samples "
                         "they were not fitted on) the attack leaves these models at chance, where the paper's protocol "
                         f"does not: {'; '.join(fallen)}.")
    return f"<p class='findings'><b>Main differences.</b> {' '.join(sentences)}</p>" if sentences else ""


def table1_html(t1: pd.DataFrame, tolerance: float, scale: str) -> str:
    """Models as rows, datasets x metrics as columns; per model a pre and a post row under each protocol.
    Each cell shows ours (mean +- std over seeds) and every seed's value in small print; under the paper
    protocol also the paper's value and the difference, shaded by what the difference means (`shade`); a
    missing paper value says whether it is not reported or illegible in the paper, and the strict rows say
    why they have none. The paragraph of `table1_findings` comes first."""
    if t1.empty:
        return "<p>No attack results to tabulate yet.</p>"
    datasets = in_order(t1["dataset"].unique(), DATASET_ORDER)
    models = in_order(t1["model"].unique(), MODEL_ORDER)
    protocols = in_order(t1["protocol"].unique(), PROTOCOL_ORDER)
    lines = [(p, ph) for p in protocols for ph in ("pre", "post")]
    head = "<tr><th rowspan='2'>model</th><th rowspan='2'></th>" + "".join(
        f"<th colspan='3'>{html.escape(d)}</th>" for d in datasets) + "</tr><tr>" + "".join(
        f"<th>{m.upper()}</th>" for _ in datasets for m in METRICS) + "</tr>"
    cell = {(r.model, r.dataset, r.protocol, r.phase, r.metric): r for r in t1.itertuples()}
    marks = {NOT_REPORTED: "not reported in the paper", ILLEGIBLE: "illegible in the paper"}
    body = []
    for model in models:
        shown = [(p, ph) for p, ph in lines if any((model, d, p, ph, "acc") in cell for d in datasets)]
        for i, (protocol, phase) in enumerate(shown):
            tds = []
            for d in datasets:
                for m in METRICS:
                    r = cell.get((model, d, protocol, phase, m))
                    if r is None:
                        tds.append("<td class='empty'>&ndash;</td>")
                        continue
                    ours = f"{r.mean:.2f}" + (f"&plusmn;{r.std:.2f}" if r.seeds > 1 else "")
                    seeds = "<br><span class='seeds'>" + " ".join(f"{v:.2f}" for v in r.values) + "</span>"
                    if protocol != "paper":
                        tds.append(f"<td>{ours}{seeds}</td>")
                    elif np.isnan(r.paper):
                        note = getattr(r, "paper_note", "") or NOT_REPORTED
                        tds.append(f"<td class='nopaper'>{ours}{seeds}<br><span class='paper'>{marks[note]}"
                                   "</span></td>")
                    else:
                        tds.append(f"<td class='{shade(r.diff, tolerance, phase)}'>{ours}{seeds}<br><span class='paper'>"
                                   f"paper {r.paper:.2f} ({round(r.diff, 2) + 0.0:+.2f})</span></td>")
            label = f"<th rowspan='{len(shown)}'>{html.escape(model)}</th>" if i == 0 else ""
            why = f"<br><span class='paper'>{NO_PAPER_STRICT}</span>" if protocol != "paper" else ""
            body.append(f"<tr>{label}<td>{phase} ({html.escape(protocol)}){why}</td>{''.join(tds)}</tr>")
    legend = (f"<p class='legend'>Scale: <b>{html.escape(scale)}</b>. Each cell: ours as mean &plusmn; std over "
              f"seeds (std shown when there are several), every seed's value in small print (in seed order), "
              f"and under the paper protocol the paper's value and our difference (ours &minus; paper). Pre and "
              f"post come from the same runs. The shading says what the difference means: before the attack, a "
              f"clean accuracy higher (purple) or lower (orange) than published; after the attack, an attack weaker "
              f"(brown: more accuracy left than in the paper) or stronger (teal) than published. The strict rows "
              f"carry no paper number, since the paper published only its own protocol. &ndash; = not run here.</p>")
    shades = "".join(f".t1 .{k}{i + 1}{{background:{c}}}" for k, cs in SHADES.items() for i, c in enumerate(cs))
    dark = ",".join(f".t1 .{k}3" for k in SHADES)
    style = ("<style>.t1{border-collapse:collapse;font-size:.85rem}.t1 td,.t1 th{border:1px solid #ccc;"
             f"padding:.2rem .4rem;text-align:center}}{shades}{dark}{{color:#fff}}"
             + ",".join(f".t1 .{k}3 .paper,.t1 .{k}3 .seeds" for k in SHADES) + "{color:#f4f4f4}"
             ".t1 .near{background:#f7f7f7}.t1 .paper{color:#444;font-size:.75rem}"
             ".t1 .seeds{color:#666;font-size:.65rem}.t1 .empty{color:#888}.t1 .nopaper{background:#fff}"
             ".legend .sw{display:inline-block;padding:.1rem .45rem;margin:.1rem .15rem;font-size:.75rem;"
             "border:1px solid #ccc}"
             + "".join(f".legend .{k}{i + 1}{{background:{c}}}" for k, cs in SHADES.items() for i, c in enumerate(cs))
             + ",".join(f".legend .{k}3" for k in SHADES) + "{color:#fff}.legend .near{background:#f7f7f7}</style>")
    return (f"{style}{table1_findings(t1, tolerance)}{legend}{_shade_legend(tolerance)}"
            f"<table class='t1' id='table1'>{head}{''.join(body)}</table>")


# ---------------------------------------------------------------------------------------------
# Files beside the metrics: the attack records' extra fields, the transfer tables, the sensitivity sweep.


def attack_records(results: str | Path, variants=None, runs=None) -> pd.DataFrame:
    """One row per attack metrics file (`{results}/metrics/{dataset}/{model}/{variant}/{protocol}/seed{seed}.json`)
    with what the tidy table leaves out: the device it ran on, its fitting time, the black-box query counts,
    and what explains a collapse (the largest cluster's share of the samples clean and attacked, and the
    share of pixels the perturbation pushes to the full +-eps, averaged over the views)."""
    rows = []
    for f in metrics_files(results, runs)[0]:
        if len(f.relative_to(Path(results) / "metrics").parts) != 5:  # the clean runs: no attack
            continue
        dataset, model, variant, protocol = f.parts[-5:-1]
        if variants is not None and variant not in variants:
            continue
        rec = read_json(f)
        shares, perturbation = rec.get("largest_cluster_share") or {}, rec.get("perturbation") or {}
        at_eps = perturbation.get("share_at_eps")
        rows.append({"dataset": dataset, "model": model, "seed": int(f.stem.removeprefix("seed")),
                     "attack": variant, "protocol": protocol, "device": rec.get("device"),
                     "seconds": rec.get("seconds"), "queries": rec.get("queries"),
                     "queries_per_sample": rec.get("queries_per_sample"),
                     "largest_cluster_clean": shares.get("clean", np.nan),
                     "largest_cluster_attacked": shares.get("attacked", np.nan),
                     "pixels_at_eps": float(np.mean(at_eps)) if at_eps else np.nan})
    return pd.DataFrame(rows, columns=["dataset", "model", "seed", "attack", "protocol", "device", "seconds",
                                       "queries", "queries_per_sample", "largest_cluster_clean",
                                       "largest_cluster_attacked", "pixels_at_eps"])


PROVENANCE = ("machine", "device", "torch", "precision", "threads", "commit", "dirty", "changed", "wall_seconds",
              "cpu_seconds")


def run_provenance(results: str | Path, runs=None) -> pd.DataFrame:
    """Where each run was made (`lineage.provenance`, recorded in its metrics file): one row per metrics
    file (`run`: its path under `results/metrics`); files from before provenance was recorded have no
    machine (None)."""
    metrics = Path(results) / "metrics"
    rows = []
    for f in metrics_files(results, runs)[0]:
        where = read_json(f).get("provenance") or {}
        rows.append({"run": f.relative_to(metrics).with_suffix("").as_posix(),
                     **{k: where.get(k) for k in PROVENANCE}})
    return pd.DataFrame(rows, columns=["run", *PROVENANCE])


TRANSFER_PREFIX = "transfer-from-"


def transfer_tidy(results: str | Path) -> pd.DataFrame:
    """The transfer tables (`{results}/transfer/{dataset}.csv`, one row per surrogate x target) as tidy rows:
    model = the target, attack = `transfer-from-<surrogate>`, seed = the target's. A table written without
    a `protocol` column was scored with running statistics on the whole eval half, which is neither
    protocol: its rows get protocol `transfer` and pair only with each other."""
    rows = []
    for f in sorted(Path(results).glob("transfer/*.csv")):
        table = pd.read_csv(f)
        if "seed" not in table.columns:
            raise ValueError(f"{f} records no seed; re-run `python -m robustmvc transfer` (it writes the target's seed)")
        for r in table.itertuples(index=False):
            protocol = getattr(r, "protocol", "transfer")
            for phase in ("pre", "post"):
                rows.append([r.dataset, r.target, int(r.seed), TRANSFER_PREFIX + r.surrogate, protocol,
                             np.nan, phase, *(getattr(r, f"{phase}_{m}") for m in METRICS)])
    return pd.DataFrame(rows, columns=COLUMNS)


def transfer_grid(transfer: pd.DataFrame) -> pd.DataFrame:
    """Clean and post-attack ACC of each target under each surrogate's generators and the ACC it loses,
    means over the target's seeds that every surrogate was applied to (paired per target, dataset and
    protocol); columns dataset, protocol, surrogate, target, pre_acc, post_acc, drop, seeds."""
    rows = []
    for (dataset, target, protocol), part in transfer.groupby(["dataset", "model", "protocol"]):
        surrogates = sorted(part["attack"].unique())
        sides = {f"{a} {phase}": {"attack": a, "phase": phase} for a in surrogates for phase in ("pre", "post")}
        wide = pair(part, sides, drop_unpaired=True)
        for a in surrogates:
            pre, post = wide[f"{a} pre"], wide[f"{a} post"]
            rows.append({"dataset": dataset, "protocol": protocol, "surrogate": a.removeprefix(TRANSFER_PREFIX),
                         "target": target, "pre_acc": pre.mean(), "post_acc": post.mean(),
                         "drop": (pre - post).mean(), "seeds": len(wide)})
    return pd.DataFrame(rows, columns=["dataset", "protocol", "surrogate", "target", "pre_acc", "post_acc", "drop",
                                       "seeds"])


def sensitivity_point(folder: str) -> tuple[float, float, str]:
    """A sweep point's folder name -> (lambda, gamma, KL direction): `lambda1-gamma0.1-klcode` ->
    (1.0, 0.1, "code"); a folder of the earlier layout names no direction, which was the paper's."""
    m = re.fullmatch(r"lambda([0-9.e+-]+?)-gamma([0-9.e+-]+?)(?:-kl(paper|code))?", folder)
    if not m:
        raise ValueError(f"{folder!r} is not a sensitivity point; expected lambda<adv_weight>-gamma<kl_weight>[-kl<direction>]")
    return float(m.group(1)), float(m.group(2)), m.group(3) or "paper"


def collect_sensitivity(results: str | Path) -> pd.DataFrame:
    """The lambda/gamma sweep (`{results}/sensitivity/{dataset}/lambda{l}-gamma{g}[-kl{direction}]/seed{s}.json`)
    as tidy rows plus `lambda`, `gamma` and `kl_direction` columns (`paper` where the folder names none); the
    model is the swept defense (AR-DMVC-AM)."""
    rows = []
    for f in sorted(Path(results).glob("sensitivity/*/lambda*-gamma*/**/seed*.json")):
        point = next(p for p in f.parts if p.startswith("lambda") and "-gamma" in p)
        dataset = f.parts[f.parts.index(point) - 1]
        lam, gam, direction = sensitivity_point(point)
        rec = read_json(f)
        protocol = f.parent.name if f.parent.name != point else rec.get("protocol", "paper")
        for phase, key in (("pre", "clean"), ("post", "attacked")):
            rows.append([dataset, "ardmvc-am", int(f.stem.removeprefix("seed")), "gan-both", protocol,
                         float((rec.get("settings") or {}).get("eps", np.nan)), phase,
                         *(rec[key][m] for m in METRICS), lam, gam, direction])
    return pd.DataFrame(rows, columns=COLUMNS + ["lambda", "gamma", "kl_direction"])


def sensitivity_grid(sens: pd.DataFrame, protocol: str = "paper", kl_direction: str = "paper") -> pd.DataFrame:
    """Post-attack ACC per (lambda, gamma) for one KL direction, mean over the seeds run at every grid point
    (paired); columns dataset, lambda, gamma, post_acc, seeds."""
    part = sens[(sens["protocol"] == protocol) & (sens.get("kl_direction", "paper") == kl_direction)]
    if part.empty:
        return pd.DataFrame(columns=["dataset", "lambda", "gamma", "post_acc", "seeds"])
    points = sorted(set(zip(part["lambda"], part["gamma"])))
    sides = {f"{lam}/{gam}": {"lambda": lam, "gamma": gam, "phase": "post"} for lam, gam in points}
    wide = pair(part.drop(columns="kl_direction", errors="ignore"), sides, drop_unpaired=True)
    rows = [{"dataset": d, "lambda": lam, "gamma": gam, "post_acc": w[f"{lam}/{gam}"].mean(), "seeds": len(w)}
            for d, w in wide.groupby("dataset") for lam, gam in points]
    return pd.DataFrame(rows, columns=["dataset", "lambda", "gamma", "post_acc", "seeds"])


def kl_direction_table(sens: pd.DataFrame, protocol: str = "paper") -> pd.DataFrame:
    """Post-attack ACC of the paper's KL direction beside the public code's at each (lambda, gamma), on the
    seeds run with both (paired); empty when only one direction ran."""
    part = sens[(sens["protocol"] == protocol) & (sens["phase"] == "post")]
    if part.empty or part["kl_direction"].nunique() < 2:
        return pd.DataFrame(columns=["dataset", "lambda", "gamma", "paper", "code", "seeds"])
    sides = {d: {"kl_direction": d, "phase": "post"} for d in ("paper", "code")}
    rows = []
    for (lam, gam), point in part.groupby(["lambda", "gamma"]):
        wide = pair(point.drop(columns=["lambda", "gamma"]), sides, drop_unpaired=True)
        rows += [{"dataset": d, "lambda": lam, "gamma": gam, "paper": w["paper"].mean(), "code": w["code"].mean(),
                  "seeds": len(w)} for d, w in wide.groupby("dataset")]
    return pd.DataFrame(rows, columns=["dataset", "lambda", "gamma", "paper", "code", "seeds"])


# ---------------------------------------------------------------------------------------------
# Comparisons built on `pair`: the ablation, the black-box table, the worst case.

ABLATION = ("gan-both", "gan-com", "gan-con")


def ablation_points(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, protocol) with the ablation: clean and post-attack ACC under each attack
    objective, on the seeds attacked by all three (paired); one row per seed."""
    parts = []
    ablated = tidy[tidy["attack"].isin(ABLATION)]
    for _, part in ablated.groupby(["dataset", "model", "protocol"]):
        if part["attack"].nunique() < len(ABLATION):
            continue
        sides = {"clean": {"attack": "gan-both", "phase": "pre"}}
        sides.update({a: {"attack": a, "phase": "post"} for a in ABLATION})
        parts.append(pair(part, sides, drop_unpaired=True))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=[*PAIR_KEYS, "clean", *ABLATION])


def attack_comparison(tidy: pd.DataFrame, attacks, protocol: str) -> pd.DataFrame:
    """Per (dataset, model, seed) under one protocol: clean ACC and post-attack ACC under each of `attacks`
    (e.g. the paper's attack, the black-box attack and its white-box twin), only where every one of them
    ran on the same seed and samples. `out.attrs["unpaired"]` lists the runs left out."""
    part = tidy[tidy["attack"].isin(attacks) & (tidy["protocol"] == protocol)]
    sides = {"clean": {"attack": attacks[0], "phase": "pre"}}
    sides.update({a: {"attack": a, "phase": "post"} for a in attacks})
    out, unpaired = [], []
    for _, group in part.groupby(["dataset", "model"]):
        if set(group["attack"]) <= {attacks[0]}:
            continue  # the reference attack alone: the model is not in this comparison
        if set(group["attack"]) != set(attacks):
            unpaired.append(f"{group['dataset'].iloc[0]}/{group['model'].iloc[0]}: only "
                            + ", ".join(sorted(set(group["attack"]))))
            continue
        wide = pair(group, sides, drop_unpaired=True)
        unpaired += wide.attrs["unpaired"]
        out.append(wide)
    result = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=[*PAIR_KEYS, *sides])
    result.attrs["unpaired"] = unpaired
    return result


def comparisons(tidy: pd.DataFrame, attacks) -> list[dict]:
    """`attack_comparison` under every protocol the table holds, in the tables' order: per protocol its
    `runs` (sorted, one row per paired seed), their `means` per (dataset, model) with the number of paired
    seeds, and the runs left `unpaired`. A protocol with nothing to pair and nothing left out is skipped."""
    out = []
    for protocol in in_order(tidy["protocol"].unique(), PROTOCOL_ORDER):
        runs = attack_comparison(tidy, attacks, protocol)
        if runs.empty and not runs.attrs["unpaired"]:
            continue
        cols = ["clean", *attacks]
        grouped = runs.groupby(["dataset", "model"], sort=False)
        means = (grouped[cols].mean().assign(seeds=grouped["seed"].nunique()) if len(runs)
                 else pd.DataFrame(columns=[*cols, "seeds"]))
        out.append({"protocol": protocol, "runs": sort_runs(runs).drop(columns="sample_set"), "means": means,
                    "unpaired": runs.attrs["unpaired"]})
    return out


def worst_attack(tidy: pd.DataFrame, transfer: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (dataset, model, seed, protocol): the lowest post-attack ACC over every attack run on it at the main
    budget (budget sweep points `-eps...` left out), and which attack it was. Transferred generators count
    when their rows pair with the model's own runs (same seed, sample set and protocol); the best of them
    is the lowest. Columns: keys, clean (the paper's attack's pre), worst_acc, worst_attack, attacks (how many
    were compared), gan-both (the paper's attack, for reference)."""
    frame = with_sample_set(tidy)
    frame = frame[(frame["attack"] != "none") & ~frame["attack"].map(variants.is_budget_point)]
    if transfer is not None and len(transfer):
        moved = with_sample_set(transfer)
        frame = pd.concat([frame, moved[moved["model"] != moved["attack"].str.removeprefix(TRANSFER_PREFIX)]],
                          ignore_index=True)
    keys = list(PAIR_KEYS)
    rows = []
    for unit, part in frame.groupby(keys):
        main = part[part["attack"] == "gan-both"]
        if main.empty:
            continue  # a unit is a run of the paper's attack; a transfer table alone defines none
        # an attack run at another budget than the paper's attack is not the same threat
        part = part[part["eps"].isna() | np.isclose(part["eps"], main["eps"].iloc[0]) | main["eps"].isna().iloc[0]]
        attacks = sorted(part["attack"].unique())
        wide = pair(part, {a: {"attack": a, "phase": "post"} for a in attacks})
        clean = float(part[(part["attack"] == "gan-both") & (part["phase"] == "pre")]["acc"].iloc[0])
        post = wide[attacks].iloc[0]
        rows.append({**dict(zip(keys, unit)), "clean": clean, "worst_acc": float(post.min()),
                     "worst_attack": str(post.idxmin()), "attacks": len(attacks), "gan-both": float(post["gan-both"])})
    return pd.DataFrame(rows, columns=[*keys, "clean", "worst_acc", "worst_attack", "attacks", "gan-both"])


N_CLUSTERS = {"noisymnist": 10, "noisyfashion": 10, "patchedmnist": 3, "regdb": 206, "demo": 10, "demo3": 10}
PAPER_SAMPLES = {"noisymnist": 70_000, "noisyfashion": 70_000, "patchedmnist": 21_770}  # what the paper's runs used


# ---------------------------------------------------------------------------------------------
# The other files the notebooks show, found by their paths (`rules/common.smk: attack_run`).

def detection_table(results: str | Path, protocol: str) -> pd.DataFrame:
    """AUC of each detector against each attack (`{results}/detection/{dataset}/{model}/{variant}/{protocol}/
    seed{seed}.json`) under one protocol: one row per (dataset, model, attack), a column per detector, in the
    tables' order; the attack is the run's variant folder."""
    rows = []
    for f in sorted(Path(results).glob(f"detection/*/*/*/{protocol}/seed*.json")):
        rec = read_json(f)
        rows += [{"dataset": rec["dataset"], "model": rec["model"], "attack": f.parts[-3], "detector": k, "auc": v}
                 for k, v in rec["auc"].items()]
    if not rows:
        return pd.DataFrame(columns=["dataset", "model", "attack"])
    table = pd.DataFrame(rows).pivot_table(index=["dataset", "model", "attack"], columns="detector", values="auc")
    table.columns.name = None
    return sort_runs(table.reset_index())


def transfer_clean(transfer: pd.DataFrame) -> pd.DataFrame:
    """Clean ACC of each transfer target per (dataset, protocol), mean over its seeds: the reference every
    cell of the transfer grid loses from."""
    pre = transfer[transfer["phase"] == "pre"]
    return pre.groupby(["dataset", "protocol", "model"])["acc"].mean().unstack()


def example_figures(results: str | Path, protocol: str, variant: str = "gan-both") -> dict[tuple[str, str], Path]:
    """The adversarial-example figure of each (dataset, model) under `variant` and `protocol`, of its lowest
    seed (`{results}/attacks/{dataset}/{model}/{variant}/{protocol}/seed{seed}.png`), in the tables' order."""
    first: dict[tuple[str, str], tuple[int, Path]] = {}
    for f in Path(results).glob(f"attacks/*/*/{variant}/{protocol}/seed*.png"):
        key, seed = (f.parts[-5], f.parts[-4]), int(f.stem.removeprefix("seed"))
        if key not in first or seed < first[key][0]:
            first[key] = (seed, f)
    order = sort_runs(pd.DataFrame(list(first), columns=["dataset", "model"]))
    return {(d, m): first[(d, m)][1] for d, m in order.itertuples(index=False)}


def tsne_runs(tidy: pd.DataFrame, results: str | Path, models, protocol: str) -> list[dict]:
    """Per dataset and each of `models` attacked by the paper's attack: its first seed, the checkpoint and
    the generator of that run under `protocol`, and whether both files are there (`missing` otherwise)."""
    runs = []
    attacked = tidy[tidy["attack"] == "gan-both"]
    for dataset in in_order(attacked["dataset"].unique(), DATASET_ORDER):
        for model in models:
            seeds = sorted(attacked[(attacked["dataset"] == dataset) & (attacked["model"] == model)]["seed"].unique())
            if not seeds:
                continue
            seed = int(seeds[0])
            checkpoint = Path(results) / "models" / dataset / model / f"seed{seed}.pt"
            generator = Path(results) / "attacks" / dataset / model / "gan-both" / protocol / f"seed{seed}.pt"
            runs.append({"dataset": dataset, "model": model, "seed": seed, "checkpoint": checkpoint,
                         "generator": generator, "missing": not (checkpoint.is_file() and generator.is_file())})
    return runs


def training_radius(cfg: dict) -> float | None:
    """The PGD radius the defenses were adversarially trained at (`models.<ardmvc-am|ardmvc>.pgd_eps`, the
    mitigator's first), for the budget curve's mark; None when neither sets one."""
    models = cfg.get("models") or {}
    return next(((models.get(m) or {})["pgd_eps"] for m in ("ardmvc-am", "ardmvc")
                 if (models.get(m) or {}).get("pgd_eps") is not None), None)