"""The GPU lease (robustmvc.lease, config/gpu-lease.yaml) rehearsed on the CPU at demo size
(tests/lease-rehearsal.yaml): planned from the config here, run as the lent machine runs it, its archive merged
into a fresh folder, where the DAG with the same config finds every training and attack finished and plans
only the data and the reports. A lease cut short returns whole seeds only, and the plan refuses a config whose
DAG would need checkpoints the lease does not bring back."""
import json

import pytest
import yaml

from robustmvc import config, lease
from robustmvc import results as portable
from conftest import ROOT, snakemake

CONFIGS = ("config/demo.yaml", "tests/lease-rehearsal.yaml")


@pytest.fixture
def plan(tmp_path):
    path = tmp_path / "plan.json"
    lease.write_plan(config.load(*(ROOT / c for c in CONFIGS)), path)
    return path


def planned_rules(results, reports) -> dict[str, int]:
    run = snakemake("-n", "--cores", "1", "--configfile", *CONFIGS, "--config", f"results_dir={results}",
                    f"report_dir={reports}")
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    stats = run.stdout.split("Job stats:")[1].split("total")[0]
    return {line.split()[0]: int(line.split()[1]) for line in stats.splitlines()[3:] if line.strip()}


def test_the_lease_plan_is_what_the_dag_runs(plan):
    made = json.loads(plan.read_text())
    cfg = config.load(*(ROOT / c for c in CONFIGS))
    assert [(t["model"], t["seeds"]) for t in made["trainings"]] == [(m, [0, 1]) for m in ("comvc", "ardmvc", "ardmvc-am")]
    assert made["trainings"][1]["job"] == config.train_job(cfg, "ardmvc", "demo")
    assert len(made["attacks"]) == 3 * 2 * 2  # models x seeds x protocols
    assert {a["job"]["settings"]["protocol"] for a in made["attacks"]} == {"paper", "strict"}


@pytest.mark.slow
def test_a_rehearsed_lease_merged_here_leaves_the_dag_only_data_and_reports(plan, tmp_path):
    there = tmp_path / "lent" / "results"
    done = lease.run(plan, minutes=30, archive=tmp_path / "lease.tar.gz", results_dir=there, log=lambda _: None)
    assert done["trained"] == 6 and done["attacked"] == 12 and done["left"] == 0
    here, reports = tmp_path / "here" / "results", tmp_path / "here" / "reports" / "demo"
    before = planned_rules(here, reports)
    assert before["train"] == 6 and before["attack"] == 12
    portable.merge(tmp_path / "lease.tar.gz", here, reports)
    assert not list(here.glob("models/**/*.pt"))  # the checkpoints stayed on the lent machine
    assert planned_rules(here, reports) == {"prepare_data": 1, "evaluate": 1, "related": 1, "report_index": 1, "all": 1}
    # the runs' times, where the stage-time table reads them
    assert len(list(here.glob("benchmarks/02_train/*.tsv"))) == 6 and len(list(here.glob("benchmarks/03_attack/*.tsv"))) == 12
    # a second lease after the merge has nothing left to do, and writes no archive
    again = lease.run(plan, minutes=30, archive=tmp_path / "again.tar.gz", results_dir=here, log=lambda _: None)
    assert again == {"trained": 0, "attacked": 0, "left": 0, "archive": {"files": 0, "bytes": 0}}
    assert not (tmp_path / "again.tar.gz").exists()


def test_a_lease_cut_after_training_returns_no_part_of_a_seed(plan, tmp_path, monkeypatch):
    """The deadline passes while the first model trains: its seeds are trained but not attacked, so nothing of
    them leaves (their checkpoints do not: a later lease could not attack them), and no archive is written."""
    clock = {"now": 0.0}
    monkeypatch.setattr(lease.time, "monotonic", lambda: clock["now"])
    real = lease.runs.train_runs

    def train_then_late(*args, **kwargs):
        made = real(*args, **kwargs)
        clock["now"] = 1e9
        return made

    monkeypatch.setattr(lease.runs, "train_runs", train_then_late)
    there = tmp_path / "results"
    done = lease.run(plan, minutes=1, archive=tmp_path / "lease.tar.gz", results_dir=there, log=lambda _: None)
    assert done["trained"] == 0 and done["attacked"] == 0 and done["left"] == 6
    assert not list(there.glob("metrics/**/*.json")) and not list(there.glob("benchmarks/**/*.tsv"))
    assert not (tmp_path / "lease.tar.gz").exists()


def test_a_plan_refuses_a_config_that_needs_checkpoints_back(tmp_path):
    cfg = config.load(*(ROOT / c for c in CONFIGS))
    cfg["attack"]["pgd"] = ["comvc"]
    cfg["transfer"]["models"] = ["comvc", "ardmvc"]
    with pytest.raises(ValueError, match=r"attack\.pgd; transfer\.models, which read checkpoints .*gpu-lease\.yaml"):
        lease.plan(cfg)


def test_the_gpu_lease_overlay_plans_the_claims_at_the_papers_scale():
    cfg = config.load(ROOT / "config" / "config.yaml", ROOT / "config" / "gpu-lease.yaml")
    made = lease.plan(cfg)
    assert sorted(made["data"]) == ["noisyfashion", "noisymnist"]
    assert made["data"]["noisyfashion"]["max_samples"] is None  # all 70,000
    assert {t["model"] for t in made["trainings"]} == {"comvc", "ardmvc", "ardmvc-am"}
    for t in made["trainings"]:
        assert t["job"]["model"]["encoder_width"] == 64 and len(t["seeds"]) >= 5
        assert t["job"]["device"] == "cuda"
    defenses = [t for t in made["trainings"] if t["model"] != "comvc"]
    assert all(t["job"]["model"]["pgd_steps"] == 10 for t in defenses)
    assert {a["job"]["settings"]["epochs"] for a in made["attacks"]} == {30}
    assert yaml.safe_load((ROOT / "config" / "gpu-lease.yaml").read_text())["results_dir"] == cfg["results_dir"]
