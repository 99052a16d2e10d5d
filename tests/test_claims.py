"""Verdicts on the paper's claims from per-seed paired values, and the scorecard the index page shows."""
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from robustmvc import claims, config, report, tables
from conftest import ROOT


def _tidy(*runs):
    """Runs as (dataset, model, seed, attack, pre_acc, post_acc[, protocol]) -> tidy rows."""
    rows = []
    for dataset, model, seed, attack, pre, post, *protocol in runs:
        for phase, acc in (("pre", pre), ("post", post)):
            rows.append({"dataset": dataset, "model": model, "seed": seed, "attack": attack,
                         "protocol": protocol[0] if protocol else "paper", "eps": 0.3, "phase": phase,
                         "acc": acc, "nmi": acc, "ari": acc})
    return pd.DataFrame(rows)


def _runs(model, attack, pres, posts, dataset="noisymnist", protocol="paper"):
    return [(dataset, model, s, attack, pre, post, protocol) for s, (pre, post) in enumerate(zip(pres, posts))]


def _verdict(table, claim, dataset="noisymnist", protocol="paper"):
    row = table[(table.claim == claim) & (table.dataset == dataset) & (table.protocol == protocol)]
    assert len(row) == 1, row
    return row.iloc[0]


def test_bootstrap_interval_matches_the_exact_resampling_distribution():
    values = np.array([0.05, -0.02, 0.11, 0.03, 0.2])
    # every one of the 5^5 equally likely resamples, enumerated
    exact = np.array([np.mean(c) for c in itertools.product(values, repeat=len(values))])
    low, high = claims.bootstrap_interval(values)
    assert abs(low - np.quantile(exact, 0.025)) < 0.01 and abs(high - np.quantile(exact, 0.975)) < 0.01
    # with three seeds each extreme resample has probability 1/27 > 2.5%: the interval is [min, max]
    assert np.allclose(claims.bootstrap_interval([0.1, 0.3, 0.2]), (0.1, 0.3))


@pytest.mark.parametrize("values, verdict", [
    ([0.10, 0.20, 0.15], "holds"),
    ([-0.10, -0.20, -0.05], "fails"),
    ([0.20, -0.10, 0.10], "inconclusive"),      # the interval contains 0
    ([0.30, 0.40], "inconclusive"),             # fewer than 3 seeds, however clear
])
def test_decide(values, verdict):
    got = claims.decide(values)
    assert got["verdict"] == verdict and got["seeds"] == len(values) and got["values"] == values
    assert np.isclose(got["mean"], np.mean(values))


def test_decide_refuses_nothing():
    with pytest.raises(ValueError, match="no paired seeds"):
        claims.decide([])


def test_every_verdict_of_the_mitigator_claims():
    comvc = _runs("comvc", "gan-both", [0.9] * 3, [0.2] * 3)
    # AM keeps >= 90% on every seed and beats AR-DMVC on every seed
    holds = claims.check(_tidy(*comvc, *_runs("ardmvc-am", "gan-both", [0.8] * 3, [0.78, 0.76, 0.77]),
                               *_runs("ardmvc", "gan-both", [0.8] * 3, [0.5, 0.6, 0.55])))
    assert _verdict(holds, "am-keeps")["verdict"] == "holds"
    row = _verdict(holds, "am-beats-ardmvc")
    assert row["verdict"] == "holds" and np.allclose(row["values"], [0.28, 0.16, 0.22])
    # AM loses most of its accuracy; AR-DMVC is better after the attack on every seed
    fails = claims.check(_tidy(*comvc, *_runs("ardmvc-am", "gan-both", [0.8] * 3, [0.3, 0.2, 0.25]),
                               *_runs("ardmvc", "gan-both", [0.8] * 3, [0.5, 0.6, 0.55])))
    assert _verdict(fails, "am-keeps")["verdict"] == "fails"
    assert _verdict(fails, "am-beats-ardmvc")["verdict"] == "fails"
    # two seeds with a large spread: the case that was marked True from 0.426 vs 0.379
    two = claims.check(_tidy(*comvc, *_runs("ardmvc-am", "gan-both", [0.7, 0.7], [0.73, 0.12]),
                             *_runs("ardmvc", "gan-both", [0.7, 0.7], [0.5, 0.258])))
    assert _verdict(two, "am-beats-ardmvc")["verdict"] == "inconclusive"
    # the attack does not hurt undefended CoMVC: surviving it says nothing
    unhurt = claims.check(_tidy(*_runs("comvc", "gan-both", [0.6] * 3, [0.59, 0.6, 0.58]),
                                *_runs("ardmvc-am", "gan-both", [0.6] * 3, [0.6] * 3),
                                *_runs("ardmvc", "gan-both", [0.6] * 3, [0.55] * 3)))
    assert _verdict(unhurt, "am-keeps")["verdict"] == "not informative"
    assert _verdict(unhurt, "am-beats-ardmvc")["verdict"] == "not informative"
    # both defenses at the chance floor (K = 10: 0.1 + 0.05)
    floor = claims.check(_tidy(*comvc, *_runs("ardmvc-am", "gan-both", [0.8] * 3, [0.12, 0.13, 0.11]),
                               *_runs("ardmvc", "gan-both", [0.8] * 3, [0.11, 0.1, 0.12])))
    assert _verdict(floor, "am-beats-ardmvc")["verdict"] == "not informative"


