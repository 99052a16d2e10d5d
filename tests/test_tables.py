"""Aggregation of per-run metric files, and the paper's Table 1 as data."""
import json
import math

import numpy as np
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
    assert "paper 0.31 (+0.09)" in html and "class='miss'" in html and "test" in html
    assert html.count("class='empty'") > 0  # simvc has no noisymnist cell, comvc no noisyfashion cell


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


def test_collect_names_the_protocol_of_new_and_old_files(tmp_path):
    def write(parts, rec):
        f = tmp_path.joinpath("metrics", *parts)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(rec))

    scores = {"clean": {"acc": 0.9, "nmi": 0.8, "ari": 0.7}, "attacked": {"acc": 0.2, "nmi": 0.1, "ari": 0.0}}
    for protocol in ("paper", "strict"):
        write(("nm", "comvc", "gan-both", protocol, "seed0.json"),
              {**scores, "protocol": protocol, "settings": {"eps": 0.3, "protocol": protocol}})
    # the earlier layout (no protocol folder) held the samples and the BatchNorm mode apart
    write(("nm", "simvc", "gan-both", "seed0.json"),
          {**scores, "protocol": "paper", "settings": {"eps": 0.3, "protocol": "paper", "target_batchnorm": "eval"}})
    write(("nm", "simvc", "pgd", "seed0.json"),
          {**scores, "protocol": "heldout", "settings": {"eps": 0.3, "protocol": "heldout", "target_batchnorm": "eval"}})
    write(("nm", "comvc", "clean", "seed0.json"), {"clean": scores["clean"]})
    tidy = tables.collect(tmp_path)
    got = set(zip(tidy["model"], tidy["attack"], tidy["protocol"]))
    assert got == {("comvc", "gan-both", "paper"), ("comvc", "gan-both", "strict"), ("comvc", "none", "strict"),
                   ("simvc", "gan-both", "paper-running-bn"), ("simvc", "pgd", "strict")}
    # a file whose folder names another protocol than it holds is an error, not a silent mix
    write(("nm", "comvc", "pgd", "strict", "seed0.json"), {**scores, "protocol": "paper", "settings": {"eps": 0.3}})
    with pytest.raises(ValueError, match="strict.*folder.*paper"):
        tables.collect(tmp_path)
