"""Figures drawn from the package's results (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # in a notebook keep the inline backend, elsewhere draw off-screen
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from robustmvc import variants  # noqa: E402
from robustmvc.files import atomic_path  # noqa: E402
from robustmvc.metrics import best_assignment  # noqa: E402
from robustmvc.tables import ABLATION, DATASET_ORDER, MODEL_ORDER, ablation_points, pair  # noqa: E402

# One colour-blind-safe palette and marker set for the whole report (after Okabe & Ito and Paul Tol): a model
# keeps its colour and marker in every figure, and no two models share a hue family (each pair of colours
# lies at least MIN_COLOUR_DISTANCE apart in CIELAB, tests/test_figures.py). Ordered as MODEL_ORDER: CoMVC
# blue, AR-DMVC wine, AR-DMVC-AM orange, ALRDC green.
PALETTE = ["#ca9161", "#999933", "#0173b2", "#cc78bc", "#949494", "#ece133", "#000000", "#882255",
           "#de8f05", "#029e73"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<"]
MIN_COLOUR_DISTANCE = 30  # CIE76 delta E: 20 (the two pinks this palette had) reads as one colour at a glance
CYCLE = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#56b4e9", "#949494"]  # other lines
PAGE_WIDTH_PX = 1100  # the output column of a report page in a 1280 px window: a wider figure is shrunk to it
PAGE_WIDTH_IN = 10.0  # figures are drawn at most this wide (100 dpi; legends outside the axes add the rest)
# diverging, colour-blind safe (blue - white - orange): signed differences such as ours - paper
DIVERGING = "PuOr_r"
SEQUENTIAL = "cividis"  # magnitudes (drops, accuracies), readable in grey and by colour-blind readers


def model_style(model: str) -> dict:
    """The colour and marker of `model`, the same in every figure (models outside the registry's
    order share the grey)."""
    if model not in MODEL_ORDER:
        return {"color": "#555555", "marker": "o"}
    i = MODEL_ORDER.index(model)
    return {"color": PALETTE[i], "marker": MARKERS[i]}


def style() -> None:
    """The report's matplotlib defaults: the palette, sizes readable at 100% zoom, light grids."""
    plt.rcParams.update({
        "axes.prop_cycle": matplotlib.cycler(color=CYCLE),
        "figure.dpi": 100, "savefig.dpi": 100, "font.size": 10, "axes.titlesize": 11,
        "axes.labelsize": 10, "legend.fontsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9,
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
        "image.cmap": SEQUENTIAL,
    })


