"""Aggregation of per-run metric files, and the paper's Table 1 as data."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from robustmvc import data, models, tables
from conftest import ROOT


def _write(root, dataset, model, variant, seed, clean, attacked=None, eps=0.3):
    f = root / "metrics" / dataset / model / variant / f"seed{seed}.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    rec = {"clean": dict(zip(("acc", "nmi", "ari"), clean))}
    if attacked is not None:
        rec.update(attacked=dict(zip(("acc", "nmi", "ari"), attacked)), protocol="paper",
                   settings={"eps": eps, "protocol": "paper"})
    f.write_text(json.dumps(rec))


@pytest.fixture
def results(tmp_path):
    _write(tmp_path, "noisymnist", "comvc", "gan-both", 0, (0.9, 0.8, 0.7), (0.3, 0.2, 0.1))
    _write(tmp_path, "noisymnist", "comvc", "gan-both", 1, (1.0, 0.9, 0.8), (0.5, 0.4, 0.3))
    _write(tmp_path, "noisymnist", "comvc", "clean", 0, (0.9, 0.8, 0.7))
    _write(tmp_path, "noisyfashion", "simvc", "gan-both", 0, (0.6, 0.5, 0.4), (0.2, 0.1, 0.0), eps=0.15)
    return tmp_path


def test_collect_makes_one_row_per_run_and_phase(results):
    tidy = tables.collect(results)
    assert list(tidy.columns) == tables.COLUMNS
    assert len(tidy) == 2 * 2 + 1 + 2
    post = tidy[(tidy.model == "comvc") & (tidy.phase == "post")].sort_values("seed")
    assert post["acc"].tolist() == [0.3, 0.5] and set(post["eps"]) == {0.3}


def test_summary_means_and_stds(results):
    s = tables.summarize(tables.collect(results))
    row = s[(s.model == "comvc") & (s.attack == "gan-both") & (s.phase == "post")].iloc[0]
    assert math.isclose(row["acc_mean"], 0.4) and row["seeds"] == 2
    assert math.isclose(row["acc_std"], np.std([0.3, 0.5], ddof=1))  # sample std over seeds
    single = s[(s.model == "simvc") & (s.phase == "pre")].iloc[0]
    assert single["acc_std"] == 0.0 and single["seeds"] == 1


def test_table1_sets_ours_beside_the_paper_and_marks_missing(results):
    paper = tables.load_paper(ROOT / "config" / "paper_table1.yaml")
    t1 = tables.table1(tables.summarize(tables.collect(results)), paper)
    cell = t1[(t1.model == "comvc") & (t1.dataset == "noisymnist") & (t1.phase == "post") & (t1.metric == "acc")].iloc[0]
    assert cell["paper"] == 0.31 and math.isclose(cell["diff"], 0.4 - 0.31)
    html = tables.table1_html(t1, tolerance=0.05, scale="test")
    assert "paper 0.31 (+0.09)" in html and "test" in html
    # +0.09 above the paper with tolerance 0.05: the first shade on the "higher" side
    assert "<td class='better1'>0.40&plusmn;0.14<br><span class='paper'>paper 0.31 (+0.09)" in html
    assert html.count("class='empty'") > 0  # simvc has no noisymnist cell, comvc no noisyfashion cell
    assert "lower by" in html and "higher by" in html  # the legend of the scale


def test_table1_shading_is_signed_and_missing_paper_values_say_why():
    assert tables.shade(0.03, 0.05) == "near" and tables.shade(-0.05, 0.05) == "near"
    assert [tables.shade(d, 0.05) for d in (0.1, 0.2, 0.5)] == ["better1", "better2", "better3"]
    assert [tables.shade(d, 0.05) for d in (-0.1, -0.2, -0.5)] == ["worse1", "worse2", "worse3"]
    paper = tables.load_paper(ROOT / "config" / "paper_table1.yaml")
    notes = paper.set_index(["model", "dataset", "phase"])
    assert notes.loc[("comvc", "patchedmnist", "post"), "acc_note"] == tables.ILLEGIBLE
    assert notes.loc[("ardmvc", "noisymnist", "pre"), "acc_note"] == tables.NOT_REPORTED
    assert notes.loc[("ardmvc", "noisymnist", "post"), "acc_note"] == ""
    summary = tables.summarize(pd.DataFrame(
        [["noisymnist", "ardmvc", 0, "gan-both", "paper", 0.3, ph, 0.5, 0.4, 0.3] for ph in ("pre", "post")]
        + [["demo", "comvc", 0, "gan-both", "paper", 0.3, "pre", 0.5, 0.4, 0.3]], columns=tables.COLUMNS))
    html = tables.table1_html(tables.table1(summary, paper), 0.05, "test")
    assert html.count("not reported in the paper") == 3 + 2 + 3  # ardmvc pre, its post NMI/ARI, the demo row
    assert "illegible" in html and "paper 0.90 (-0.40)" in html


def test_paper_table_loads_and_names_only_known_models_and_datasets():
    paper = tables.load_paper(ROOT / "config" / "paper_table1.yaml")
    assert set(paper["model"]) <= set(models.names())
    assert set(paper["dataset"]) <= set(data.DATASETS)
    comvc = paper[(paper.model == "comvc") & (paper.dataset == "noisymnist")].set_index("phase")
    assert comvc.loc["pre", "acc"] == 0.99 and comvc.loc["post", "acc"] == 0.31
    # illegible cells are missing values, not zeros
    assert np.isnan(paper[(paper.model == "comvc") & (paper.dataset == "patchedmnist") & (paper.phase == "post")]["acc"].iloc[0])
    assert len(paper[(paper.model == "ardmvc-am")]) == 8


def test_eps_curve_keeps_the_seeds_attacked_at_every_budget(results):
    from robustmvc import plots

    _write(results, "noisymnist", "comvc", "gan-both-eps0.1", 0, (0.9, 0.8, 0.7), (0.7, 0.6, 0.5), eps=0.1)
    points = plots.eps_points(tables.collect(results), ["noisymnist"])
    got = sorted(zip(points["model"], points["seed"], points["eps"], points["acc"]))
    # seed 1 was attacked at 0.3 only: it would pull the 0.3 point and not the 0.1 one
    assert got == [("comvc", 0, 0.0, 0.9), ("comvc", 0, 0.1, 0.7), ("comvc", 0, 0.3, 0.3)]
    assert plots.eps_curve(tables.collect(results), ["noisymnist"]) is not None
