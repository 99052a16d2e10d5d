"""From per-run metric files to the tidy table and the paper-versus-ours Table 1.

Every run writes `{results}/metrics/{dataset}/{model}/{variant}/seed{seed}.json`; `variant` is `clean`
(the training stage's evaluation) or an attack (`gan-both`, `gan-com`, `gan-con`, `pgd`, or a budget
sweep point such as `gan-both-eps0.1`). Attack files hold the scores of the same samples before
(`pre`) and after (`post`) the attack.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from robustmvc.files import read_json

METRICS = ("acc", "nmi", "ari")
COLUMNS = ["dataset", "model", "seed", "attack", "protocol", "eps", "phase", *METRICS]
MODEL_ORDER = ["eamc", "simvc", "comvc", "multivae", "aecoddc", "infoddc", "sem", "ardmvc", "ardmvc-am", "alrdc"]
DATASET_ORDER = ["regdb", "noisyfashion", "noisymnist", "patchedmnist", "demo", "demo3"]


def collect(results: str | Path) -> pd.DataFrame:
    """One row per (run, phase) over every metrics file under `results/metrics`."""
    rows = []
    for f in sorted(Path(results).glob("metrics/*/*/*/seed*.json")):
        dataset, model, variant = f.parts[-4], f.parts[-3], f.parts[-2]
        rec = read_json(f)
        seed = int(f.stem.removeprefix("seed"))
        if variant == "clean":
            rows.append([dataset, model, seed, "none", "paper", 0.0, "pre", *(rec["clean"][m] for m in METRICS)])
            continue
        settings = rec.get("settings", {})
        for phase, key in (("pre", "clean"), ("post", "attacked")):
            rows.append([dataset, model, seed, variant, rec.get("protocol", settings.get("protocol", "paper")),
                         float(settings.get("eps", np.nan)), phase, *(rec[key][m] for m in METRICS)])
    return pd.DataFrame(rows, columns=COLUMNS)


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


def _order(values, order):
    return sorted(values, key=lambda v: (order.index(v) if v in order else len(order), v))


def table1(summary: pd.DataFrame, paper: pd.DataFrame, attack: str = "gan-both") -> pd.DataFrame:
    """Ours (mean, std, seeds) beside the paper, per (model, dataset, phase, metric), for one attack."""
    ours = summary[(summary["attack"] == attack) & (summary["protocol"] == "paper")]
    rows = []
    for _, r in ours.iterrows():
        match = paper[(paper["dataset"] == r["dataset"]) & (paper["model"] == r["model"]) & (paper["phase"] == r["phase"])]
        for m in METRICS:
            ref = float(match[m].iloc[0]) if len(match) else np.nan
            note = (str(match[f"{m}_note"].iloc[0]) if len(match) and f"{m}_note" in match else
                    "" if len(match) else NOT_REPORTED)
            rows.append({"model": r["model"], "dataset": r["dataset"], "phase": r["phase"], "metric": m,
                         "mean": r[f"{m}_mean"], "std": r[f"{m}_std"], "seeds": int(r["seeds"]),
                         "paper": ref, "diff": r[f"{m}_mean"] - ref, "paper_note": note})
    return pd.DataFrame(rows, columns=["model", "dataset", "phase", "metric", "mean", "std", "seeds", "paper", "diff",
                                       "paper_note"])


# Table 1 shading: a diverging, colour-blind-safe scale (PuOr) signed by ours - paper; cut points on |diff|
SHADES = {"worse": ["#fee0b6", "#fdb863", "#e08214"], "better": ["#d8daeb", "#b2abd2", "#8073ac"]}
SHADE_CUTS = (0.15, 0.30)  # above the tolerance: up to 0.15, up to 0.30, beyond


def shade(diff: float, tolerance: float) -> str:
    """CSS class of a Table 1 cell: `near` within the tolerance, else `better1..3` / `worse1..3` by how
    far our value lies above / below the paper's."""
    if np.isnan(diff) or abs(diff) <= tolerance:
        return "near"
    level = 1 + sum(abs(diff) > c for c in SHADE_CUTS)
    return f"{'better' if diff > 0 else 'worse'}{level}"


