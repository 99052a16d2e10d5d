"""Aggregation of per-run metric files, and the paper's Table 1 as data."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from robustmvc import data, registry, tables
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
    t1 = tables.table1(tables.collect(results), paper)
    cell = t1[(t1.model == "comvc") & (t1.dataset == "noisymnist") & (t1.phase == "post") & (t1.metric == "acc")].iloc[0]
    assert cell["paper"] == 0.31 and math.isclose(cell["diff"], 0.4 - 0.31)
    html = tables.table1_html(t1, tolerance=0.05, scale="test")
    assert "paper 0.31 (+0.09)" in html and "test" in html
    # +0.09 above the paper after the attack, tolerance 0.05: the first shade of "the attack was weaker here"
    assert ("<td class='weaker1'>0.40&plusmn;0.14<br><span class='seeds'>0.30 0.50</span><br><span class='paper'>"
            "paper 0.31 (+0.09)") in html
    assert html.count("class='empty'") > 0  # simvc has no noisymnist cell, comvc no noisyfashion cell
    for words in tables.SHADE_WORDS.values():  # the legend says what each side of each row's scale means
        assert words in html


def test_table1_shading_is_signed_and_missing_paper_values_say_why():
    assert tables.shade(0.03, 0.05) == "near" and tables.shade(-0.05, 0.05, "post") == "near"
    # before the attack a difference is the clean accuracy's; after it, the attack's strength
    assert [tables.shade(d, 0.05) for d in (0.1, 0.2, 0.5)] == ["higher1", "higher2", "higher3"]
    assert [tables.shade(d, 0.05) for d in (-0.1, -0.2, -0.5)] == ["lower1", "lower2", "lower3"]
    assert [tables.shade(d, 0.05, "post") for d in (0.1, -0.5)] == ["weaker1", "stronger3"]
    paper = tables.load_paper(ROOT / "config" / "paper_table1.yaml")
    notes = paper.set_index(["model", "dataset", "phase"])
    assert notes.loc[("comvc", "patchedmnist", "post"), "acc_note"] == tables.ILLEGIBLE
    assert notes.loc[("ardmvc", "noisymnist", "pre"), "acc_note"] == tables.NOT_REPORTED
    assert notes.loc[("ardmvc", "noisymnist", "post"), "acc_note"] == ""
    tidy = pd.DataFrame(
        [["noisymnist", "ardmvc", 0, "gan-both", "paper", 0.3, ph, 0.5, 0.4, 0.3] for ph in ("pre", "post")]
        + [["demo", "comvc", 0, "gan-both", "paper", 0.3, ph, 0.5, 0.4, 0.3] for ph in ("pre", "post")],
        columns=tables.COLUMNS)
    html = tables.table1_html(tables.table1(tidy, paper), 0.05, "test")
    assert html.count("not reported in the paper") == 3 + 2 + 6  # ardmvc pre, its post NMI/ARI, the demo rows
    assert "ill." not in html  # spelled out where a value is illegible (test_table1_spells_out...)
    assert "paper 0.90 (-0.40)" in html
    assert html.count(tables.NO_PAPER_STRICT) == 0  # paper protocol only: no strict row to explain


def test_paper_table_loads_and_names_only_known_models_and_datasets():
    paper = tables.load_paper(ROOT / "config" / "paper_table1.yaml")
    assert set(paper["model"]) <= set(registry.names())
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


def test_collect_reads_the_configured_runs_and_lists_the_rest_as_ignored(results):
    # a stale file: a seed the config no longer names, with a score that would move the mean
    _write(results, "noisymnist", "comvc", "clean", 9, (0.1, 0.1, 0.1))
    runs = ["noisymnist/comvc/gan-both/seed0.json", "noisymnist/comvc/gan-both/seed1.json",
            "noisymnist/comvc/clean/seed0.json", "noisyfashion/simvc/gan-both/seed0.json"]
    everything = tables.collect(results)
    assert 9 in set(everything["seed"]) and everything.attrs["ignored"] == []
    tidy = tables.collect(results, runs)
    assert set(tidy["seed"]) == {0, 1} and len(tidy) == len(everything) - 1
    assert tidy.attrs["ignored"] == ["noisymnist/comvc/clean/seed9.json"]
    assert tables.summarize(tidy).query("attack == 'none'")["acc_mean"].tolist() == [0.9]
    assert list(tables.run_provenance(results, runs)["run"]) == [r.removesuffix(".json") for r in sorted(runs)]
    with pytest.raises(ValueError, match="no metrics file.*seed2"):
        tables.collect(results, runs + ["noisymnist/comvc/clean/seed2.json"])
    with pytest.raises(ValueError, match="relative"):
        tables.collect(results, [str(results / "metrics" / runs[0])])


def test_collect_refuses_runs_of_other_builds_or_checkpoints(results):
    def lineage(path, **made):
        f = results / "metrics" / path
        f.write_text(json.dumps({**json.loads(f.read_text()), "lineage": made}))

    build = {"dataset": "noisymnist", "samples": "a1", "split": "b1"}
    lineage("noisymnist/comvc/clean/seed0.json", data=build, checkpoint="c0")
    lineage("noisymnist/comvc/gan-both/seed0.json", data=build, checkpoint="c0")
    lineage("noisymnist/comvc/gan-both/seed1.json", data=build, checkpoint="c1")
    assert len(tables.collect(results)) == 7
    lineage("noisymnist/comvc/gan-both/seed1.json", data={**build, "split": "b2"}, checkpoint="c1")
    with pytest.raises(ValueError, match="different builds or splits of noisymnist"):
        tables.collect(results)
    lineage("noisymnist/comvc/gan-both/seed1.json", data=build, checkpoint="c1")
    lineage("noisymnist/comvc/gan-both/seed0.json", data=build, checkpoint="c-old")
    with pytest.raises(ValueError, match="another checkpoint of comvc"):
        tables.collect(results)


# ---------------------------------------------------------------------------------------------
# Paired comparisons. Tidy frames are built by hand (`_tidy`) or read from metric files written in the
# layout `{results}/metrics/{dataset}/{model}/{variant}/{protocol}/seed{seed}.json` (`_write_run`).

import pandas as pd  # noqa: E402

from robustmvc import plots  # noqa: E402


def _tidy(*runs):
    """Runs as (dataset, model, seed, attack, protocol, eps, pre_acc, post_acc[, sample_set]) -> tidy rows."""
    rows = []
    for run in runs:
        dataset, model, seed, attack, protocol, eps, pre, post, *sample_set = run
        for phase, acc in (("pre", pre), ("post", post)):
            rows.append({"dataset": dataset, "model": model, "seed": seed, "attack": attack, "protocol": protocol,
                         "eps": eps, "phase": phase, "acc": acc, "nmi": acc, "ari": acc,
                         **({"sample_set": sample_set[0]} if sample_set else {})})
    return pd.DataFrame(rows)


def _write_run(root, dataset, model, variant, protocol, seed, pre, post, **extra):
    f = root / "metrics" / dataset / model / variant / protocol / f"seed{seed}.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"clean": {"acc": pre, "nmi": pre, "ari": pre},
                             "attacked": {"acc": post, "nmi": post, "ari": post}, "protocol": protocol, **extra}))


def test_pair_refuses_runs_without_a_partner_and_names_them():
    tidy = _tidy(("nm", "comvc", 0, "gan-both", "paper", 0.3, 0.9, 0.3), ("nm", "comvc", 1, "gan-both", "paper", 0.3, 0.9, 0.7),
                 ("nm", "comvc", 0, "gan-com", "paper", 0.3, 0.9, 0.4))
    sides = {"both": {"attack": "gan-both", "phase": "post"}, "com": {"attack": "gan-com", "phase": "post"}}
    with pytest.raises(ValueError, match=r"nm comvc seed 1 \(paper protocol, eval samples\): both but no com"):
        tables.pair(tidy, sides)
    kept = tables.pair(tidy, sides, drop_unpaired=True)
    assert kept[["seed", "both", "com"]].values.tolist() == [[0, 0.3, 0.4]]
    assert len(kept.attrs["unpaired"]) == 1
    # a side that holds two rows per unit (here: two budgets under one selection) is refused
    twice = pd.concat([tidy, _tidy(("nm", "comvc", 0, "gan-com", "paper", 0.1, 0.9, 0.8))])
    with pytest.raises(ValueError, match="several rows"):
        tables.pair(twice, sides, drop_unpaired=True)


def test_seed_rule_the_ablation_compares_only_seeds_attacked_by_every_objective():
    """gan-com and gan-con ran on seed 0 only, gan-both on seeds 0 and 1 (`extra_variants_seeds: first`).
    The old ablation set the two-seed gan-both mean (0.5) beside the seed-0 com/con values (0.4, 0.45) and
    found both terms weaker than either alone; on seed 0 alone, both (0.3) is the strongest."""
    tidy = _tidy(("nm", "comvc", 0, "gan-both", "paper", 0.3, 0.9, 0.3), ("nm", "comvc", 1, "gan-both", "paper", 0.3, 0.9, 0.7),
                 ("nm", "comvc", 0, "gan-com", "paper", 0.3, 0.9, 0.4), ("nm", "comvc", 0, "gan-con", "paper", 0.3, 0.9, 0.45))
    mixed = tidy[tidy.phase == "post"].groupby("attack")["acc"].mean()   # the old, unpaired means
    assert mixed["gan-both"] > min(mixed["gan-com"], mixed["gan-con"])
    points = tables.ablation_points(tidy)
    assert points[["seed", "gan-both", "gan-com", "gan-con", "clean"]].values.tolist() == [[0, 0.3, 0.4, 0.45, 0.9]]
    assert points["gan-both"].mean() < min(points["gan-com"].mean(), points["gan-con"].mean())
    assert plots.ablation(tidy) is not None


def test_sample_set_rule_runs_scored_on_other_samples_never_sit_side_by_side():
    """The old black-box table set the black-box run's pre (scored on the held-out part of the eval half)
    beside gan-both on the whole eval half: 0.6 clean beside a gan-both post of 0.2 from other samples.
    With the sample sets recorded, the black-box run has no gan-both partner and the table says so."""
    tidy = _tidy(("nm", "comvc", 0, "gan-both", "paper", 0.3, 0.9, 0.2, "eval"),
                 ("nm", "comvc", 0, "whitebox", "paper", 0.3, 0.6, 0.3, "heldout"),
                 ("nm", "comvc", 0, "blackbox", "paper", 0.3, 0.6, 0.5, "heldout"))
    old = tidy[tidy.phase == "post"].set_index("attack")["acc"]
    assert len(old) == 3   # the old table had one row with all three attacks
    runs = tables.attack_comparison(tidy, ["gan-both", "whitebox", "blackbox"], "paper")
    assert runs.empty and "no whitebox, blackbox" in runs.attrs["unpaired"][0]
    # the two run on the same samples do pair
    pair = tables.attack_comparison(tidy, ["whitebox", "blackbox"], "paper")
    assert pair[["clean", "whitebox", "blackbox"]].values.tolist() == [[0.6, 0.3, 0.5]]


def test_protocol_rule_paper_and_strict_runs_are_never_mixed():
    """The old related notebook averaged every file of an attack whatever its protocol: AR-DMVC-AM's
    black-box run under the strict protocol (post 0.7) beside the white-box twin under the paper protocol
    (post 0.1) reads as 'the black-box attack fails where the white-box one breaks the model' - a
    difference of protocols, not of attacks. Paired, only the strict twin (0.65) stands beside it."""
    tidy = _tidy(("nm", "ardmvc-am", 0, "whitebox", "paper", 0.3, 0.7, 0.1),
                 ("nm", "ardmvc-am", 0, "whitebox", "strict", 0.3, 0.72, 0.65),
                 ("nm", "ardmvc-am", 0, "blackbox", "strict", 0.3, 0.72, 0.7))
    old = tidy[tidy.phase == "post"].groupby("attack")["acc"].mean()
    assert old["whitebox"] < 0.4 < old["blackbox"]
    strict = tables.attack_comparison(tidy, ["whitebox", "blackbox"], "strict")
    assert strict[["whitebox", "blackbox"]].values.tolist() == [[0.65, 0.7]]
    paper = tables.attack_comparison(tidy, ["blackbox", "whitebox"], "paper")
    assert paper.empty and "only whitebox" in paper.attrs["unpaired"][0]


def test_model_and_dataset_rule_worst_attack_takes_only_the_models_own_runs(tmp_path):
    """The worst attack of (dataset, model, seed, protocol) is over attacks on that model and dataset only:
    a transfer row aimed at another target, or the same model on another dataset, must not lower it."""
    tidy = _tidy(("nm", "comvc", 0, "gan-both", "paper", 0.3, 0.9, 0.3), ("nm", "comvc", 0, "pgd", "paper", 0.3, 0.9, 0.2),
                 ("nm", "comvc", 0, "gan-both-eps0.1", "paper", 0.1, 0.9, 0.05),   # another budget: not the same threat
                 ("nm", "comvc", 0, "embedding", "paper", np.nan, 0.9, 0.25),
                 ("nf", "comvc", 0, "gan-both", "paper", 0.15, 0.6, 0.5),
                 ("nm", "sem", 0, "gan-both", "paper", 0.3, 0.7, 0.6))
    (tmp_path / "transfer").mkdir()
    pd.DataFrame([{"dataset": "nm", "surrogate": s, "target": t, "seed": 0, "surrogate_seed": 0, "protocol": "paper",
                   "pre_acc": 0.9 if t == "comvc" else 0.7, "pre_nmi": 0, "pre_ari": 0,
                   "post_acc": acc, "post_nmi": 0, "post_ari": 0}
                  for s, t, acc in (("comvc", "comvc", 0.3), ("comvc", "sem", 0.01), ("sem", "comvc", 0.15),
                                    ("sem", "sem", 0.6))]).to_csv(tmp_path / "transfer" / "nm.csv", index=False)
    moved = tables.transfer_tidy(tmp_path)
    worst = tables.worst_attack(tidy, moved).set_index(["dataset", "model"])
    assert worst.loc[("nm", "comvc"), ["worst_acc", "worst_attack", "attacks"]].tolist() == [0.15, "transfer-from-sem", 4]
    assert worst.loc[("nm", "sem"), ["worst_acc", "worst_attack"]].tolist() == [0.01, "transfer-from-comvc"]
    assert worst.loc[("nf", "comvc"), ["worst_acc", "worst_attack"]].tolist() == [0.5, "gan-both"]
    # without a recorded protocol the transfer rows pair with nothing: the worst case is the model's own
    legacy = moved.assign(protocol="transfer")
    assert tables.worst_attack(tidy, legacy).set_index(["dataset", "model"]).loc[("nm", "comvc"), "worst_attack"] == "pgd"


def test_seed_rule_eps_sweep_sensitivity_and_transfer_grid_use_common_seeds(tmp_path):
    """Each figure averages over the seeds present at every point: seed 1 (run at the main budget or grid
    point only) would otherwise pull one point and not the others."""
    tidy = _tidy(("nm", "comvc", 0, "gan-both", "paper", 0.3, 0.9, 0.3), ("nm", "comvc", 1, "gan-both", "paper", 0.3, 0.9, 0.7),
                 ("nm", "comvc", 0, "gan-both-eps0.1", "paper", 0.1, 0.9, 0.8))
    points = plots.eps_points(tidy, ["nm"])
    assert sorted(zip(points["eps"], points["acc"])) == [(0.0, 0.9), (0.1, 0.8), (0.3, 0.3)]
    assert "seed 1" in points.attrs["unpaired"][0]

    for lam, gam, seed, post in ((0.1, 1, 0, 0.5), (0.1, 1, 1, 0.9), (1, 1, 0, 0.4)):
        f = tmp_path / "sensitivity" / "nf" / f"lambda{lam}-gamma{gam}" / "paper" / f"seed{seed}.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"clean": {"acc": 0.6, "nmi": 0, "ari": 0}, "attacked": {"acc": post, "nmi": 0, "ari": 0},
                                 "settings": {"eps": 0.15}}))
    grid = tables.sensitivity_grid(tables.collect_sensitivity(tmp_path)).set_index(["lambda", "gamma"])
    assert grid["post_acc"].to_dict() == {(0.1, 1.0): 0.5, (1.0, 1.0): 0.4} and set(grid["seeds"]) == {1}
    assert plots.sensitivity_heatmap(grid.reset_index()) is not None

    moved = _tidy(*[("nm", t, s, f"transfer-from-{g}", "paper", np.nan, 0.9, acc)
                    for t, s, g, acc in (("sem", 0, "comvc", 0.2), ("sem", 0, "sem", 0.6), ("sem", 1, "sem", 0.9))])
    grid = tables.transfer_grid(moved).set_index("surrogate")
    assert grid["post_acc"].to_dict() == {"comvc": 0.2, "sem": 0.6}


def test_table1_shows_every_seed_under_each_protocol():
    paper = tables.load_paper(ROOT / "config" / "paper_table1.yaml")
    tidy = _tidy(("noisymnist", "comvc", 1, "gan-both", "paper", 0.3, 1.0, 0.5), ("noisymnist", "comvc", 0, "gan-both", "paper", 0.3, 0.9, 0.3),
                 ("noisymnist", "comvc", 0, "gan-both", "strict", 0.3, 0.88, 0.6))
    t1 = tables.table1(tidy, paper).set_index(["protocol", "phase", "metric"])
    assert t1.loc[("paper", "post", "acc"), "values"] == [0.3, 0.5] and t1.loc[("paper", "post", "acc"), "paper"] == 0.31
    assert t1.loc[("strict", "post", "acc"), "values"] == [0.6] and np.isnan(t1.loc[("strict", "post", "acc"), "paper"])
    html = tables.table1_html(t1.reset_index(), 0.05, "test")
    assert "<span class='seeds'>0.30 0.50</span>" in html and "post (strict)" in html and "pre (paper)" in html


def test_attack_records_read_the_protocol_layout(tmp_path):
    _write_run(tmp_path, "nm", "comvc", "blackbox", "strict", 2, 0.9, 0.4, device="cpu", queries=1000,
               queries_per_sample=40.0, seconds=3.5)
    rec = tables.attack_records(tmp_path)
    assert rec.iloc[0][["dataset", "model", "attack", "protocol", "seed", "queries", "device"]].tolist() == [
        "nm", "comvc", "blackbox", "strict", 2, 1000, "cpu"]


def test_kl_directions_are_read_from_the_folder_and_compared_on_common_seeds(tmp_path):
    """The code-direction run of seed 1 has no paper-direction partner: left out, so the paper side's
    mean (0.5) is not set beside a two-seed code mean (0.6)."""
    for direction, seed, post in (("paper", 0, 0.5), ("code", 0, 0.4), ("code", 1, 0.8)):
        f = tmp_path / "sensitivity" / "nf" / f"lambda0.1-gamma1-kl{direction}" / f"seed{seed}.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"clean": {"acc": 0.6, "nmi": 0, "ari": 0}, "attacked": {"acc": post, "nmi": 0, "ari": 0},
                                 "protocol": "paper", "settings": {"eps": 0.15}}))
    sens = tables.collect_sensitivity(tmp_path)
    assert set(zip(sens["kl_direction"], sens["gamma"])) == {("paper", 1.0), ("code", 1.0)}
    grid = tables.sensitivity_grid(sens)
    assert grid[["lambda", "gamma", "post_acc", "seeds"]].values.tolist() == [[0.1, 1.0, 0.5, 1]]
    both = tables.kl_direction_table(sens)
    assert both[["paper", "code", "seeds"]].values.tolist() == [[0.5, 0.4, 1]]


# ---------------------------------------------------------------------------------------------
# Names and paths read in one place: attack variants, sweep points, and the files the notebooks show.

from robustmvc import variants  # noqa: E402


@pytest.mark.parametrize("name, parsed", [
    ("gan-both", ("gan", "both", None)), ("gan-com-eps0.1", ("gan", "com", 0.1)), ("gan-con", ("gan", "con", None)),
    ("pgd", ("pgd", "both", None)), ("pgd-eps0.05", ("pgd", "both", 0.05)), ("blackbox", ("blackbox", "both", None)),
    ("whitebox", ("whitebox", "both", None)), ("embedding", ("embedding", "both", None)),
])
def test_a_variant_name_splits_into_attack_objective_budget_and_back(name, parsed):
    assert tuple(variants.parse(name)) == parsed
    assert variants.name(*parsed) == name
    assert variants.base(name) == name.split("-eps")[0] and variants.is_budget_point(name) == ("-eps" in name)
    assert variants.fits_attacker(name) == (not name.startswith("pgd"))


@pytest.mark.parametrize("bad", ["gan", "gan-all", "fgsm", "gan-both-eps", "pgd-com", "clean", "none"])
def test_a_name_no_rule_runs_is_refused_naming_the_variants(bad):
    with pytest.raises(ValueError, match=f"{bad!r} is not an attack variant; write one of gan-both"):
        variants.parse(bad)


def test_the_rules_constraints_split_every_variant_between_the_fitted_and_pgd_rules():
    """The attack rule (it saves the attacker) and the PGD rule must claim every variant exactly once."""
    import re as _re

    for name in ["gan-both", "gan-com-eps0.1", "pgd", "pgd-eps0.2", "blackbox", "embedding-eps0.3", "whitebox"]:
        claims = [bool(_re.fullmatch(p, name)) for p in (variants.FITTED_PATTERN, variants.UNFITTED_PATTERN)]
        assert claims.count(True) == 1 and claims[0] == (variants.parse(name).attack != "pgd"), name


@pytest.mark.parametrize("folder, point", [
    ("lambda1-gamma0.1-klcode", (1.0, 0.1, "code")), ("lambda0.5-gamma2-klpaper", (0.5, 2.0, "paper")),
    ("lambda1e-05-gamma1", (1e-05, 1.0, "paper")),   # the earlier layout named no direction: the paper's
])
def test_a_sensitivity_folder_names_its_point(folder, point):
    assert tables.sensitivity_point(folder) == point


def test_a_folder_that_is_no_sensitivity_point_is_refused():
    with pytest.raises(ValueError, match="'gamma1-lambda1' is not a sensitivity point"):
        tables.sensitivity_point("gamma1-lambda1")


def test_comparisons_pair_per_protocol_in_the_tables_order_and_average_over_paired_seeds():
    tidy = _tidy(("nm", "comvc", 1, "gan-both", "strict", 0.3, 0.8, 0.4), ("nm", "comvc", 1, "embedding", "strict", 0.3, 0.8, 0.6),
                 ("nm", "comvc", 0, "gan-both", "paper", 0.3, 0.9, 0.2), ("nm", "comvc", 0, "embedding", "paper", 0.3, 0.9, 0.5),
                 ("nm", "comvc", 2, "gan-both", "paper", 0.3, 0.7, 0.1), ("nm", "comvc", 2, "embedding", "paper", 0.3, 0.7, 0.3),
                 ("nm", "comvc", 3, "gan-both", "paper", 0.3, 0.6, 0.1),   # no embedding run on seed 3: left out
                 ("nm", "simvc", 0, "gan-both", "paper", 0.3, 0.6, 0.1))  # the reference alone: not in the comparison
    found = tables.comparisons(tidy, ["gan-both", "embedding"])
    assert [c["protocol"] for c in found] == ["paper", "strict"]
    paper = found[0]
    assert paper["runs"]["seed"].tolist() == [0, 2] and "sample_set" not in paper["runs"]
    assert paper["means"].loc[("nm", "comvc")].round(6).tolist() == [0.8, 0.15, 0.4, 2]
    assert len(paper["unpaired"]) == 1 and "seed 3" in paper["unpaired"][0]
    assert found[1]["means"].loc[("nm", "comvc"), "embedding"] == 0.6 and not found[1]["unpaired"]
    assert tables.comparisons(tidy, ["gan-both", "blackbox"]) == []


def test_detection_table_reads_one_protocol_with_a_column_per_detector(tmp_path):
    def write(model, variant, protocol, auc):
        f = tmp_path / "detection" / "nm" / model / variant / protocol / "seed0.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"dataset": "nm", "model": model, "auc": auc}))

    write("sem", "gan-both", "paper", {"iforest-h": 0.5, "pca-input": 0.9})
    write("comvc", "embedding", "paper", {"iforest-h": 0.7})
    write("comvc", "gan-both", "strict", {"iforest-h": 0.1, "pca-input": 0.2})
    det = tables.detection_table(tmp_path, "paper")
    assert det[["model", "attack"]].values.tolist() == [["comvc", "embedding"], ["sem", "gan-both"]]  # table order
    assert det["iforest-h"].tolist() == [0.7, 0.5] and np.isnan(det["pca-input"].iloc[0])
    assert tables.detection_table(tmp_path, "heldout").empty


def test_transfer_clean_is_each_targets_mean_clean_acc(tmp_path):
    moved = _tidy(("nm", "comvc", 0, "transfer-from-sem", "paper", np.nan, 0.9, 0.3),
                  ("nm", "comvc", 1, "transfer-from-sem", "paper", np.nan, 0.7, 0.3),
                  ("nm", "sem", 0, "transfer-from-comvc", "paper", np.nan, 0.6, 0.1))
    clean = tables.transfer_clean(moved)
    assert clean.loc[("nm", "paper")].round(6).to_dict() == {"comvc": 0.8, "sem": 0.6}


def test_example_figures_take_each_models_lowest_seed_of_one_protocol(tmp_path):
    for model, protocol, seed in (("comvc", "paper", 10), ("comvc", "paper", 2), ("eamc", "paper", 0),
                                  ("comvc", "strict", 0), ("sem", "paper", 0)):
        f = tmp_path / "attacks" / "nm" / model / "gan-both" / protocol / f"seed{seed}.png"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"png")
    (tmp_path / "attacks" / "nm" / "sem" / "pgd" / "paper").mkdir(parents=True)
    (tmp_path / "attacks" / "nm" / "sem" / "pgd" / "paper" / "seed0.png").write_bytes(b"png")
    figures = tables.example_figures(tmp_path, "paper")
    assert list(figures) == [("nm", "eamc"), ("nm", "comvc"), ("nm", "sem")]   # the paper's model order
    assert figures[("nm", "comvc")].name == "seed2.png" and "gan-both" in figures[("nm", "sem")].parts


def test_tsne_runs_name_the_first_seeds_checkpoint_and_generator_and_say_when_one_is_missing(tmp_path):
    tidy = _tidy(("nm", "comvc", 1, "gan-both", "paper", 0.3, 0.9, 0.3), ("nm", "comvc", 0, "gan-both", "paper", 0.3, 0.9, 0.3),
                 ("nf", "sem", 0, "gan-both", "paper", 0.3, 0.9, 0.3), ("nm", "sem", 0, "pgd", "paper", 0.3, 0.9, 0.3))
    for f in (tmp_path / "models" / "nm" / "comvc" / "seed0.pt", tmp_path / "attacks" / "nm" / "comvc" / "gan-both" / "paper" / "seed0.pt"):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"")
    runs = tables.tsne_runs(tidy, tmp_path, ["comvc", "sem"], "paper")
    assert [(r["dataset"], r["model"], r["seed"], r["missing"]) for r in runs] == [("nf", "sem", 0, True),
                                                                                    ("nm", "comvc", 0, False)]
    assert runs[1]["generator"] == tmp_path / "attacks" / "nm" / "comvc" / "gan-both" / "paper" / "seed0.pt"


def test_training_radius_is_the_mitigators_pgd_eps_else_adversarial_trainings():
    assert tables.training_radius({"models": {"ardmvc": {"pgd_eps": 0.2}, "ardmvc-am": {"pgd_eps": 0.1}}}) == 0.1
    assert tables.training_radius({"models": {"ardmvc": {"pgd_eps": 0.2}, "ardmvc-am": None}}) == 0.2
    assert tables.training_radius({"models": {"comvc": {}}}) is None and tables.training_radius({}) is None


def test_training_curves_draw_a_panel_for_what_the_history_holds():
    """One figure function for every model: a baseline gets its terms; adversarial training adds the clean
    beside the adversarial loss, the mitigator its KL, ALRDC its alignment and attacker terms."""
    def hist(**terms):
        return [{"epoch": e, "phase": "main", "seconds": 1.0, "total": 9.0, **{k: v / e for k, v in terms.items()}}
                for e in (1, 2, 3)]

    def panels(history):
        fig = plots.training_curves(history, "t")
        return [(ax.get_ylabel(), len(ax.get_lines())) for ax in fig.get_axes()]

    assert panels(hist(ddc=1.0, contrast=2.0)) == [("loss terms", 2)]
    adversarial = plots.training_curves(hist(ddc=1.0, contrast=2.0, adv_ddc=0.5, adv_contrast=0.25, kl=0.1), "t")
    assert [(ax.get_ylabel(), len(ax.get_lines())) for ax in adversarial.get_axes()] == [
        ("loss terms", 2), ("clean vs\nadversarial loss", 2), (plots.DEFENSE_TERMS["kl"], 1)]
    clean, adv = adversarial.get_axes()[1].get_lines()
    assert np.allclose(clean.get_ydata(), [3.0, 1.5, 1.0]) and np.allclose(adv.get_ydata(), [0.75, 0.375, 0.25])
    assert [label for label, _ in panels(hist(ddc=1.0, mi_align=-0.1, perturber_kl=0.3))] == [
        "loss terms", plots.DEFENSE_TERMS["mi_align"], plots.DEFENSE_TERMS["perturber_kl"]]
    with pytest.raises(ValueError, match="history is empty"):
        plots.training_curves([])


def test_table1_spells_out_missing_values_explains_strict_rows_and_names_the_main_differences():
    paper = tables.load_paper(ROOT / "config" / "paper_table1.yaml")
    rows = []
    # CoMVC on NoisyMNIST: after the paper's attack 0.64 against the paper's 0.31 (an attack weaker than published),
    # under the strict protocol at chance (0.13); on PatchedMNIST the paper's post-attack ACC is illegible
    for dataset, protocol, pre, post in (("noisymnist", "paper", 0.84, 0.64), ("noisymnist", "strict", 0.84, 0.13),
                                         ("patchedmnist", "paper", 0.9, 0.8)):
        rows += [[dataset, "comvc", 0, "gan-both", protocol, 0.3, ph, v, v, v] for ph, v in (("pre", pre), ("post", post))]
    t1 = tables.table1(pd.DataFrame(rows, columns=tables.COLUMNS), paper)
    html = tables.table1_html(t1, 0.05, "test")
    assert "illegible in the paper" in html and "ill." not in html
    assert html.count(tables.NO_PAPER_STRICT) == 2  # the strict pre and post rows
    findings = tables.table1_findings(t1, 0.05)
    assert "the attack was weaker here" in findings and "comvc on noisymnist, 0.64 against the paper's 0.31" in findings
    assert "comvc on noisymnist (0.13 strict, 0.64 paper protocol, chance 0.10)" in findings
    assert findings in html
