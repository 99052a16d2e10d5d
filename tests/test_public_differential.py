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