def test_every_verdict_of_the_ablation_claim():
    def ablation(both, com, con, pre=0.9):
        return claims.check(_tidy(*_runs("comvc", "gan-both", [pre] * 3, both), *_runs("comvc", "gan-com", [pre] * 3, com),
                                  *_runs("comvc", "gan-con", [pre] * 3, con)))

    assert _verdict(ablation([0.2, 0.3, 0.25], [0.4, 0.5, 0.45], [0.6, 0.35, 0.5]), "both-beats-either")["verdict"] == "holds"
    row = _verdict(ablation([0.5, 0.6, 0.55], [0.4, 0.5, 0.45], [0.6, 0.35, 0.5]), "both-beats-either")
    assert row["verdict"] == "fails" and np.allclose(row["values"], [-0.1, -0.25, -0.1])
    assert _verdict(ablation([0.3, 0.5, 0.4], [0.4, 0.4, 0.5], [0.6, 0.6, 0.6]), "both-beats-either")["verdict"] == "inconclusive"
    # NoisyMNIST at CPU scale: all three objectives at the floor, so "both beats either" is not testable
    floor = ablation([0.11, 0.12, 0.13], [0.12, 0.11, 0.14], [0.12, 0.12, 0.13])
    assert _verdict(floor, "both-beats-either")["verdict"] == "not informative"


def test_every_verdict_of_the_baselines_claim():
    hurt = _runs("comvc", "gan-both", [0.9] * 3, [0.2, 0.25, 0.3])          # loses most: holds
    held = _runs("simvc", "gan-both", [0.9] * 3, [0.85, 0.8, 0.88])         # keeps its accuracy: fails
    mixed = _runs("sem", "gan-both", [0.9] * 3, [0.2, 0.85, 0.3])           # one seed holds up: inconclusive
    floor = _runs("eamc", "gan-both", [0.12] * 3, [0.1] * 3)                 # nothing to lose
    assert _verdict(claims.check(_tidy(*hurt, *floor)), "baselines-fall")["verdict"] == "holds"
    row = _verdict(claims.check(_tidy(*hurt, *held, *mixed)), "baselines-fall")
    assert row["verdict"] == "fails" and row["model"] == "simvc" and "sem inconclusive" in row["note"]
    assert _verdict(claims.check(_tidy(*hurt, *mixed)), "baselines-fall")["verdict"] == "inconclusive"
    assert _verdict(claims.check(_tidy(*floor)), "baselines-fall")["verdict"] == "not informative"


def test_claims_are_checked_per_protocol_on_paired_seeds_only():
    """AR-DMVC ran on seeds 0 and 1, AR-DMVC-AM on 0, 1 and 2: only two seeds pair, so however clear the
    means the verdict is inconclusive, and seed 2 is named as left out. The strict protocol gets its own."""
    tidy = _tidy(*_runs("comvc", "gan-both", [0.9] * 3, [0.2] * 3), *_runs("ardmvc-am", "gan-both", [0.8] * 3, [0.7] * 3),
                 *_runs("ardmvc", "gan-both", [0.8] * 2, [0.3] * 2),
                 *_runs("comvc", "gan-both", [0.9] * 3, [0.85] * 3, protocol="strict"))
    table = claims.check(tidy)
    row = _verdict(table, "am-beats-ardmvc")
    assert row["verdict"] == "inconclusive" and row["seeds"] == 2 and "seed 2" in row["note"]
    assert _verdict(table, "baselines-fall", protocol="strict")["verdict"] == "fails"
    assert "id='claims'" in claims.claims_html(table)


