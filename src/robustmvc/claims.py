"""The paper's claims as verdicts: holds, fails, inconclusive or not informative.

A mean over two seeds with a std of 0.3 cannot say "the mitigator beats AR-DMVC"; so each claim is a
statistic computed per seed from paired runs (`tables.pair`: same dataset, seed, sample set and
protocol), and the verdict comes from an interval over seeds, by the rule in `RULE` (printed on the
evaluation page and in the scorecard). Everything here is a pure function of the tidy table.
"""
from __future__ import annotations

import html
from statistics import NormalDist

import numpy as np
import pandas as pd

from robustmvc import registry
from robustmvc.config import resolve
from robustmvc.lineage import changes_text
from robustmvc.tables import (CHANCE_MARGIN, DATASET_ORDER, MODEL_ORDER, N_CLUSTERS, PAPER_SAMPLES, PROTOCOL_ORDER,
                              in_order, pair)

VERDICTS = ("holds", "fails", "inconclusive", "not informative")
LEVEL = 0.95          # the bootstrap interval's coverage
N_BOOT = 10_000       # bootstrap resamples (fixed seed: the same table gives the same verdicts)
MIN_SEEDS = 3         # fewer paired seeds than this: inconclusive whatever the values
FLOOR_MARGIN = CHANCE_MARGIN  # "at the chance floor": mean ACC <= 1/K + this
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


TOO_FEW, NOISE = "too few seeds", "seed noise"   # why a verdict is inconclusive


def rule_meaning(seeds: int, level: float = LEVEL) -> str:
    """What the rule asks of `seeds` paired seeds, in words. A percentile bootstrap of n values puts
    probability n^-n on the resample made of one seed alone; while that is at least the interval's tail,
    the interval reaches every seed's own value, so holds or fails needs every seed on one side of 0."""
    if seeds < MIN_SEEDS:
        return (f"With {seeds} seed{'s' if seeds != 1 else ''} no claim can hold or fail: the rule needs at least "
                f"{MIN_SEEDS} paired seeds, so every verdict on them is inconclusive (too few seeds).")
    if float(seeds) ** -seeds >= (1 - level) / 2:
        return (f"With {seeds} seeds, <b>holds</b> means all {seeds} seeds agree that the claim holds (each seed's "
                f"statistic above 0) and <b>fails</b> that all {seeds} agree it fails; one seed on the other side "
                f"makes the verdict inconclusive (seed noise).")
    return (f"With {seeds} seeds, <b>holds</b> means the mean over seeds stays above 0 in {level:.0%} of bootstrap "
            f"resamples: a seed on the other side can be outweighed when the rest lie far enough from 0.")


def seeds_needed(values, level: float = LEVEL) -> int | None:
    """The fewest paired seeds that could decide a claim whose seeds so far gave `values`: the rule's
    minimum when they all lie on one side of 0 (or there is one), else, if the mean and the spread stay as
    they are, the n at which the interval's half-width (normal approximation, z sd / sqrt(n)) falls below
    |mean|; None when the mean is 0 (no number of seeds decides it)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or (v > 0).all() or (v < 0).all():
        return max(MIN_SEEDS, len(v))
    mean, sd = abs(float(v.mean())), float(v.std(ddof=1))
    if mean == 0:
        return None
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return max(MIN_SEEDS, len(v) + 1, int(np.ceil((z * sd / mean) ** 2)))


def undecided(values) -> dict:
    """Why a verdict on per-seed `values` is inconclusive (`why`: too few seeds or seed noise) and the
    fewest seeds that could decide it (`seeds_needed`)."""
    return {"why": TOO_FEW if len(values) < MIN_SEEDS else NOISE, "seeds_needed": seeds_needed(values)}

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
           "statistic", "note", "why", "seeds_needed"]


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
            "values": [float(x) for x in v], **(undecided(v) if verdict == "inconclusive" else {})}


def at_floor(mean_accs, n_clusters: int, margin: float = FLOOR_MARGIN) -> bool:
    """Whether every given mean ACC sits at the chance floor 1/K + margin."""
    return bool(np.all(np.asarray(mean_accs, dtype=float) <= 1 / n_clusters + margin))


def not_informative(note: str) -> dict:
    return {"verdict": "not informative", "mean": np.nan, "low": np.nan, "high": np.nan, "seeds": 0,
            "values": [], "note": note}


def unpaired(note: str) -> dict:
    """Runs exist but no seed pairs them: nothing can be decided."""
    return {**not_informative(note), "verdict": "inconclusive", "why": TOO_FEW, "seeds_needed": MIN_SEEDS}


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
    note = "; ".join(f"{m} {r['verdict']}" + ("" if np.isnan(r["mean"]) else f" ({r['mean']:+.3f}, "
                                                f"{r['seeds']} seed{'s' if r['seeds'] != 1 else ''})")
                     for m, r in per.items())
    why = {}
    if verdict == "inconclusive":  # undecided while any baseline is: the claim needs each of them decided
        open_ = [r for r in informative.values() if r["verdict"] == "inconclusive"]
        few = [r for r in open_ if r["why"] == TOO_FEW]
        needed = [r["seeds_needed"] for r in open_]
        why = {"why": TOO_FEW if few else NOISE,
               "seeds_needed": None if None in needed else max(needed)}
        if few:
            note = (f"{len(few)} of {len(informative)} baselines ran fewer than {MIN_SEEDS} seeds, so this claim "
                    f"cannot be decided on them by construction; " + note)
    result = {**informative[model], "verdict": verdict, "model": model, "note": note}
    for key in ("why", "seeds_needed"):
        result.pop(key, None)
    return {**result, **why}


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
                             "note": result.get("note", ""), "why": result.get("why", ""),
                             "seeds_needed": result.get("seeds_needed"),
                             **{c: result[c] for c in ("verdict", "mean", "low", "high", "seeds", "values")}})
    return pd.DataFrame(rows, columns=COLUMNS)


def numbers(r) -> str:
    """A verdict's numbers in one line: mean [interval] over n seeds, and every seed's value."""
    if r["seeds"] == 0:
        return ""
    interval = "" if np.isnan(r["low"]) else f" [{r['low']:+.3f}, {r['high']:+.3f}]"
    return (f"{r['mean']:+.3f}{interval}, {r['seeds']} seed{'s' if r['seeds'] != 1 else ''}: "
            + " ".join(f"{v:+.3f}" for v in r["values"]))


def why_text(r) -> str:
    """An inconclusive verdict's reason and the seeds that could decide it, in words ('' otherwise)."""
    if r["verdict"] != "inconclusive" or not r.get("why"):
        return ""
    needed = r.get("seeds_needed")
    if needed is None or (isinstance(needed, float) and np.isnan(needed)):
        return f"{r['why']}: the seeds' mean is 0, no number of seeds decides it"
    return f"{r['why']}: at least {int(needed)} seeds could decide it"