def _shade_legend(tolerance: float) -> str:
    bounds = [f"{tolerance:.2f}&ndash;{SHADE_CUTS[0]:.2f}", f"{SHADE_CUTS[0]:.2f}&ndash;{SHADE_CUTS[1]:.2f}",
              f"&gt; {SHADE_CUTS[1]:.2f}"]
    worse = [f"<span class='sw worse{i}'>lower by {b}</span>" for i, b in reversed(list(enumerate(bounds, 1)))]
    better = [f"<span class='sw better{i}'>higher by {b}</span>" for i, b in enumerate(bounds, 1)]
    return ("<p class='legend'>" + "".join(worse) + f"<span class='sw near'>within &plusmn;{tolerance:.2f}</span>"
            + "".join(better) + "</p>")


def table1_html(t1: pd.DataFrame, tolerance: float, scale: str) -> str:
    """Models as rows, datasets x metrics as columns, pre and post rows per model; each cell shows
    ours (mean +- std over seeds), the paper's value and the difference, shaded on a diverging scale
    by how far ours lies above (purple) or below (orange) the paper's; a missing paper value says
    whether it is not reported (n/r) or illegible in the source (ill.)."""
    if t1.empty:
        return "<p>No attack results to tabulate yet.</p>"
    datasets = _order(t1["dataset"].unique(), DATASET_ORDER)
    models = _order(t1["model"].unique(), MODEL_ORDER)
    head = "<tr><th rowspan='2'>model</th><th rowspan='2'></th>" + "".join(
        f"<th colspan='3'>{html.escape(d)}</th>" for d in datasets) + "</tr><tr>" + "".join(
        f"<th>{m.upper()}</th>" for _ in datasets for m in METRICS) + "</tr>"
    cell = {(r.model, r.dataset, r.phase, r.metric): r for r in t1.itertuples()}
    marks = {NOT_REPORTED: "<abbr title='not reported in the paper'>n/r</abbr>",
             ILLEGIBLE: "<abbr title='illegible in the source of the paper'>ill.</abbr>"}
    body = []
    for model in models:
        for phase in ("pre", "post"):
            tds = []
            for d in datasets:
                for m in METRICS:
                    r = cell.get((model, d, phase, m))
                    if r is None:
                        tds.append("<td class='empty'>&ndash;</td>")
                        continue
                    ours = f"{r.mean:.2f}" + (f"&plusmn;{r.std:.2f}" if r.seeds > 1 else "")
                    if np.isnan(r.paper):
                        note = getattr(r, "paper_note", "") or NOT_REPORTED
                        tds.append(f"<td class='nopaper'>{ours}<br><span class='paper'>paper {marks[note]}</span></td>")
                    else:
                        tds.append(f"<td class='{shade(r.diff, tolerance)}'>{ours}<br><span class='paper'>"
                                   f"paper {r.paper:.2f} ({round(r.diff, 2) + 0.0:+.2f})</span></td>")
            label = f"<th rowspan='2'>{html.escape(model)}</th>" if phase == "pre" else ""
            body.append(f"<tr>{label}<td>{phase}</td>{''.join(tds)}</tr>")
    legend = (f"<p class='legend'>Scale: <b>{html.escape(scale)}</b>. Each cell: ours as mean &plusmn; std over "
              f"seeds (std shown when there are several), the paper's value and our difference (ours &minus; paper). "
              f"Shading says where ours lies: higher than the paper's (purple: clusters better; after the attack, "
              f"the attack hurt less than in the paper) or lower (orange). Paper n/r = not reported, ill. = "
              f"illegible in the paper's source; &ndash; = not run here.</p>")
    shades = "".join(f".t1 .{k}{i + 1}{{background:{c}}}" for k, cs in SHADES.items() for i, c in enumerate(cs))
    style = ("<style>.t1{border-collapse:collapse;font-size:.85rem}.t1 td,.t1 th{border:1px solid #ccc;"
             f"padding:.2rem .4rem;text-align:center}}{shades}.t1 .worse3,.t1 .better3{{color:#fff}}"
             ".t1 .worse3 .paper,.t1 .better3 .paper{color:#f4f4f4}.t1 .near{background:#f7f7f7}"
             ".t1 .paper{color:#444;font-size:.75rem}.t1 .empty{color:#888}.t1 .nopaper{background:#fff}"
             ".legend .sw{display:inline-block;padding:.1rem .45rem;margin:.1rem .15rem;font-size:.75rem;"
             "border:1px solid #ccc}"
             + "".join(f".legend .{k}{i + 1}{{background:{c}}}" for k, cs in SHADES.items() for i, c in enumerate(cs))
             + ".legend .worse3,.legend .better3{color:#fff}.legend .near{background:#f7f7f7}</style>")
    return f"{style}{legend}{_shade_legend(tolerance)}<table class='t1' id='table1'>{head}{''.join(body)}</table>"


