"""The paper's claims as verdicts: holds, fails, inconclusive or not informative.

A mean over two seeds with a std of 0.3 cannot say "the mitigator beats AR-DMVC"; so each claim is a
statistic computed per seed from paired runs (`tables.pair`: same dataset, seed, sample set and
protocol), and the verdict comes from an interval over seeds, by the rule in `RULE` (printed on the
evaluation page and in the scorecard). Everything here is a pure function of the tidy table.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from robustmvc import registry
from robustmvc.config import resolve
from robustmvc.tables import DATASET_ORDER, MODEL_ORDER, N_CLUSTERS, PROTOCOL_ORDER, in_order, pair

VERDICTS = ("holds", "fails", "inconclusive", "not informative")
LEVEL = 0.95          # the bootstrap interval's coverage
N_BOOT = 10_000       # bootstrap resamples (fixed seed: the same table gives the same verdicts)
MIN_SEEDS = 3         # fewer paired seeds than this: inconclusive whatever the values
FLOOR_MARGIN = 0.05   # "at the chance floor": mean ACC <= 1/K + this
HURT = 0.05           # the undefended model "is hurt" when its mean paired ACC drop is at least this
KEEP = 0.9            # "keeps nearly all of its clean accuracy": post >= 0.9 pre
MOST = 0.5            # "loses most of its accuracy": more than half of its clean-minus-chance ACC

RULE = (f"Each claim is a statistic computed per seed from paired runs (same dataset, seed, samples and "
        f"protocol) that is positive when the claim holds. Its verdict comes from the {LEVEL:.0%} percentile "
        f"bootstrap interval ({N_BOOT:,} resamples) of its mean over seeds: <b>holds</b> when the interval lies "
        f"above 0, <b>fails</b> when it lies below 0, <b>inconclusive</b> when it contains 0 or fewer than "
        f"{MIN_SEEDS} seeds pair (with 3 seeds, holds or fails needs all three on one side). A claim is "
        f"<b>not informative</b> when the numbers cannot speak to it: a claim about surviving the attack when "
        f"the attack does not hurt the undefended CoMVC (mean paired ACC drop below {HURT}), or a comparison "
        f"where every variant sits at the chance floor (mean ACC at most 1/K + {FLOOR_MARGIN}).")

CLAIMS = {
    "baselines-fall": "every baseline loses most of its accuracy under the attack",
    "am-keeps": "AR-DMVC-AM keeps nearly all of its clean accuracy",
    "am-beats-ardmvc": "the mitigator beats plain AR-DMVC after the attack",
    "both-beats-either": "attacking both terms beats attacking either alone",
}
STATISTICS = {
    "baselines-fall": f"per baseline: (pre - post) - {MOST} (pre - 1/K), the weakest baseline shown",
    "am-keeps": f"post - {KEEP} pre (AR-DMVC-AM)",
    "am-beats-ardmvc": "post(AR-DMVC-AM) - post(AR-DMVC)",
    "both-beats-either": "min(post com, post con) - post both",
}
COLUMNS = ["claim", "text", "dataset", "protocol", "model", "verdict", "mean", "low", "high", "seeds", "values",
           "statistic", "note"]


def bootstrap_interval(values, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampling seeds with replacement)."""
    v = np.asarray(values, dtype=float)
    means = v[np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def decide(values, min_seeds: int = MIN_SEEDS) -> dict:
    """The verdict on per-seed values of a statistic that is positive when the claim holds."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        raise ValueError("no paired seeds to decide on; run the compared models and attacks on common seeds")
    low, high = bootstrap_interval(v) if len(v) > 1 else (np.nan, np.nan)
    if len(v) < min_seeds:
        verdict = "inconclusive"
    elif low > 0:
        verdict = "holds"
    elif high < 0:
        verdict = "fails"
    else:
        verdict = "inconclusive"
    return {"verdict": verdict, "mean": float(v.mean()), "low": low, "high": high, "seeds": len(v),
            "values": [float(x) for x in v]}


def at_floor(mean_accs, n_clusters: int, margin: float = FLOOR_MARGIN) -> bool:
    """Whether every given mean ACC sits at the chance floor 1/K + margin."""
    return bool(np.all(np.asarray(mean_accs, dtype=float) <= 1 / n_clusters + margin))


def not_informative(note: str) -> dict:
    return {"verdict": "not informative", "mean": np.nan, "low": np.nan, "high": np.nan, "seeds": 0,
            "values": [], "note": note}


def unpaired(note: str) -> dict:
    """Runs exist but no seed pairs them: nothing can be decided."""
    return {**not_informative(note), "verdict": "inconclusive"}


def _pre_post(part: pd.DataFrame, model: str, attack: str = "gan-both") -> pd.DataFrame:
    rows = part[(part["model"] == model) & (part["attack"] == attack)]
    return pair(rows, {"pre": {"phase": "pre"}, "post": {"phase": "post"}})


def _undefended_hurt(part: pd.DataFrame) -> tuple[bool | None, str]:
    """Whether the paper's attack hurts the undefended CoMVC here (None when CoMVC was not attacked)."""
    comvc = _pre_post(part, "comvc")
    if comvc.empty:
        return None, "no undefended CoMVC run to tell whether the attack hurts"
    drop = float((comvc["pre"] - comvc["post"]).mean())
    return drop >= HURT, f"CoMVC loses {drop:.3f} ACC to the attack ({len(comvc)} seeds)"


def _left_out(frame: pd.DataFrame) -> str:
    left = frame.attrs.get("unpaired", [])
    return f"; left out (unpaired): {'; '.join(left)}" if left else ""


def baselines_fall(part: pd.DataFrame, k: int) -> dict:
    """Every baseline attacked here loses more than half of its clean-minus-chance ACC. Per baseline a
    verdict; the claim fails if one fails, holds if every informative one holds; the baseline shown is
    the one that decides (a failing one, else the least certain)."""
    per = {}
    for model in registry.names(family="baseline"):
        pp = _pre_post(part, model)
        if pp.empty:
            continue
        if at_floor([pp["pre"].mean()], k):
            per[model] = not_informative("clean ACC at the chance floor")
            continue
        per[model] = decide((pp["pre"] - pp["post"]) - MOST * (pp["pre"] - 1 / k))
    if not per:
        return {}
    informative = {m: r for m, r in per.items() if r["verdict"] != "not informative"}
    if not informative:
        return not_informative("every baseline's clean ACC is at the chance floor")
    failing = {m: r for m, r in informative.items() if r["verdict"] == "fails"}
    pool = failing or informative
    model = min(pool, key=lambda m: (np.nan_to_num(pool[m]["low"], nan=-np.inf), pool[m]["mean"]))
    verdicts = {r["verdict"] for r in informative.values()}
    verdict = "fails" if failing else ("holds" if verdicts == {"holds"} else "inconclusive")
    note = "; ".join(f"{m} {r['verdict']}" + ("" if np.isnan(r["mean"]) else f" ({r['mean']:+.3f})")
                     for m, r in per.items())
    return {**informative[model], "verdict": verdict, "model": model, "note": note}


def am_keeps(part: pd.DataFrame, k: int) -> dict:
    pp = _pre_post(part, "ardmvc-am")
    if pp.empty:
        return {}
    hurt, why = _undefended_hurt(part)
    if hurt is False:
        return not_informative(f"the attack does not hurt the undefended model: {why}")
    if at_floor([pp["pre"].mean()], k):
        return not_informative("AR-DMVC-AM's clean ACC is at the chance floor")
    return {**decide(pp["post"] - KEEP * pp["pre"]), "note": why}


def am_beats_ardmvc(part: pd.DataFrame, k: int) -> dict:
    rows = part[(part["attack"] == "gan-both") & (part["phase"] == "post")]
    if not {"ardmvc", "ardmvc-am"} <= set(rows["model"]):
        return {}
    both = pair(rows, {"am": {"model": "ardmvc-am"}, "ar": {"model": "ardmvc"}}, drop_unpaired=True)
    hurt, why = _undefended_hurt(part)
    if hurt is False:
        return not_informative(f"the attack does not hurt the undefended model: {why}")
    if both.empty:
        return unpaired("no seed pairs the two defenses" + _left_out(both))
    if at_floor([both["am"].mean(), both["ar"].mean()], k):
        return not_informative("both defenses sit at the chance floor after the attack")
    return {**decide(both["am"] - both["ar"]), "note": why + _left_out(both)}


def both_beats_either(part: pd.DataFrame, model: str, k: int) -> dict:
    rows = part[part["model"] == model]
    sides = {"clean": {"attack": "gan-both", "phase": "pre"}}
    sides.update({a: {"attack": f"gan-{a}", "phase": "post"} for a in ("both", "com", "con")})
    abl = pair(rows, sides, drop_unpaired=True)
    if abl.empty:
        return unpaired("no seed ran all three objectives" + _left_out(abl))
    means = [abl[a].mean() for a in ("both", "com", "con")]
    if at_floor(means, k):
        return not_informative("every objective leaves the model at the chance floor" + _left_out(abl))
    if (abl["clean"].mean() - min(means)) < HURT:
        return not_informative("none of the three objectives hurts the model" + _left_out(abl))
    return {**decide(np.minimum(abl["com"], abl["con"]) - abl["both"]), "note": _left_out(abl).lstrip("; ")}


def check(tidy: pd.DataFrame) -> pd.DataFrame:
    """Every claim that the runs can speak to, per dataset and protocol: one row each (the ablation claim
    once per model with the ablation), with its verdict, mean and interval of the statistic, and every
    paired seed's value."""
    rows = []
    for dataset in in_order(tidy["dataset"].unique(), DATASET_ORDER):
        k = N_CLUSTERS.get(dataset, 10)
        for protocol in in_order(tidy["protocol"].unique(), PROTOCOL_ORDER):
            part = tidy[(tidy["dataset"] == dataset) & (tidy["protocol"] == protocol) & (tidy["attack"] != "none")]
            if part.empty:
                continue
            found = [("baselines-fall", None, baselines_fall(part, k)), ("am-keeps", "ardmvc-am", am_keeps(part, k)),
                     ("am-beats-ardmvc", "ardmvc-am", am_beats_ardmvc(part, k))]
            ablated = part[part["attack"].isin(["gan-com", "gan-con"])]["model"].unique()
            found += [("both-beats-either", m, both_beats_either(part, m, k)) for m in in_order(ablated, MODEL_ORDER)]
            for claim, model, result in found:
                if not result:
                    continue
                rows.append({"claim": claim, "text": CLAIMS[claim], "dataset": dataset, "protocol": protocol,
                             "model": result.get("model", model), "statistic": STATISTICS[claim],
                             "note": result.get("note", ""),
                             **{c: result[c] for c in ("verdict", "mean", "low", "high", "seeds", "values")}})
    return pd.DataFrame(rows, columns=COLUMNS)


def numbers(r) -> str:
    """A verdict's numbers in one line: mean [interval] over n seeds, and every seed's value."""
    if r["seeds"] == 0:
        return ""
    interval = "" if np.isnan(r["low"]) else f" [{r['low']:+.3f}, {r['high']:+.3f}]"
    return (f"{r['mean']:+.3f}{interval}, {r['seeds']} seed{'s' if r['seeds'] != 1 else ''}: "
            + " ".join(f"{v:+.3f}" for v in r["values"]))


def claims_html(verdicts: pd.DataFrame) -> str:
    """The claims table of the evaluation page (anchor `claims`, which the scorecard links to), the rule
    above it."""
    if verdicts.empty:
        return "<p>No claims can be checked: no attack results.</p>"
    colour = {"holds": "#e3f4e1", "fails": "#fde2e1", "inconclusive": "#fff4d6", "not informative": "#eee"}
    body = "".join(
        f"<tr><td>{html.escape(r['text'] + (' (' + r['model'] + ')' if r['claim'] == 'both-beats-either' else ''))}</td>"
        f"<td>{html.escape(r['dataset'])}</td><td>{html.escape(r['protocol'])}</td>"
        f"<td style='background:{colour[r['verdict']]}'><b>{r['verdict']}</b></td>"
        f"<td>{html.escape(r['statistic'])}</td><td>{numbers(r)}</td><td>{html.escape(r['note'])}</td></tr>"
        for _, r in verdicts.iterrows())
    return (f"<p class='rule'>{RULE}</p><table id='claims'><tr><th>claim</th><th>dataset</th><th>protocol</th>"
            f"<th>verdict</th><th>statistic (per seed)</th><th>mean [95% interval], seeds: values</th>"
            f"<th>note</th></tr>{body}</table>")


# ---------------------------------------------------------------------------------------------
# The scorecard: what the index page of a scale shows first (report.scorecard_section reads it).

EVIDENCE = "06_evaluate/evaluate.html#claims"   # relative to the scale's index page


def left_out(cfg: dict) -> dict[str, str]:
    """Datasets of the config that the run leaves out, and why."""
    out = {}
    for name, entry in (cfg.get("datasets") or {}).items():
        if entry is None:
            out[name] = "set to null in the config"
        elif name == "regdb" and not entry.get("dir"):
            out[name] = "no folder given (datasets.regdb.dir; the data is given on request by its authors)"
    return out


def machines(provenance: pd.DataFrame) -> list[dict]:
    """The machines the runs were made on (`tables.run_provenance`): one entry per machine, torch version,
    precision and thread count, with its number of runs and commits; when there is more than one, each
    also lists its runs, so a report mixing machines says which run came from which."""
    out = []
    keys = ["machine", "torch", "precision", "threads"]
    known = provenance.dropna(subset=["machine"])
    for values, group in known.groupby(keys, sort=True):
        out.append({**dict(zip(keys, values)), "threads": int(values[3]), "runs": int(len(group)),
                    "commits": sorted(set(group["commit"].dropna()) | ({"uncommitted changes"} if group["dirty"].any()
                                                                      else set()))})
    if len(provenance) > len(known):
        out.append({"machine": "not recorded", "runs": int(len(provenance) - len(known))})
    if len(out) > 1:
        for entry, (_, group) in zip(out, known.groupby(keys, sort=True)):
            entry["which"] = sorted(group["run"])
        if out[-1]["machine"] == "not recorded":
            out[-1]["which"] = sorted(provenance.loc[provenance["machine"].isna(), "run"])
    return out


def scale_summary(cfg: dict, tidy: pd.DataFrame, provenance: pd.DataFrame) -> dict:
    """The scale in plain values: samples, encoder width, epochs, seeds per model, eps, device, and the
    machines the runs were made on (`machines`)."""
    datasets = [d for d, e in (cfg.get("datasets") or {}).items() if e is not None and d not in left_out(cfg)]
    runs = tidy[tidy["attack"] == "gan-both"].groupby("model")["seed"].nunique()
    epochs = {m: resolve(cfg, m, datasets[0] if datasets else None)[1]["epochs"] for m in ("comvc", "ardmvc-am")}
    return {"scale": (cfg.get("evaluation") or {}).get("scale", "full"),
            "samples": {d: cfg["datasets"][d].get("max_samples") or "all" for d in datasets},
            "encoder_width": (cfg.get("architecture") or {}).get("encoder_width"),
            "epochs": {"baselines": epochs["comvc"], "defenses": epochs["ardmvc-am"],
                       "attack": (cfg.get("attack") or {}).get("epochs")},
            "seeds": {m: int(n) for m, n in runs.items()},
            "eps": {d: cfg["datasets"][d].get("eps") for d in datasets},
            "device": sorted({str(d) for d in provenance["device"].dropna()}) or [str(cfg.get("device", "auto"))],
            "machines": machines(provenance)}


def scorecard(verdicts: pd.DataFrame, scale: dict, omitted: dict[str, str]) -> dict:
    """What `report.scorecard_section` renders: the rule, every verdict with its numbers, the scale and
    what was left out. Plain JSON values only."""
    claims = [{"claim": r["claim"], "text": r["text"], "dataset": r["dataset"], "protocol": r["protocol"],
               "model": r["model"], "verdict": r["verdict"], "numbers": numbers(r), "note": r["note"]}
              for _, r in verdicts.iterrows()]
    return {"rule": RULE, "evidence": EVIDENCE, "claims": claims, "scale": scale, "left_out": omitted}
