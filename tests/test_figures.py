"""The report's figures as a reader sees them: they fit the page, their colour scales come from the data,
each model has a colour of its own, a line joins only budgets that ran, titles name the seeds that ran, no
legend sits on the data, and the alt text says what the figure shows."""
import io
import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from PIL import Image

from robustmvc import pages, plots, tables
from conftest import ROOT

MODELS = tables.MODEL_ORDER
DATASETS = ["noisyfashion", "noisymnist", "patchedmnist"]


def _lab(colour: str) -> np.ndarray:
    """sRGB hex -> CIELAB (D65), written out from the CIE formulas."""
    rgb = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    f = np.cbrt(xyz / np.array([0.95047, 1.0, 1.08883]))
    f = np.where(xyz / np.array([0.95047, 1.0, 1.08883]) > 0.008856, f, 7.787 * xyz / np.array([0.95047, 1.0, 1.08883]) + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _tidy(seeds_of=lambda m: [0, 1, 2] if m in ("comvc", "ardmvc", "ardmvc-am") else [0], sweep=None):
    """Every model on every dataset under the paper's attack (eps 0.3), with `sweep` {model: [eps...]} extra budgets."""
    rng = np.random.default_rng(0)
    rows = []
    for dataset, model in itertools.product(DATASETS, MODELS):
        for seed in seeds_of(model):
            pre = rng.uniform(0.6, 0.9)
            for attack, eps in [("gan-both", 0.3), *[(f"gan-both-eps{e:g}", e) for e in (sweep or {}).get(model, [])]]:
                post = pre - rng.uniform(0, 0.5) * eps / 0.3
                rows += [[dataset, model, seed, attack, "paper", eps, phase, v, v, v] for phase, v in (("pre", pre), ("post", post))]
    return pd.DataFrame(rows, columns=tables.COLUMNS)


def _width(fig) -> int:
    with Image.open(io.BytesIO(plots.png_bytes(fig))) as image:
        return image.size[0]


def test_every_model_has_a_colour_and_marker_of_its_own():
    assert len(plots.PALETTE) == len(MODELS) and len(set(plots.MARKERS)) == len(MODELS)
    for (a, ca), (b, cb) in itertools.combinations(zip(MODELS, plots.PALETTE), 2):
        distance = float(np.linalg.norm(_lab(ca) - _lab(cb)))
        assert distance >= plots.MIN_COLOUR_DISTANCE, f"{a} {ca} and {b} {cb} lie {distance:.1f} apart"
    # the check itself tells the two pinks the palette had apart from nothing: 20.7 < 30
    assert np.linalg.norm(_lab("#cc78bc") - _lab("#fbafe4")) < plots.MIN_COLOUR_DISTANCE


def test_figures_of_every_model_and_dataset_fit_the_page():
    tidy = _tidy(sweep={m: [0.1, 0.2] for m in MODELS})
    transfer = pd.DataFrame([{"dataset": d, "protocol": "paper", "surrogate": s, "target": t, "pre_acc": 0.8,
                              "post_acc": 0.7, "drop": 0.1, "seeds": 1} for d in DATASETS for s in MODELS for t in MODELS])
    figures = {"drop": plots.relative_drop(tables.summarize(tidy), tidy=tidy,
                                           paper=tables.load_paper(ROOT / "config" / "paper_table1.yaml")),
               "eps": plots.eps_curve(tidy, DATASETS, 0.2), "transfer": plots.transfer_heatmap(transfer)}
    for name, fig in figures.items():
        assert _width(fig) <= plots.PAGE_WIDTH_PX, f"the {name} figure is wider than the page"


@pytest.mark.parametrize("n_views", [2, 3])
def test_attack_examples_fit_the_page_with_a_row_per_misclustered_sample(tmp_path, n_views):
    """Two views (NoisyMNIST) or three (PatchedMNIST): six or nine panels a row, one row per sample drawn."""
    import types

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    clean = [rng.random((40, 1, 28, 28)) for _ in range(n_views)]
    result = types.SimpleNamespace(labels=labels, pred_clean=labels, pred_adv=(labels + 1) % 4, clean_views=clean,
                                   adv_views=[np.clip(c + rng.uniform(-0.2, 0.2, c.shape), 0, 1) for c in clean])
    drawn = plots.attack_examples(result, tmp_path / "examples.png", n=3)
    assert len(drawn) == 3 and len({int(labels[i]) for i in drawn}) == 3  # one sample per class first
    with Image.open(tmp_path / "examples.png") as image:
        assert image.size[0] <= plots.PAGE_WIDTH_PX
    unchanged = types.SimpleNamespace(**{**vars(result), "pred_adv": labels})
    assert plots.attack_examples(unchanged, tmp_path / "none.png") == []
    assert (tmp_path / "none.png").stat().st_size > 0


def test_transfer_colour_scale_comes_from_the_data():
    transfer = pd.DataFrame([{"dataset": "noisymnist", "protocol": "paper", "surrogate": s, "target": t, "pre_acc": 0.8,
                              "post_acc": 0.7, "drop": d, "seeds": 1}
                             for (s, t), d in zip(itertools.product(MODELS[:3], MODELS[:3]), np.linspace(0.01, 0.27, 9))])
    fig = plots.transfer_heatmap(transfer)
    image = fig.axes[0].get_images()[0]
    assert image.norm.vmin == 0 and image.norm.vmax == pytest.approx(0.30)  # 0.27 up to the next 0.05, not 1
    transfer.loc[0, "drop"] = -0.04  # a target that gained accuracy: the scale reaches below 0
    assert plots.transfer_heatmap(transfer).axes[0].get_images()[0].norm.vmin == pytest.approx(-0.04)
    assert "largest off the diagonal" in pages.alt_text(fig)
    transfer["drop"] = np.linspace(0.01, 0.0503, 9)  # small drops: the scale ends at 0.06, not 0.10 or 1
    assert plots.transfer_heatmap(transfer).axes[0].get_images()[0].norm.vmax == pytest.approx(0.06)


def test_eps_lines_join_only_budgets_the_model_ran():
    # CoMVC ran every budget; EAMC only the main one, so it shows as points at 0 and 0.3 with no line between
    tidy = _tidy(sweep={"comvc": [0.1, 0.2]})
    fig = plots.eps_curve(tidy, ["noisymnist"])
    budgets = [0.0, 0.1, 0.2, 0.3]
    for line in fig.axes[0].get_lines():
        if line.get_label() not in MODELS:
            continue
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        for i in range(len(x) - 1):
            if np.isfinite(y[i]) and np.isfinite(y[i + 1]):  # a drawn segment: no budget of the sweep in between
                assert not any(x[i] < b < x[i + 1] for b in budgets), (line.get_label(), x[i], x[i + 1])
    eamc = next(line for line in fig.axes[0].get_lines() if line.get_label() == "eamc")
    assert np.isnan(np.asarray(eamc.get_ydata(), float)).sum() == 2  # broken at 0.1 and 0.2


def test_drop_title_names_the_seeds_each_model_ran():
    tidy = _tidy()
    fig = plots.relative_drop(tables.summarize(tidy), tidy=tidy)
    title = fig.axes[0].get_title()
    assert "seeds 0, 1, 2 for comvc, ardmvc, ardmvc-am; seed 0 for the rest" in title
    assert plots.seeds_text({"comvc": [0, 1], "simvc": [1, 0]}) == "seeds 0, 1"
    # each value label is anchored beyond its bar's error bar (above it, or below a negative bar), not on it
    ax = fig.axes[0]
    whiskers = {}
    for bars in (c for c in ax.containers if isinstance(c, ErrorbarContainer)):
        for segment in bars.lines[2][0].get_segments():
            whiskers[round(float(segment[0][0]), 6)] = (float(segment[:, 1].min()), float(segment[:, 1].max()))
    labels = [t for t in ax.texts if t.get_text().lstrip("-").replace(".", "").isdigit()]
    assert len(labels) == len(MODELS) * len(DATASETS)
    for label in labels:
        low, high = whiskers[round(float(label.xy[0]), 6)]
        assert label.xy[1] >= high - 1e-9 if float(label.get_text()) >= 0 else label.xy[1] <= low + 1e-9
    assert "Relative ACC drop" in pages.alt_text(fig)


def test_training_curve_legends_sit_beside_the_curves():
    history = [{"epoch": e, "ddc1": 0.4 / e, "ddc2": 0.1, "ddc3": 0.8 / e, "contrast": 0.45, "total": 1.7}
               for e in range(1, 11)]
    fig = plots.training_curves(history, "comvc")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            assert legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1 - 1
