"""benchmarks/estimate_run.py prices the jobs a dry run lists at the CPU seconds measured for them."""
import importlib.util
import json

from conftest import ROOT

spec = importlib.util.spec_from_file_location("estimate_run", ROOT / "benchmarks" / "estimate_run.py")
estimate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(estimate)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(folder, key, cpu):
    path = folder / f"{key}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"99.0\t0:01:39\t1\t1\t1\t1\t0\t0\t50\t{cpu}\n")


def test_a_job_is_keyed_by_its_benchmark_path_below_benchmarks():
    assert estimate.job_key("/x/res ults/benchmarks/03_attack/nf-comvc-gan-both-paper-seed1.tsv") == \
        "03_attack/nf-comvc-gan-both-paper-seed1"
    assert estimate.groups_of("03_attack/nf-comvc-gan-both-paper-seed1") == [("03_attack", "nf"), ("03_attack",)]


def test_measured_seconds_are_the_cpu_time_column_and_later_folders_win(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    write_benchmark(old, "02_train/nf-comvc-seed0", 40.0)
    write_benchmark(old, "02_train/nf-eamc-seed0", 70.0)
    write_benchmark(new, "02_train/nf-comvc-seed0", 30.5)
    seconds = estimate.measured_seconds([old, new], table=False)
    assert seconds == {"02_train/nf-comvc-seed0": 30.5, "02_train/nf-eamc-seed0": 70.0}


def test_a_job_costs_its_measurement_else_the_median_of_its_stage_and_dataset():
    seconds = {"03_attack/nf-comvc-gan-both-paper-seed0": 100.0, "03_attack/nf-eamc-gan-both-paper-seed0": 140.0,
               "03_attack/nf-sem-gan-both-paper-seed0": 400.0, "03_attack/pm-comvc-gan-both-paper-seed0": 10.0}
    jobs = [("attack", "03_attack/nf-comvc-gan-both-paper-seed0", 1),   # measured: 100
            ("attack", "03_attack/nf-comvc-gan-both-paper-seed1", 1),   # NF attacks' median: 140
            ("attack", "03_attack/nm-comvc-gan-both-paper-seed0", 1),   # no NoisyMNIST yet: all attacks' median, 120
            ("evaluate", "06_evaluate/evaluate", 1),                    # nothing to go by
            ("all", None, 1)]
    priced = estimate.price(jobs, seconds)
    assert priced["attack"] == [3, 1, 100.0 + 140.0 + 120.0, 0]
    assert priced["evaluate"] == [1, 0, 0.0, 1] and priced["all"] == [1, 0, 0.0, 1]


def test_a_metrics_folder_gives_each_training_and_attack_job_its_own_seconds(tmp_path):
    runs = {"nf/comvc/clean/seed1.json": {"train_seconds": 33.5, "clean": {"acc": 0.6}},
            "nf/comvc/gan-both/paper/seed1.json": {"seconds": 61.0},
            "nf/comvc/pgd/strict/seed0.json": {"seconds": 12.0},
            "scorecard.json": {"seconds": 5.0},                    # not a job's record
            "nf/eamc/clean/seed0.json": {"clean": {"acc": 0.5}}}   # no timing: left to the medians
    for name, record in runs.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(json.dumps(record))
    assert estimate.metrics_seconds(tmp_path) == {"02_train/nf-comvc-seed1": 33.5,
                                                  "03_attack/nf-comvc-gan-both-paper-seed1": 61.0,
                                                  "03_attack/nf-comvc-pgd-strict-seed0": 12.0}