def claims_html(verdicts: pd.DataFrame) -> str:
    """The claims table of the evaluation page (anchor `claims`, which the scorecard links to), the rule
    above it."""
    if verdicts.empty:
        return "<p>No claims can be checked: no attack results.</p>"
    colour = {"holds": "#e3f4e1", "fails": "#fde2e1", "inconclusive": "#fff4d6", "not informative": "#eee"}
    body = "".join(
        f"<tr><td>{html.escape(r['text'] + (' (' + r['model'] + ')' if r['claim'] == 'both-beats-either' else ''))}</td>"
        f"<td>{html.escape(r['dataset'])}</td><td>{html.escape(r['protocol'])}</td>"
        f"<td style='background:{colour[r['verdict']]}'><b>{r['verdict']}</b>"
        + (f"<br><small>{html.escape(why_text(r))}</small>" if why_text(r) else "") + "</td>"
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
        changed = sorted({f for files in group.get("changed", pd.Series(dtype=object)).dropna() for f in files})
        dirty = {changes_text(changed)} if group["dirty"].fillna(False).astype(bool).any() else set()
        out.append({**dict(zip(keys, values)), "threads": int(values[3]), "runs": int(len(group)),
                    "commits": sorted(set(group["commit"].dropna()) | dirty)})
    if len(provenance) > len(known):
        out.append({"machine": "not recorded", "runs": int(len(provenance) - len(known))})
    if len(out) > 1:
        for entry, (_, group) in zip(out, known.groupby(keys, sort=True)):
            entry["which"] = sorted(group["run"])
        if out[-1]["machine"] == "not recorded":
            out[-1]["which"] = sorted(provenance.loc[provenance["machine"].isna(), "run"])
    return out


def samples_text(dataset: str, configured, built: int | None) -> str | int:
    """A dataset's sample count as the scale line shows it: the configured subset, or the number the
    dataset file holds (`built`, when known), each beside the paper's count where the two differ, so `all`
    never hides a smaller source (PatchedMNIST from 10,000 MNIST digits: 3,119 of the paper's 21,770)."""
    n = configured or built
    if n is None:
        return "all"
    paper = PAPER_SAMPLES.get(dataset)
    text = f"{n:,}" + ("" if configured else " (all the source holds)")
    return text + (f" of the paper's {paper:,}" if paper and paper != n else "")


def scale_summary(cfg: dict, tidy: pd.DataFrame, provenance: pd.DataFrame, sizes: dict | None = None) -> dict:
    """The scale in plain values: samples (`sizes`: each dataset file's sample count, where known),
    encoder width, epochs, seeds per model, eps, device, and the machines the runs were made on
    (`machines`)."""
    sizes = sizes or {}
    datasets = [d for d, e in (cfg.get("datasets") or {}).items() if e is not None and d not in left_out(cfg)]
    runs = tidy[tidy["attack"] == "gan-both"].groupby("model")["seed"].nunique()
    epochs = {m: resolve(cfg, m, datasets[0] if datasets else None)[1]["epochs"] for m in ("comvc", "ardmvc-am")}
    return {"scale": (cfg.get("evaluation") or {}).get("scale", "full"),
            "samples": {d: samples_text(d, cfg["datasets"][d].get("max_samples"), sizes.get(d)) for d in datasets},
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
    def plain(x):
        return None if x is None or (isinstance(x, float) and np.isnan(x)) else x

    claims = [{"claim": r["claim"], "text": r["text"], "dataset": r["dataset"], "protocol": r["protocol"],
               "model": r["model"], "verdict": r["verdict"], "numbers": numbers(r), "note": r["note"],
               "seeds": int(r["seeds"]), "values": [float(v) for v in r["values"]], "mean": plain(float(r["mean"])),
               "why": r["why"] or None,
               "seeds_needed": None if plain(r["seeds_needed"]) is None else int(r["seeds_needed"])}
              for _, r in verdicts.iterrows()]
    decided = [c["seeds"] for c in claims if c["seeds"]]
    in_use = max(set(decided), key=decided.count) if decided else 0
    return {"rule": RULE, "rule_at_seeds": rule_meaning(in_use) if in_use else "", "evidence": EVIDENCE,
            "claims": claims, "scale": scale, "left_out": omitted}


def _cells(claims: list[dict]) -> str:
    """Where a claim's verdicts sit: `noisymnist (paper, strict), patchedmnist (paper)`."""
    by = {}
    for c in claims:
        by.setdefault(c["dataset"], []).append(c["protocol"])
    return ", ".join(f"{d} ({', '.join(ps)})" for d, ps in by.items())


def bottom_line(claims: list[dict], evidence: str) -> str:
    """The scorecard in a few sentences of HTML: which claims hold, which fail, which stay undecided and
    why (too few seeds, or seeds that disagree, with the seeds that could decide them), and which the
    numbers cannot speak to; `evidence` is the link to the verdicts' table. `claims` are the scorecard's
    entries (`scorecard`), each with `why` and `seeds_needed` when inconclusive."""
    if not claims:
        return "<p>No claim could be checked: no attack results.</p>"

    def label(c):
        return c["text"] + (f" ({c['model']})" if c["claim"] == "both-beats-either" else "")

    def grouped(items):
        out = {}
        for c in items:
            out.setdefault(label(c), []).append(c)
        return "; ".join(f"<i>{html.escape(text)}</i> on {html.escape(_cells(cs))}" for text, cs in out.items())

    parts = []
    for verdict, words in (("holds", "Holds"), ("fails", "Fails")):
        items = [c for c in claims if c["verdict"] == verdict]
        if items:
            parts.append(f"<b>{words}</b> ({len(items)}): {grouped(items)}.")
    open_ = [c for c in claims if c["verdict"] == "inconclusive"]
    if open_:
        reasons = []
        few = [c for c in open_ if c.get("why") == TOO_FEW]
        noise = [c for c in open_ if c.get("why") == NOISE]
        if few:
            reasons.append(f"{len(few)} for <b>too few seeds</b> (fewer than {MIN_SEEDS} paired seeds, so they cannot "
                           f"be decided by construction): {grouped(few)}")
        if noise:
            needed = sorted(c["seeds_needed"] for c in noise if c.get("seeds_needed"))
            span = (f"; if the seeds' mean and spread held, deciding them would take {needed[0]:,} to {needed[-1]:,} seeds"
                    if needed and needed[0] != needed[-1] else f"; deciding them would take about {needed[0]} seeds"
                    if needed else "")
            reasons.append(f"{len(noise)} for <b>seed noise</b> (the seeds disagree in sign{span}): {grouped(noise)}")
        rest = [c for c in open_ if c.get("why") not in (TOO_FEW, NOISE)]
        if rest:
            reasons.append(f"{len(rest)} with no reason recorded: {grouped(rest)}")
        parts.append(f"<b>Undecided</b> ({len(open_)}): " + "; ".join(reasons) + ".")
    silent = [c for c in claims if c["verdict"] == "not informative"]
    if silent:
        notes = sorted({c["note"].split(";")[0].split(":")[0] for c in silent if c.get("note")})
        parts.append(f"<b>Not informative</b> ({len(silent)}): {grouped(silent)}"
                     + (f" ({html.escape('; '.join(notes))})" if notes else "") + ".")
    parts.append(f"<a href='{html.escape(evidence)}'>The verdicts with every seed's numbers</a>.")
    return "<ul class='bottom-line'>" + "".join(f"<li>{p}</li>" for p in parts) + "</ul>"