def png_bytes(fig, dpi: float | None = None) -> bytes:
    """The figure as a PNG reduced to a 256-colour palette: plots use few colours, and the reports embed
    every figure, so this halves the pages (examples of noisy perturbations: 140 KB -> 60 KB) with no
    visible change."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    buf.seek(0)
    out = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(colors=256).save(out, format="PNG", optimize=True)
    return out.getvalue()


def save_figure(fig, out: str | Path, dpi: float | None = None) -> None:
    """The figure written to `out` whole or not at all, in the format its suffix names (a PNG as
    `png_bytes`)."""
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower() or "png"
    with atomic_path(out) as tmp:
        if fmt == "png":
            Path(tmp).write_bytes(png_bytes(fig, dpi))
        else:
            fig.savefig(tmp, dpi=dpi, format=fmt)


# Terms a defense adds to its backbone's loss (or logs beside it), each drawn in a panel of its own by
# `training_curves` when a history holds it; a defense with a new term adds a line here.
DEFENSE_TERMS = {
    "kl": "gamma KL\n(mitigator)",                  # AR-DMVC-AM: KL between clean and adversarial assignments
    "mi_align": "-w I(a; a~)\n(alignment)",          # ALRDC: minus the weighted MI of clean and perturbed
    "perturber_kl": "perturber's KL\n(attacker)",    # ALRDC: the KL its embedding attacker reached
}


def training_curves(history: list[dict], title: str = ""):
    """The loss terms of one training run per epoch, drawn from what its history holds, so that one call
    serves every model: the model's own terms in the first panel; where the history holds adversarial copies
    of them (`adv_<term>`, adversarial training) the clean loss L(x) beside the adversarial loss lambda L(x~);
    then each defense term of `DEFENSE_TERMS` it holds, in a panel of its own (their scales differ by orders
    of magnitude). The sum `total` is left out: it mixes the panels."""
    hist = pd.DataFrame(history)
    if hist.empty or "epoch" not in hist:
        raise ValueError("the training history is empty; train the model for at least one epoch")
    terms = [c for c in hist.columns if c not in ("epoch", "phase", "seconds", "total")
             and pd.api.types.is_numeric_dtype(hist[c])]
    adv = [c for c in terms if c.startswith("adv_") and c[4:] in terms]
    extra = [c for c in DEFENSE_TERMS if c in terms]
    own = [c for c in terms if c not in adv and c not in extra]
    panels = [("loss terms", {c: hist[c] for c in own})]
    if adv:
        panels.append(("clean vs\nadversarial loss", {"clean loss L(x)": hist[[c[4:] for c in adv]].sum(axis=1),
                                                       "adversarial loss lambda L(x~)": hist[adv].sum(axis=1)}))
    panels += [(DEFENSE_TERMS[c], {c: hist[c]}) for c in extra]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 1.2 + 2.0 * len(panels)), sharex=True, squeeze=False)
    for ax, (label, lines) in zip(axes[:, 0], panels):
        for name, values in lines.items():
            ax.plot(hist["epoch"], values, marker="o", markersize=3, label=name)
        values = pd.concat(lines.values()).dropna()
        if len(lines) > 1 and len(values) and (values > 0).all():
            ax.set_yscale("log")  # terms of one loss differ by orders of magnitude
        ax.set_ylabel(label)
        if len(lines) > 1:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
    axes[-1, 0].set_xlabel("epoch")
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def run_title(what: str, dataset: str | None = None, seeds=None, protocol: str | None = None, eps=None) -> str:
    """A figure title that names what the numbers come from: `what` on the first line, then dataset,
    seeds, attack protocol and eps on the second."""
    parts = []
    if dataset:
        parts.append(str(dataset))
    if seeds is not None and len(seeds):
        parts.append(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(str(int(x)) for x in sorted(set(seeds)))}")
    if protocol:
        parts.append(f"{protocol} protocol")
    if eps is not None:
        parts.append(f"eps {eps:g}" if isinstance(eps, (int, float)) else f"eps {eps}")
    return what + ("\n" + " | ".join(parts) if parts else "")


def cluster_to_class(labels: np.ndarray, pred: np.ndarray) -> dict[int, int]:
    """The best one-to-one map from cluster ids to classes (Hungarian, as ACC uses)."""
    classes, clusters = np.unique(labels), np.unique(pred)
    counts = np.array([[np.sum((pred == k) & (labels == c)) for c in classes] for k in clusters])
    rows, cols = best_assignment(counts)
    mapping = {int(clusters[r]): int(classes[c]) for r, c in zip(rows, cols)}
    return {int(k): mapping.get(int(k), -1) for k in clusters}


def pick_misclustered(labels, pred_clean, pred_adv, n: int) -> np.ndarray:
    """Up to n samples clustered correctly when clean and wrongly when attacked (clusters mapped to
    classes by the clean predictions' best map); topped up with any sample whose cluster changed."""
    labels, pred_clean, pred_adv = map(np.asarray, (labels, pred_clean, pred_adv))
    mapping = cluster_to_class(labels, pred_clean)
    clean_cls = np.array([mapping.get(int(k), -1) for k in pred_clean])
    adv_cls = np.array([mapping.get(int(k), -1) for k in pred_adv])
    flipped = np.flatnonzero((clean_cls == labels) & (adv_cls != labels))
    changed = np.setdiff1d(np.flatnonzero(pred_adv != pred_clean), flipped)
    # one example per true class first, so the figure shows variety
    chosen, seen = [], set()
    for i in flipped:
        if labels[i] not in seen:
            chosen.append(i)
            seen.add(labels[i])
    rest = [i for i in np.concatenate([flipped, changed]) if i not in chosen]
    return np.array((chosen + rest)[:n], dtype=np.int64)


def _image(x: np.ndarray) -> np.ndarray:
    """(C, H, W) -> something imshow takes: (H, W) for one channel, (H, W, C) otherwise."""
    return x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))


