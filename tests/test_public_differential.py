"""benchmarks/public_differential.py sets the public code's results beside ours, seed by seed."""
import argparse
import importlib.util
import json
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("public_differential", ROOT / "benchmarks" / "public_differential.py")
diff = importlib.util.module_from_spec(spec)
spec.loader.exec_module(diff)


def test_the_public_row_is_read_from_the_public_sides_json(tmp_path):
    (tmp_path / "public-noisyfashion-comvc-seed1.json").write_text(json.dumps(
        {"clean_acc": 0.7, "pre": [0.71, 0.6, 0.5], "post": [0.52, 0.4, 0.3]}))
    assert diff.public(tmp_path, "noisyfashion", "comvc", 1) == {"clean": 0.7, "pre": 0.71, "post": 0.52}
    assert diff.public(tmp_path, "noisyfashion", "comvc", 2) is None


def test_the_summary_is_mean_and_sample_sd_over_seeds_with_the_paired_drop():
    rows = [{"clean": 0.6, "pre": 0.6, "post": 0.5}, {"clean": 0.8, "pre": 0.7, "post": 0.4}]
    # clean: mean 0.7, sd sqrt(((0.1)^2 + (0.1)^2) / 1) = 0.1414; drops 0.1 and 0.3: mean 0.2, sd 0.1414
    assert diff.summary(rows) == "0.700 +- 0.141 | 0.650 +- 0.071 | 0.450 +- 0.071 (drop 0.200 +- 0.141)"
    assert diff.summary(rows[:1]) == "- | - | -"


def test_the_table_marks_a_side_that_has_not_run():
    args = argparse.Namespace(threads=1, width=16, comvc_epochs=10, ardmvc_am_epochs=3, attack_epochs=10)
    ours = {"clean": 0.62, "pre": 0.63, "post": 0.55}
    text = diff.table({("noisyfashion", "comvc"): {0: (ours, None)}}, args, "cmd")
    assert "| noisyfashion | comvc | 0 | 0.620 | 0.630 | 0.550 | (not run) | | |" in text


def test_the_difference_row_is_ours_minus_public_with_welchs_p():
    public = [{"clean": 0.6, "pre": 0.6, "post": 0.5}, {"clean": 0.8, "pre": 0.8, "post": 0.6}]
    # the same samples: no difference, p = 1
    assert diff.difference(public, public) == "clean +0.000 (p 1.00) | pre +0.000 (p 1.00) | post +0.000 (p 1.00), drop +0.000 (p 1.00)"
    # shifted by 0.3 with the same spread: t = 0.3 / sqrt(2 * 0.02 / 2) = 2.121 on 2 degrees of freedom,
    # two-sided p = 1 - 2.121 / sqrt(2 + 2.121^2) = 0.168 (Student's t with 2 df has this closed form)
    ours = [{k: v + 0.3 for k, v in r.items()} for r in public]
    assert diff.difference(ours, public).startswith("clean +0.300 (p 0.17) | pre +0.300 (p 0.17)")
    assert diff.difference(ours[:1], public) == "- | - | -"


def test_seeds_that_neither_side_ran_are_left_out_and_each_block_ends_with_the_difference():
    args = argparse.Namespace(threads=1, width=16, comvc_epochs=10, ardmvc_am_epochs=3, attack_epochs=10)
    a, b = {"clean": 0.62, "pre": 0.63, "post": 0.55}, {"clean": 0.72, "pre": 0.73, "post": 0.45}
    text = diff.table({("noisymnist", "comvc"): {0: (a, a), 1: (b, b), 2: (None, None)}}, args, "cmd")
    assert "| noisymnist | comvc | 2 |" not in text
    assert "| noisymnist | comvc | ours - public | clean +0.000 (p 1.00)" in text