N_CLUSTERS = {"noisymnist": 10, "noisyfashion": 10, "patchedmnist": 3, "regdb": 206, "demo": 10, "demo3": 10}
BASELINES = ("eamc", "simvc", "comvc", "multivae", "aecoddc", "infoddc", "sem")


def _acc(summary, dataset, model, attack, phase):
    row = summary[(summary["dataset"] == dataset) & (summary["model"] == model) & (summary["attack"] == attack)
                  & (summary["phase"] == phase) & (summary["protocol"] == "paper")]
    return float(row["acc_mean"].iloc[0]) if len(row) else np.nan


def claims(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's four claims, checked per dataset against our numbers (mean ACC over seeds).

    1. every baseline loses at least half of its clean-minus-chance accuracy under the attack;
    2. AR-DMVC-AM keeps at least 90% of its clean accuracy;
    3. AR-DMVC-AM beats AR-DMVC after the attack;
    4. attacking both terms lowers ACC more than attacking either alone (per model with the ablation).
    """
    rows = []
    for dataset in _order(summary["dataset"].unique(), DATASET_ORDER):
        chance = 1 / N_CLUSTERS.get(dataset, 10)
        fell, total = [], 0
        for model in BASELINES:
            pre, post = _acc(summary, dataset, model, "gan-both", "pre"), _acc(summary, dataset, model, "gan-both", "post")
            if np.isnan(pre):
                continue
            total += 1
            if post <= pre - 0.5 * (pre - chance):
                fell.append(model)
        if total:
            rows.append([dataset, "every baseline loses most of its accuracy", len(fell) == total,
                         f"{len(fell)}/{total} baselines lose >= half of clean-minus-chance ACC"])
        pre, post = _acc(summary, dataset, "ardmvc-am", "gan-both", "pre"), _acc(summary, dataset, "ardmvc-am", "gan-both", "post")
        if not np.isnan(pre):
            rows.append([dataset, "AR-DMVC-AM keeps nearly all its clean accuracy", post >= 0.9 * pre,
                         f"ACC {pre:.3f} -> {post:.3f}"])
        plain = _acc(summary, dataset, "ardmvc", "gan-both", "post")
        if not np.isnan(post) and not np.isnan(plain):
            rows.append([dataset, "the mitigator beats plain AR-DMVC after the attack", post > plain,
                         f"post-attack ACC {post:.3f} (AM) vs {plain:.3f} (AR-DMVC)"])
        for model in _order(summary[summary["dataset"] == dataset]["model"].unique(), MODEL_ORDER):
            both, com, con = (_acc(summary, dataset, model, f"gan-{o}", "post") for o in ("both", "com", "con"))
            if not any(np.isnan([both, com, con])):
                rows.append([dataset, f"attacking both terms beats either alone ({model})", both < min(com, con),
                             f"post-attack ACC both {both:.3f}, com {com:.3f}, con {con:.3f}"])
    return pd.DataFrame(rows, columns=["dataset", "claim", "holds", "evidence"])