def test_scorecard_reaches_the_index_page(tmp_path):
    cfg = config.load(ROOT / "config" / "config.yaml", ROOT / "config" / "cpu-scale.yaml")
    assert set(claims.left_out(cfg)) == {"regdb"}   # RegDB's folder is the user's; PatchedMNIST runs
    tidy = _tidy(*_runs("comvc", "gan-both", [0.9] * 3, [0.2, 0.25, 0.3]),
                 *_runs("comvc", "gan-both", [0.9] * 3, [0.2, 0.25, 0.3], dataset="noisyfashion", protocol="strict"))
    provenance = pd.DataFrame([{"run": "noisymnist/comvc/clean/seed0", "device": "cpu", "machine": "CPU A", "torch": "2.1",
                                "precision": "fp32", "threads": 1, "commit": "abc", "dirty": False},
                               {"run": "noisymnist/comvc/clean/seed1", "device": None, "machine": None}],
                              columns=["run", *tables.PROVENANCE])
    scale = claims.scale_summary(cfg, tidy, provenance, sizes={"patchedmnist": 3119})
    # "all" never hides a smaller source: PatchedMNIST from 10,000 MNIST digits holds 3,119 of the paper's 21,770
    assert scale["samples"] == {"noisymnist": "10,000 of the paper's 70,000", "noisyfashion": "10,000 of the paper's 70,000",
                                "patchedmnist": "3,119 (all the source holds) of the paper's 21,770"}
    assert scale["encoder_width"] == 16
    assert scale["seeds"] == {"comvc": 3} and scale["device"] == ["cpu"] and scale["eps"]["noisyfashion"] == 0.15
    card = claims.scorecard(claims.check(tidy), scale, claims.left_out(cfg))
    results = tmp_path / "results"
    (results / "metrics").mkdir(parents=True)
    (results / "metrics" / "scorecard.json").write_text(json.dumps(card))
    for stage, seconds in (("02_train", 3000.0), ("03_attack", 600.0)):
        (results / "benchmarks" / stage).mkdir(parents=True)
        (results / "benchmarks" / stage / "a.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:00\n")
    page = report.scorecard_section(results)
    assert page.count("<a href='06_evaluate/evaluate.html#claims'><b>holds</b></a>") == 2
    # per seed (pre - post) - 0.5 (pre - 1/10) = 0.5 - post; three seeds: the interval is [min, max]
    assert "+0.250 [+0.200, +0.300], 3 seeds: +0.300 +0.250 +0.200" in page
    assert "compute 1.0 h" in page and "encoder width 16" in page and "regdb" in page
    assert "With 3 seeds, <b>holds</b> means all 3 seeds agree" in page  # the rule at the seed count in use
    assert "<b>Holds</b> (2)" in page  # the bottom line above the table
    assert "noisymnist" in page and "strict" in page and "paper" in page


def _where(run, machine, commit="abc"):
    return {"run": run, "device": "cpu", "machine": machine, "torch": "2.1", "precision": "fp32", "threads": 1,
            "commit": commit, "dirty": False}


def test_machines_say_which_runs_came_from_which():
    frame = lambda *rows: pd.DataFrame(list(rows), columns=["run", *tables.PROVENANCE])  # noqa: E731
    one = claims.machines(frame(_where("d/m/clean/seed0", "CPU X"), _where("d/m/clean/seed1", "CPU X", "def")))
    assert one == [{"machine": "CPU X", "torch": "2.1", "precision": "fp32", "threads": 1, "runs": 2,
                    "commits": ["abc", "def"]}]
    assert "which" not in one[0] and report.machines_text(one).startswith("machine CPU X")
    mixed = claims.machines(frame(_where("d/m/clean/seed0", "CPU X"), _where("d/m/gan-both/paper/seed0", "GPU Y"),
                                  {"run": "d/m/clean/seed1", "machine": None}))
    assert [(m["machine"], m["runs"], m["which"]) for m in mixed] == [
        ("CPU X", 1, ["d/m/clean/seed0"]), ("GPU Y", 1, ["d/m/gan-both/paper/seed0"]),
        ("not recorded", 1, ["d/m/clean/seed1"])]
    text = report.machines_text(mixed)
    assert "3 machines" in text and "d/m/gan-both/paper/seed0" in text


