"""The CLI by its commands, the config schema, and the DAG (dry runs; the demo DAG for real)."""
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from robustmvc.cli import main
from conftest import ROOT


def test_models_lists_registered_names(capsys):
    assert main(["models"]) == 0
    assert "comvc" in capsys.readouterr().out.split()


def test_cli_build_train_evaluate(tmp_path, capsys):
    data, ckpt, metrics = tmp_path / "d.npz", tmp_path / "m.pt", tmp_path / "m.json"
    assert main(["data", "build", "demo", "--out", str(data), "--max-samples", "400"]) == 0
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"architecture": {"encoder_width": 4}, "training": {"batch_size": 50}}))
    assert main(["train", "--data", str(data), "--model", "comvc", "--out", str(ckpt), "--epochs", "1",
                 "--config", str(cfg), "--device", "cpu"]) == 0
    assert main(["evaluate", "--data", str(data), "--checkpoint", str(ckpt), "--out", str(metrics)]) == 0
    result = json.loads(metrics.read_text())
    assert set(result["clean"]) == {"acc", "nmi", "ari"} and result["n_eval"] == 200
    assert 0 <= result["clean"]["acc"] <= 1


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "no.npz"), "--checkpoint", "x.pt", "--out", "o.json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "data build" in err and "Traceback" not in err


def _validate(cfg):
    from snakemake.utils import validate

    validate(cfg, str(ROOT / "config" / "schema.yaml"))


def test_shipped_configs_are_valid():
    for name in ("config.yaml", "demo.yaml"):
        _validate(yaml.safe_load((ROOT / "config" / name).read_text()))


@pytest.mark.parametrize("path, value, key", [
    (("training", "epochs"), 0, "epochs"),
    (("seeds",), "zero", "seeds"),
    (("datasets", "noisymnist", "max_samples"), -5, "max_samples"),
    (("device",), "tpu", "device"),
])
def test_bad_config_values_fail_validation_naming_the_key(path, value, key):
    from snakemake.exceptions import WorkflowError

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    node = cfg
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    with pytest.raises(WorkflowError, match=key):
        _validate(cfg)


def test_unknown_dataset_fails_validation():
    from snakemake.exceptions import WorkflowError

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["datasets"]["cifar"] = {}
    with pytest.raises(WorkflowError, match="cifar"):
        _validate(cfg)


def _snakemake(*args, cwd=ROOT):
    exe = shutil.which("snakemake", path=str(ROOT / ".venv" / "bin")) or shutil.which("snakemake")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True)


def test_paper_dag_lists_data_and_training_for_three_public_datasets():
    run = _snakemake("-n", "--cores", "1", "--quiet", "rules")
    assert run.returncode == 0, run.stderr
    out = run.stdout + run.stderr
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    counts = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert counts["prepare_data"] == 3  # RegDB is left out until its folder is configured
    assert counts["train"] == 3 * len(cfg["models"]) * len(cfg["seeds"])


@pytest.mark.slow
def test_demo_dag_end_to_end(tmp_path):
    results, reports = tmp_path / "results", tmp_path / "reports" / "demo"
    run = _snakemake("--cores", "2", "--configfile", "config/demo.yaml", "--config",
                     f"results_dir={results}", f"report_dir={reports}")
    assert run.returncode == 0, run.stderr[-3000:]
    index = (reports / "index.html").read_text()
    assert "02_train/demo-comvc-seed0.html" in index and "01_prepare_data/demo.html" in index
    assert (tmp_path / "reports" / "index.html").is_file()
    metrics = json.loads((results / "metrics" / "demo" / "comvc" / "clean" / "seed0.json").read_text())
    assert metrics["clean"]["acc"] > 0.5
    # the executed notebook is kept, the rendered report has no code cells
    assert (results / "notebooks" / "02_train" / "demo-comvc-seed0.ipynb").is_file()
    assert "import" not in (reports / "02_train" / "demo-comvc-seed0.html").read_text().split("<body")[1][:20000]