def attack_examples(result, out: str | Path, n: int = 5, title: str | None = None) -> list[int]:
    """Per chosen sample (rows) and view: clean view, perturbation, adversarial view (columns).

    `result` is an `attacks.AttackResult` (or anything with labels, pred_clean, pred_adv,
    clean_views, adv_views). The perturbation is drawn on a diverging colormap symmetric around 0
    (for colour views, averaged over channels). Titles give the true class and the cluster before
    -> after the attack, clusters named by the class they map to on clean data. Returns the
    indices drawn (within the scored samples); writes `out` whole or not at all.
    """
    labels = np.asarray(result.labels)
    idx = pick_misclustered(labels, result.pred_clean, result.pred_adv, n)
    mapping = cluster_to_class(labels, np.asarray(result.pred_clean))
    n_views = len(result.clean_views)
    deltas = [a - c for a, c in zip(result.adv_views, result.clean_views)]
    limit = max(max(float(np.abs(d).max()) for d in deltas), 1e-6)
    rows, cols = max(len(idx), 1), 3 * n_views
    # a fixed grid (inches), not constrained layout: the layout engine measured 1.5-2 of the figure's ~3.8 s of CPU,
    # paid by every attack job; the margins hold the row labels, the titles and the colour bar
    left, right, top, bottom, gap = 0.75, 1.2, 0.7, 0.15, 0.15
    panel = min(1.4, (PAGE_WIDTH_IN - left - (cols - 1) * gap) / cols)  # three views' nine panels fit too
    width, height = left + cols * panel + (cols - 1) * gap + right, top + rows * panel + (rows - 1) * gap + bottom
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, gridspec_kw=dict(
        left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
        wspace=gap / panel, hspace=gap / panel))
    if len(idx) == 0:
        for ax in axes.ravel():
            ax.axis("off")
        axes[0, 0].text(0, 0.5, "no sample changed cluster under the attack", transform=axes[0, 0].transAxes)
    image = None
    for r, i in enumerate(idx):
        before = mapping.get(int(result.pred_clean[i]), -1)
        after = mapping.get(int(result.pred_adv[i]), -1)
        for v in range(n_views):
            clean, adv, delta = result.clean_views[v][i], result.adv_views[v][i], deltas[v][i]
            cmap = "gray" if clean.shape[0] == 1 else None
            panels = [(_image(clean), dict(cmap=cmap, vmin=0, vmax=1), f"view {v + 1} clean"),
                      (delta.mean(0), dict(cmap="RdBu_r", vmin=-limit, vmax=limit), "perturbation"),
                      (_image(adv), dict(cmap=cmap, vmin=0, vmax=1), "adversarial")]
            for c, (img, kw, name) in enumerate(panels):
                ax = axes[r, 3 * v + c]
                shown = ax.imshow(np.clip(img, 0, 1) if c != 1 else img, interpolation="nearest", **kw)
                if c == 1:
                    image = shown
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(name, fontsize=8)
        axes[r, 0].set_ylabel(f"class {labels[i]}\ncluster {before} -> {after}", fontsize=8)
    if image is not None:
        bar = fig.add_axes((1 - (right - 0.3) / width, 0.2, 0.15 / width, 0.6))
        fig.colorbar(image, cax=bar, label="perturbation")
    fig.suptitle(title or "adversarial examples (clusters named by their class on clean data)", fontsize=9,
                 y=1 - 0.15 / height, va="top")
    save_figure(fig, out, dpi=100)
    plt.close(fig)
    return [int(i) for i in idx]


