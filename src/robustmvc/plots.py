"""Figures drawn from the package's results (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # in a notebook keep the inline backend, elsewhere draw off-screen
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from robustmvc.files import atomic_path  # noqa: E402


def cluster_to_class(labels: np.ndarray, pred: np.ndarray) -> dict[int, int]:
    """The best one-to-one map from cluster ids to classes (Hungarian, as ACC uses)."""
    classes, clusters = np.unique(labels), np.unique(pred)
    counts = np.array([[np.sum((pred == k) & (labels == c)) for c in classes] for k in clusters])
    rows, cols = linear_sum_assignment(-counts)
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
    rows = max(len(idx), 1)
    fig, axes = plt.subplots(rows, 3 * n_views, figsize=(1.6 * 3 * n_views + 1, 1.7 * rows + 0.6),
                             squeeze=False, layout="constrained")
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
                shown = ax.imshow(np.clip(img, 0, 1) if c != 1 else img, **kw)
                if c == 1:
                    image = shown
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(name, fontsize=8)
        axes[r, 0].set_ylabel(f"class {labels[i]}\ncluster {before} -> {after}", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="perturbation")
    fig.suptitle(title or "adversarial examples (clusters named by their class on clean data)", fontsize=9)
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format=out.suffix.lstrip(".") or "png")
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
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Figures of the evaluation report (notebook 06): each takes the tidy or summary table of
# robustmvc.tables and returns a matplotlib Figure (None when the table holds nothing to draw).


def _ordered(values, order):
    return sorted(values, key=lambda v: (order.index(v) if v in order else len(order), v))


def relative_drop(summary, attack: str = "gan-both"):
    """Bars: (pre - post) / pre ACC per model, one group per dataset."""
    import seaborn as sns

    from robustmvc.tables import DATASET_ORDER, MODEL_ORDER

    rows = summary[(summary["attack"] == attack) & (summary["protocol"] == "paper")]
    if rows.empty:
        return None
    wide = rows.pivot_table(index=["dataset", "model"], columns="phase", values="acc_mean").reset_index()
    wide["drop"] = (wide["pre"] - wide["post"]) / wide["pre"]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * wide["dataset"].nunique() * max(1, wide["model"].nunique()) / 3, 3.6))
    sns.barplot(wide, x="dataset", y="drop", hue="model", ax=ax,
                order=_ordered(wide["dataset"].unique(), DATASET_ORDER),
                hue_order=_ordered(wide["model"].unique(), MODEL_ORDER))
    ax.set_ylabel("relative ACC drop"), ax.set_xlabel("")
    ax.set_title(f"Accuracy lost to the attack ({attack})")
    ax.axhline(0, color="black", lw=0.8)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def ablation(tidy, protocol: str = "paper"):
    """Grouped bars: post-attack ACC per model under each attack objective, one panel per dataset, on the
    seeds attacked by all three objectives (`tables.ablation_points`); error bars are the std over those
    seeds and the black mark is their clean ACC."""
    from robustmvc.tables import ABLATION, DATASET_ORDER, MODEL_ORDER, ablation_points

    points = ablation_points(tidy)
    points = points[points["protocol"] == protocol]
    if points.empty:
        return None
    datasets = _ordered(points["dataset"].unique(), DATASET_ORDER)
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        part = points[points["dataset"] == dataset]
        models = _ordered(part["model"].unique(), MODEL_ORDER)
        mean = part.groupby("model")[["clean", *ABLATION]].mean().reindex(models)
        std = part.groupby("model")[list(ABLATION)].std().reindex(models).fillna(0.0)
        seeds = part.groupby("model")["seed"].nunique().reindex(models)
        width = 0.8 / 3
        for k, attack in enumerate(ABLATION):
            ax.bar(np.arange(len(models)) + (k - 1) * width, mean[attack], width, yerr=std[attack],
                   label=attack.removeprefix("gan-"), capsize=2)
        ax.scatter(np.arange(len(models)), mean["clean"], marker="_", s=400, color="black", label="clean", zorder=3)
        ax.set_xticks(np.arange(len(models)), [f"{m}\n({n} seed{'s' if n > 1 else ''})" for m, n in seeds.items()],
                      rotation=30, ha="right")
        ax.set_ylim(0, 1.05), ax.set_title(f"{dataset} ({protocol} protocol)"), ax.set_ylabel("post-attack ACC")
    axes[0][0].legend(title="attacked terms", fontsize=8)
    fig.tight_layout()
    return fig


def eps_points(tidy: pd.DataFrame, datasets, protocol: str = "paper") -> pd.DataFrame:
    """The eps curve's points: ACC per (dataset, model, seed, eps), clean at eps 0, through `tables.pair`:
    a model keeps only the seeds attacked at every budget it was attacked at, so a line's shape never comes
    from a change of seeds (the main attack may run on more seeds than the sweep). The seeds left out are
    listed in `points.attrs["unpaired"]`."""
    from robustmvc.tables import pair

    sweep = tidy[tidy["attack"].str.match(r"gan-both(-eps[0-9.]+)?$") & tidy["dataset"].isin(datasets)
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


def eps_curve(tidy, datasets):
    """Lines with seed bands: post-attack ACC against the budget eps (eps 0 = clean)."""
    import seaborn as sns

    from robustmvc.tables import MODEL_ORDER

    points = eps_points(tidy, datasets)
    if points.empty:
        return None
    datasets = [d for d in datasets if d in set(points["dataset"])]
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 3.4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        part = points[points["dataset"] == dataset]
        sns.lineplot(part, x="eps", y="acc", hue="model", marker="o", errorbar="sd", ax=ax,
                     hue_order=_ordered(part["model"].unique(), MODEL_ORDER))
        ax.set_title(dataset), ax.set_ylabel("ACC under attack"), ax.set_xlabel("L-infinity budget eps")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def sensitivity_heatmap(grid_points):
    """Heat map of post-attack ACC over the defense's lambda (rows) and gamma (columns), from
    `tables.sensitivity_grid` (mean over the seeds run at every grid point)."""
    import seaborn as sns

    if grid_points.empty:
        return None
    grid = grid_points.pivot_table(index="lambda", columns="gamma", values="post_acc", aggfunc="mean")
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * grid.shape[1], 1.0 + 0.8 * grid.shape[0]))
    sns.heatmap(grid, annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, ax=ax,
                cbar_kws={"label": "post-attack ACC"})
    ax.set_xlabel("gamma (KL weight)"), ax.set_ylabel("lambda (adversarial weight)")
    ax.set_title("AR-DMVC-AM sensitivity")
    fig.tight_layout()
    return fig


def tsne_clean_vs_attacked(model, perturber, views, labels, n: int = 1000, seed: int = 0, title: str = ""):
    """t-SNE of the consensus representation h, clean and attacked, embedded jointly so the two
    panels share one map; coloured by true class."""
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
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharex=True, sharey=True)
    for ax, part, name in ((axes[0], emb[:len(idx)], "clean"), (axes[1], emb[len(idx):], "attacked")):
        ax.scatter(part[:, 0], part[:, 1], c=labels[idx], cmap="tab10", s=5)
        ax.set_title(f"{title} {name}".strip()), ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


def transfer_heatmap(table: pd.DataFrame):
    """Post-attack ACC of each target (columns) under the generators of each surrogate (rows), one
    panel per (dataset, protocol), from `tables.transfer_grid`; the diagonal is the white-box attack.
    None when there is nothing to draw."""
    from robustmvc.tables import DATASET_ORDER, MODEL_ORDER

    if table is None or table.empty:
        return None
    panels = sorted(set(zip(table["dataset"], table["protocol"])),
                    key=lambda p: (_ordered(table["dataset"].unique(), DATASET_ORDER).index(p[0]), p[1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False,
                             layout="constrained")
    for ax, (dataset, protocol) in zip(axes[0], panels):
        part = table[(table["dataset"] == dataset) & (table["protocol"] == protocol)]
        order = _ordered(part["surrogate"].unique(), MODEL_ORDER)
        grid = part.pivot(index="surrogate", columns="target", values="post_acc").reindex(index=order, columns=order)
        shown = ax.imshow(grid.to_numpy(), cmap="magma", vmin=0, vmax=1)
        for (r, c), v in np.ndenumerate(grid.to_numpy()):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if v < 0.55 else "black")
        ax.set_xticks(range(len(order)), order, rotation=60, fontsize=7)
        ax.set_yticks(range(len(order)), order, fontsize=7)
        ax.set_xlabel("target model")
        ax.set_ylabel("surrogate (generator trained against)")
        ax.set_title(f"{dataset} ({protocol}, {int(part['seeds'].min())} seed(s))", fontsize=9)
    fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.7, label="post-attack ACC")
    return fig