@pytest.mark.parametrize("values, why, needed", [
    ([0.3], claims.TOO_FEW, 3),                  # one seed: the rule's minimum decides it if the sign holds
    ([0.3, 0.4], claims.TOO_FEW, 3),
    ([0.3, -0.1], claims.TOO_FEW, None),         # too few and already disagreeing: the estimate below
    ([0.2, -0.1, 0.1], claims.NOISE, None),
])
def test_an_inconclusive_verdict_says_why_and_how_many_seeds_could_decide_it(values, why, needed):
    got = claims.decide(values)
    assert got["verdict"] == "inconclusive" and got["why"] == why
    v = np.asarray(values)
    if needed is None:  # normal approximation: the n at which 1.96 sd / sqrt(n) falls below |mean|
        needed = max(3, len(v) + (len(v) >= 3), int(np.ceil((1.959964 * v.std(ddof=1) / abs(v.mean())) ** 2)))
    assert got["seeds_needed"] == needed
    assert "verdict" in claims.decide([0.1, 0.2, 0.3]) and "why" not in claims.decide([0.1, 0.2, 0.3])


def test_the_rule_at_three_seeds_means_all_three_agree_in_sign():
    # the claim the text makes, checked on the verdicts themselves: every sign pattern of 3 seeds
    for signs in itertools.product((1, -1), repeat=3):
        verdict = claims.decide([s * x for s, x in zip(signs, (0.1, 0.2, 0.3))])["verdict"]
        assert verdict == ("holds" if set(signs) == {1} else "fails" if set(signs) == {-1} else "inconclusive")
    assert "all 3 seeds agree" in claims.rule_meaning(3) and "outweighed" in claims.rule_meaning(5)
    # with 5 seeds one seed on the other side can be outweighed, as the text says
    assert claims.decide([0.3, 0.3, 0.3, 0.3, -0.01])["verdict"] == "holds"


def test_every_baseline_claim_on_one_seed_baselines_is_undecided_by_construction():
    tidy = _tidy(*_runs("comvc", "gan-both", [0.9] * 3, [0.8, 0.85, 0.82]),
                 *_runs("simvc", "gan-both", [0.9], [0.2]), *_runs("eamc", "gan-both", [0.9], [0.3]))
    row = _verdict(claims.check(tidy), "baselines-fall")
    assert row["verdict"] == "fails"  # CoMVC, on 3 seeds, keeps most of its accuracy: that decides it
    tidy = _tidy(*_runs("simvc", "gan-both", [0.9], [0.2]), *_runs("eamc", "gan-both", [0.9], [0.3]))
    row = _verdict(claims.check(tidy), "baselines-fall")
    assert row["verdict"] == "inconclusive" and row["why"] == claims.TOO_FEW and row["seeds_needed"] == 3
    assert "2 of 2 baselines ran fewer than 3 seeds" in row["note"]


def test_the_bottom_line_names_every_verdict_and_why():
    tidy = _tidy(*_runs("comvc", "gan-both", [0.9] * 3, [0.2, 0.25, 0.3]),
                 *_runs("ardmvc-am", "gan-both", [0.9] * 3, [0.88, 0.7, 0.86]),
                 *_runs("ardmvc", "gan-both", [0.9] * 3, [0.5, 0.8, 0.4]),
                 *_runs("simvc", "gan-both", [0.9], [0.2], dataset="noisyfashion"))
    card = claims.scorecard(claims.check(tidy), {}, {})
    text = claims.bottom_line(card["claims"], "e.html#claims")
    assert "<b>Holds</b> (1): <i>every baseline loses most of its accuracy under the attack</i> on noisymnist (paper)" in text
    assert "for <b>too few seeds</b>" in text and "noisyfashion (paper)" in text
    assert "for <b>seed noise</b>" in text and "href='e.html#claims'" in text
    assert sum(text.count(f"<b>{w}</b> (") for w in ("Holds", "Fails", "Undecided", "Not informative")) == \
        len({c["verdict"] for c in card["claims"]})