def embedding_shift(result, out: str | Path, title: str | None = None) -> None:
    """The embedding attack has no adversarial images to show: instead, how far h moved (relative to
    its length, per sample) and where the samples of each clean cluster went (clusters named by the
    class they map to on clean data). Writes `out` whole or not at all."""
    labels = np.asarray(result.labels)
    rel = (np.linalg.norm(result.h_adv - result.h_clean, axis=1)
           / np.maximum(np.linalg.norm(result.h_clean, axis=1), 1e-12))
    mapping = cluster_to_class(labels, np.asarray(result.pred_clean))
    before = np.array([mapping.get(int(k), -1) for k in result.pred_clean])
    after = np.array([mapping.get(int(k), -1) for k in result.pred_adv])
    names = sorted(set(before) | set(after))
    moves = pd.crosstab(pd.Categorical(before, names), pd.Categorical(after, names), dropna=False)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
    # most samples sit on the bound itself: fixed bins from 0, so a single value still draws
    left.hist(rel, bins=np.linspace(0, max(float(rel.max()), 1e-6) * 1.1, 41), color="tab:purple")
    left.set_xlabel("||delta|| / ||h|| per sample")
    left.set_ylabel("samples")
    shown = right.imshow(moves.to_numpy(), cmap="viridis")
    right.set_xticks(range(len(names)), names, fontsize=7)
    right.set_yticks(range(len(names)), names, fontsize=7)
    right.set_xlabel("cluster after the attack")
    right.set_ylabel("cluster before")
    fig.colorbar(shown, ax=right, shrink=0.8, label="samples")
    fig.suptitle(title or "embedding attack", fontsize=9)
    save_figure(fig, out, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Figures of the evaluation report (notebook 06): each takes the tidy or summary table of
# robustmvc.tables and returns a matplotlib Figure (None when the table holds nothing to draw).


def _ordered(values, order):
    return sorted(values, key=lambda v: (order.index(v) if v in order else len(order), v))


def seeds_text(seeds: dict) -> str:
    """Which seeds the models of a figure ran, from the data: `seeds 0, 1, 2` when every model ran the same
    ones, else `seeds 0, 1, 2 for comvc, ardmvc; 0 for the rest`-style groups (largest set first)."""
    groups: dict[tuple, list[str]] = {}
    for model, ran in seeds.items():
        groups.setdefault(tuple(sorted({int(x) for x in ran})), []).append(model)
    if not groups:
        return ""
    ordered = sorted(groups.items(), key=lambda g: (-len(g[0]), g[0]))

    def named(ran):
        return f"seed{'s' if len(ran) > 1 else ''} {', '.join(map(str, ran))}"

    if len(ordered) == 1:
        return named(ordered[0][0])
    parts = [f"{named(ran)} for {', '.join(_ordered(models, MODEL_ORDER))}" for ran, models in ordered[:-1]]
    return "; ".join(parts + [f"{named(ordered[-1][0])} for the rest"])


def relative_drop(summary, attack: str = "gan-both", tidy=None, paper=None):
    """Bars: (pre - post) / pre ACC per model, one group per dataset; error bars are the std over
    seeds of each seed's drop (from `tidy`, when given), black diamonds the paper's drop (from
    `paper`, `tables.load_paper`'s rows), and every bar carries its value beyond its error bar, so a zero
    drop reads as 0 and no label sits on a bar's whisker. The title says which seeds each model ran."""

    rows = summary[(summary["attack"] == attack) & (summary["protocol"] == "paper")]
    if rows.empty:
        return None
    wide = rows.pivot_table(index=["dataset", "model"], columns="phase", values="acc_mean").reset_index()
    wide["drop"] = (wide["pre"] - wide["post"]) / wide["pre"]
    seeds, spread = {}, {}
    if tidy is not None and len(tidy):
        runs = tidy[(tidy["attack"] == attack) & (tidy["protocol"] == "paper")]
        per_seed = runs.pivot_table(index=["dataset", "model", "seed"], columns="phase", values="acc").dropna()
        per_seed["drop"] = (per_seed["pre"] - per_seed["post"]) / per_seed["pre"]
        grouped = per_seed.reset_index().groupby(["dataset", "model"])
        spread = grouped["drop"].std(ddof=1).fillna(0.0).to_dict()
        seeds = grouped["seed"].apply(list).to_dict()
    datasets = _ordered(wide["dataset"].unique(), DATASET_ORDER)
    models = _ordered(wide["model"].unique(), MODEL_ORDER)
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(min(PAGE_WIDTH_IN - 1.5, max(7.5, 1.0 + 0.3 * len(models) * len(datasets))), 4.6),
                           layout="constrained")
    paper_drawn = False
    low = 0.0
    for j, model in enumerate(models):
        part = wide[wide["model"] == model].set_index("dataset").reindex(datasets)
        x = np.arange(len(datasets)) + (j - (len(models) - 1) / 2) * width
        err = np.nan_to_num([spread.get((d, model), np.nan) for d in datasets])
        ax.bar(x, part["drop"], width * 0.92, yerr=err, capsize=1.5, label=model, color=model_style(model)["color"],
               edgecolor="black", linewidth=0.4, error_kw={"lw": 0.8})
        for xi, v, e in zip(x, part["drop"], err):
            if np.isnan(v):
                continue
            end = v + e if v >= 0 else v - e
            ax.annotate(f"{v:.2f}", (xi, end), xytext=(0, 2 if v >= 0 else -2), textcoords="offset points",
                        ha="center", va="bottom" if v >= 0 else "top", rotation=90, fontsize=6.5)
            low = min(low, end)
        if paper is not None and len(paper):
            ref = paper[(paper["model"] == model)].pivot_table(index="dataset", columns="phase", values="acc")
            ref = ref.reindex(datasets)
            if {"pre", "post"} <= set(ref.columns):
                drop = ((ref["pre"] - ref["post"]) / ref["pre"]).to_numpy(dtype=float)
                if np.isfinite(drop).any():
                    ax.scatter(x, drop, marker="D", s=16, color="black", edgecolor="white", linewidth=0.5, zorder=4,
                               label=None if paper_drawn else "paper's drop")
                    paper_drawn = True
    ax.set_xticks(np.arange(len(datasets)), datasets)
    ax.set_ylabel("relative ACC drop, (pre - post) / pre")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylim(min(-0.1, low - 0.12), 1.15)
    ax.set_title(f"Accuracy lost to the attack ({attack}) | paper protocol | eps per dataset\n"
                 + seeds_text({m: [x for (d, mm), v in seeds.items() if mm == m for x in v] for m in models})
                 + (" | error bars: std over seeds" if any(len(v) > 1 for v in seeds.values()) else ""), fontsize=9)
    ax.legend(ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    mean_drop = wide.groupby("model")["drop"].mean().reindex(models)
    fig.finding = (f"Relative ACC drop under the paper's attack: largest for {mean_drop.idxmax()} "
                   f"({mean_drop.max():.2f} averaged over datasets), smallest for {mean_drop.idxmin()} "
                   f"({mean_drop.min():.2f})" + ("; black diamonds mark the paper's drops" if paper_drawn else ""))
    return fig


def ablation(tidy, protocol: str = "paper"):
    """Grouped bars: post-attack ACC per model under each attack objective, one panel per dataset, on the
    seeds attacked by all three objectives (`tables.ablation_points`); error bars are the std over those
    seeds and the black mark is their clean ACC."""

    points = ablation_points(tidy)
    points = points[points["protocol"] == protocol]
    if points.empty:
        return None
    datasets = _ordered(points["dataset"].unique(), DATASET_ORDER)
    fig, axes = plt.subplots(1, len(datasets), figsize=(max(7.5, 4.4 * len(datasets)), 4.0), squeeze=False,
                             layout="constrained")
    colours = {"gan-both": "#0173b2", "gan-com": "#de8f05", "gan-con": "#029e73"}
    for ax, dataset in zip(axes[0], datasets):
        part = points[points["dataset"] == dataset]
        models = _ordered(part["model"].unique(), MODEL_ORDER)
        mean = part.groupby("model")[["clean", *ABLATION]].mean().reindex(models)
        std = part.groupby("model")[list(ABLATION)].std().reindex(models).fillna(0.0)
        seeds = part.groupby("model")["seed"].nunique().reindex(models)
        width = 0.8 / 3
        for k, attack in enumerate(ABLATION):
            ax.bar(np.arange(len(models)) + (k - 1) * width, mean[attack], width, yerr=std[attack],
                   label=attack.removeprefix("gan-"), capsize=2, color=colours[attack], edgecolor="black",
                   linewidth=0.4, hatch=["", "//", ".."][k])
        ax.scatter(np.arange(len(models)), mean["clean"], marker="_", s=400, color="black", label="clean", zorder=3)
        ax.set_xticks(np.arange(len(models)), [f"{m}\n({n} seed{'s' if n > 1 else ''})" for m, n in seeds.items()],
                      rotation=30, ha="right")
        ax.set_ylim(0, 1.05), ax.set_ylabel("post-attack ACC")
        eps = tidy[(tidy["dataset"] == dataset) & (tidy["attack"] == "gan-both")]["eps"]
        ax.set_title(run_title("Attacked terms", dataset, sorted(part["seed"].unique()), protocol,
                               float(eps.iloc[0]) if len(eps) else None))
    axes[0][-1].legend(title="attacked terms", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def eps_points(tidy: pd.DataFrame, datasets, protocol: str = "paper") -> pd.DataFrame:
    """The eps curve's points: ACC per (dataset, model, seed, eps), clean at eps 0, through `tables.pair`:
    a model keeps only the seeds attacked at every budget it was attacked at, so a line's shape never comes
    from a change of seeds (the main attack may run on more seeds than the sweep). The seeds left out are
    listed in `points.attrs["unpaired"]`."""

    sweep = tidy[(tidy["attack"].map(variants.base) == "gan-both") & tidy["dataset"].isin(datasets)
                 & (tidy["protocol"] == protocol)]
    parts, unpaired = [], []
    for (dataset, model), part in sweep.groupby(["dataset", "model"]):
        budgets = (part[part["phase"] == "post"].drop_duplicates("attack").set_index("attack")["eps"]).to_dict()
        sides = {"clean": {"attack": "gan-both", "phase": "pre"}}
        sides.update({a: {"attack": a, "phase": "post"} for a in budgets})
        wide = pair(part, sides, drop_unpaired=True)
        unpaired += wide.attrs["unpaired"]
        for side, eps in [("clean", 0.0), *budgets.items()]:
            parts.append(wide[["dataset", "model", "seed", "protocol"]].assign(eps=float(eps), acc=wide[side]))
    points = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["dataset", "model", "seed", "protocol", "eps", "acc"])
    points.attrs["unpaired"] = unpaired
    return points


def eps_curve(tidy, datasets, train_eps: float | None = None):
    """Post-attack ACC against the budget eps (eps 0 = clean), one line and marker per model; with
    several seeds a band of one std over them. A line joins two budgets only when the model ran every
    budget of the sweep between them: a budget it skipped breaks its line, so no line crosses an eps
    that was never run. `train_eps` marks the defenses' PGD training radius."""
    points = eps_points(tidy, datasets)
    if points.empty:
        return None
    datasets = [d for d in datasets if d in set(points["dataset"])]
    fig, axes = plt.subplots(len(datasets), 1, figsize=(min(PAGE_WIDTH_IN - 1.5, 7.5), 4.2 * len(datasets)),
                             squeeze=False, layout="constrained")
    findings = []
    for ax, dataset in zip(axes[:, 0], datasets):
        part = points[points["dataset"] == dataset]
        models = _ordered(part["model"].unique(), MODEL_ORDER)
        budgets = sorted(part["eps"].unique())
        stats = part.groupby(["model", "eps"])["acc"].agg(["mean", "std", "count"])
        several = part.groupby("model")["seed"].nunique().max() > 1
        for model in models:
            line = stats.loc[model].reindex(budgets)  # NaN at a budget the model skipped: the line breaks there
            style_ = model_style(model)
            ax.plot(budgets, line["mean"], color=style_["color"], marker=style_["marker"], markersize=6, label=model)
            if several:
                ax.fill_between(budgets, line["mean"] - line["std"].fillna(0), line["mean"] + line["std"].fillna(0),
                                color=style_["color"], alpha=0.15, lw=0)
        if train_eps is not None:
            ax.axvline(train_eps, color="black", ls="--", lw=1)
            ax.annotate(f"defense training radius {train_eps:g}", (train_eps, 1.0), xytext=(4, -4),
                        textcoords="offset points", fontsize=8, va="top")
        ax.set_ylabel("ACC under attack"), ax.set_xlabel("L-infinity budget eps (0 = clean)")
        ax.set_xticks(budgets)
        ax.set_ylim(0, 1.05)
        seeds = sorted(part["seed"].unique())
        ax.set_title(run_title("ACC against the attack budget", dataset, seeds, "paper", None)
                     + (" | bands: std over seeds" if several else " | one seed: no band"))
        ax.legend(title="model", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        top = stats.xs(budgets[-1], level="eps")["mean"]
        findings.append(f"{dataset}: at eps {budgets[-1]:g}, ACC from {top.min():.2f} ({top.idxmin()}) to "
                        f"{top.max():.2f} ({top.idxmax()})")
    fig.finding = "ACC against the attack budget; " + "; ".join(findings)
    return fig


def sensitivity_heatmap(grid_points):
    """Heat map of post-attack ACC over the defense's lambda (rows) and gamma (columns), from
    `tables.sensitivity_grid` (mean over the seeds run at every grid point)."""
    import seaborn as sns

    if grid_points.empty:
        return None
    grid = grid_points.pivot_table(index="lambda", columns="gamma", values="post_acc", aggfunc="mean")
    fig, ax = plt.subplots(figsize=(max(5.5, 2.2 + 1.4 * grid.shape[1]), max(3.2, 1.4 + 1.0 * grid.shape[0])),
                           layout="constrained")
    sns.heatmap(grid, annot=True, fmt=".2f", cmap=SEQUENTIAL, vmin=0, vmax=1, ax=ax, annot_kws={"fontsize": 10},
                cbar_kws={"label": "post-attack ACC"})
    ax.set_xlabel("gamma (KL weight)"), ax.set_ylabel("lambda (adversarial weight)")
    datasets = sorted(grid_points["dataset"].unique())
    ax.set_title(run_title("AR-DMVC-AM sensitivity", ", ".join(datasets) or None, None, "paper", None)
                 + f" | {int(grid_points['seeds'].min())} paired seed(s)")
    return fig


def tsne_clean_vs_attacked(model, perturber, views, labels, n: int = 1000, seed: int = 0, title: str = ""):
    """t-SNE of the consensus representation h, clean and attacked, embedded jointly so the two
    panels share one map; coloured by true class. h comes before the clustering layer: separated
    classes here can still share one cluster after it."""
    # torch, the model blocks and TSNE are imported here, not at module level: the report's other
    # figures draw from tables alone, and a job that plots them need not load torch (seconds)
    import torch
    from sklearn.manifold import TSNE

    from robustmvc.models.blocks import batched_forward

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(labels), size=min(n, len(labels)), replace=False))
    device = next(model.parameters()).device
    x = [torch.as_tensor(v[idx], device=device) for v in views]
    with torch.no_grad():
        h_clean = batched_forward(model, x).h.cpu().numpy()
        h_adv = batched_forward(model, perturber.to(device).perturb(x)).h.cpu().numpy()
    emb = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, len(idx) // 4)).fit_transform(
        np.concatenate([h_clean, h_adv]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True, sharey=True, layout="constrained")
    classes = np.unique(labels[idx])
    colours = {c: (CYCLE + ["#000000", "#ece133"])[i % 10] for i, c in enumerate(classes)}
    for ax, part, name in ((axes[0], emb[:len(idx)], "clean"), (axes[1], emb[len(idx):], "attacked")):
        for c in classes:
            sel = labels[idx] == c
            ax.scatter(part[sel, 0], part[sel, 1], color=colours[c], s=6, label=str(c))
        ax.set_title(f"{title} {name} h".strip()), ax.set_xticks([]), ax.set_yticks([])
    axes[1].legend(title="class", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, markerscale=2)
    return fig


def transfer_heatmap(table: pd.DataFrame):
    """ACC each target (columns) loses, clean minus attacked, under the generators of each surrogate
    (rows), one panel per (dataset, protocol) stacked top to bottom so the figure keeps the page's width
    and its numbers stay legible, from `tables.transfer_grid`; the diagonal is the white-box attack. The
    colour scale runs over the values drawn (0 to their maximum, or from their minimum when some target
    gained ACC), so the cells use the whole scale. None when there is nothing to draw."""

    if table is None or table.empty:
        return None
    panels = sorted(set(zip(table["dataset"], table["protocol"])),
                    key=lambda p: (_ordered(table["dataset"].unique(), DATASET_ORDER).index(p[0]), p[1]))
    size = max(table.groupby("dataset")["target"].nunique())
    values = table["drop"].to_numpy(dtype=float)
    vmin, vmax = min(0.0, float(np.nanmin(values))), max(float(np.nanmax(values)), 0.01)
    step = 0.01 if vmax <= 0.2 else 0.05  # the top of the scale: the next round number above the largest drop
    vmax = float(np.ceil(vmax / step - 1e-9) * step)
    side = min(PAGE_WIDTH_IN - 2.0, 2.2 + 0.62 * size)
    fig, axes = plt.subplots(len(panels), 1, figsize=(side + 1.2, (side - 0.4) * len(panels)), squeeze=False,
                             layout="constrained")
    shown = None
    for ax, (dataset, protocol) in zip(axes[:, 0], panels):
        part = table[(table["dataset"] == dataset) & (table["protocol"] == protocol)]
        order = _ordered(part["surrogate"].unique(), MODEL_ORDER)
        grid = part.pivot(index="surrogate", columns="target", values="drop").reindex(index=order, columns=order)
        shown = ax.imshow(grid.to_numpy(), cmap=SEQUENTIAL, vmin=vmin, vmax=vmax)
        for (r, c), v in np.ndenumerate(grid.to_numpy()):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=9,
                        color="white" if (v - vmin) / (vmax - vmin) < 0.55 else "black")
        ax.set_xticks(range(len(order)), order, rotation=35, ha="right")
        ax.set_yticks(range(len(order)), order)
        ax.grid(False)
        ax.set_xlabel("target model")
        ax.set_ylabel("surrogate (generator trained against)")
        ax.set_title(run_title("ACC lost under transfer", dataset, None, protocol)
                     + f" | {int(part['seeds'].min())} paired seed(s)")
    fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.6, label="ACC drop (clean - attacked)")
    off = table[table["surrogate"] != table["target"]]
    best = off.loc[off["drop"].idxmax()] if len(off) else table.loc[table["drop"].idxmax()]
    fig.finding = (f"Transfer heat map: drops from {np.nanmin(values):.2f} to {np.nanmax(values):.2f}; the largest "
                   f"off the diagonal is {best['drop']:.2f}, {best['surrogate']}'s generators on {best['target']} "
                   f"({best['dataset']})")
    return fig


def cluster_sizes(record: dict, title: str = ""):
    """Bars: the size of each cluster (largest first) on clean and on attacked samples, from an attack
    record's `cluster_sizes`; a collapse shows as one bar holding every sample. None without sizes."""
    sizes = record.get("cluster_sizes")
    if not sizes:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.4), layout="constrained")
    k = len(sizes["clean"])
    width = 0.4
    for j, (phase, colour, hatch) in enumerate((("clean", "#0173b2", ""), ("attacked", "#d55e00", "//"))):
        values = sorted(sizes[phase], reverse=True)
        ax.bar(np.arange(k) + (j - 0.5) * width, values, width, label=phase, color=colour, hatch=hatch,
               edgecolor="black", linewidth=0.4)
    ax.set_xticks(np.arange(k), [str(i + 1) for i in range(k)])
    ax.set_xlabel("cluster, largest first")
    ax.set_ylabel("samples")
    ax.set_title(title or "Cluster sizes, clean and attacked")
    ax.legend(frameon=False)
    return fig
