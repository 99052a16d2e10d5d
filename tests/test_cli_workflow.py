"""The CLI by its commands, the config schema, and the DAG (dry runs; the demo DAG for real)."""
import json
import re

import pytest
import yaml

from robustmvc.cli import main
from conftest import ROOT, snakemake


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
    from robustmvc import config

    config.validate(cfg)


def test_shipped_configs_are_valid():
    for name in ("config.yaml", "demo.yaml"):
        _validate(yaml.safe_load((ROOT / "config" / name).read_text()))


@pytest.mark.parametrize("path, value, key", [
    (("training", "epochs"), 0, "epochs"),
    (("seeds",), "zero", "seeds"),
    (("datasets", "noisymnist", "max_samples"), -5, "max_samples"),
    (("device",), "tpu", "device"),
    (("evaluation", "protocols"), ["paper", "heldout"], "protocols"),
    (("attack", "target_batchnorm"), "batch", "evaluation.protocols"),
    (("blackbox", "protocol"), "heldout", "evaluation.protocols"),
])
def test_bad_config_values_fail_validation_naming_the_key(path, value, key):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    node = cfg
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    with pytest.raises(ValueError, match=key):
        _validate(cfg)


def test_unknown_dataset_fails_validation():
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["datasets"]["cifar"] = {}
    with pytest.raises(ValueError, match="datasets: 'cifar' is not one of"):
        _validate(cfg)


def test_paper_dag_lists_data_and_training_for_three_public_datasets():
    run = snakemake("-n", "--cores", "1", "--quiet", "rules")
    assert run.returncode == 0, run.stderr
    out = run.stdout + run.stderr
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    counts = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert counts["prepare_data"] == 3  # RegDB is left out until its folder is configured
    assert counts["train"] == 3 * len(cfg["models"]) * len(cfg["seeds"])  # one training rule for every model
    assert counts["attack"] > 0 and counts["evaluate"] == 1


def test_committed_report_without_results_plans_the_whole_run(tmp_path):
    """A fresh clone carries reports/cpu-scale but no results: the DAG must rebuild them, not call the
    run done because its rendered index is present."""
    assert (ROOT / "reports" / "cpu-scale" / "index.html").is_file()
    jobs = dry_run_jobs("--configfile", "config/config.yaml", "config/cpu-scale.yaml",
                        "--config", f"results_dir={tmp_path}/r")
    rules = [rule for rule, _, _ in jobs]
    cfg = yaml.safe_load((ROOT / "config" / "cpu-scale.yaml").read_text())
    assert rules.count("prepare_data") == len(cfg["datasets"])
    assert "evaluate" in rules and "report_index" in rules
    assert rules.count("train") > len(cfg["seeds_per_model"]) * len(cfg["datasets"])


def dry_run_jobs(*args):
    """(rule, inputs, outputs) of each job of a dry run with `args`."""
    run = snakemake("-n", "--cores", "1", *args)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule [\w]+:)", run.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if rule:
            files = {k: set(re.search(rf"^\s+{k}: (.*)$", block, re.M).group(1).split(", "))
                     if re.search(rf"^\s+{k}: ", block, re.M) else set() for k in ("input", "output")}
            jobs.append((rule.group(1), files["input"], files["output"]))
    return jobs


def test_demo_dag_tracks_the_fitted_attackers_and_trains_every_model_by_one_rule(tmp_path):
    """Every attack that fits an attacker declares it as an output; transfer and detect read only such
    declared files; PGD declares none; every model trains by the one rule onto one page folder."""
    jobs = dry_run_jobs("--configfile", "config/demo.yaml", "--config", f"results_dir={tmp_path}/r",
                        f"report_dir={tmp_path}/p/demo")
    generators = {f for rule, _, out in jobs if rule == "attack" for f in out if f.endswith(".pt")}
    assert {rule for rule, _, out in jobs if any("/pgd/" in f for f in out)} == {"attack_pgd"}
    fitted = [out for rule, _, out in jobs if rule == "attack"]
    assert fitted and all(len([f for f in out if f.endswith(".pt")]) == 1 for out in fitted)
    assert not any(f.endswith(".pt") for rule, _, out in jobs if rule == "attack_pgd" for f in out)
    read = {f for rule, inp, _ in jobs if rule in ("transfer", "detect") for f in inp if "/attacks/" in f}
    assert read and read <= generators
    cfg = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    pages = {f for rule, _, out in jobs if rule == "train" for f in out if f.endswith(".html")}
    assert pages == {f"{tmp_path}/p/demo/02_train/demo-{m}-seed0.html" for m in cfg["models"]}


@pytest.mark.parametrize("path", [
    ("attak",), ("attack", "epoch"), ("blackbox", "nes_sample"), ("embedding_attack", "bond"),
    ("evaluation", "tsne_model"), ("evaluation", "eps_sweep", "model"), ("training", "epoch"),
    ("datasets", "noisymnist", "epss"), ("sensitivity", "kl_weigth"),
    # the levels a model's own settings live at: closed on the keys of its constructor and the training keys
    ("job_resources", "mem_mbb"), ("architecture", "encoder_widht"), ("models", "comvc", "contrst_weight"),
    ("models", "comvc", "per_dataset", "noisymnist", "contrst_weight"), ("models", "ardmvc-am", "backbone_setings"),
])
def test_a_misspelt_key_at_any_level_is_refused_by_its_path(path):
    """A typo would otherwise fall back to the default without a word (e.g. 30 attack epochs)."""
    from robustmvc import config

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    node = cfg
    for p in path[:-1]:
        node = node.setdefault(p, {})
    node[path[-1]] = 3
    parent = ".".join(path[:-1]) or "(top level)"
    with pytest.raises(ValueError, match=rf"{re.escape(parent)}: .*'{path[-1]}' was unexpected"):
        config.validate(cfg)


def test_every_attack_setting_can_be_set_in_its_config_section():
    """The schema lists each section's keys (so typos are refused); it must not refuse a real setting: every
    key of the attacks' defaults, except what is per run (protocol, budget, objective, gradient)."""
    from robustmvc.attack_settings import DEFAULTS

    sections = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())["properties"]
    per_run = {"protocol", "eps", "objective", "gradient"}
    for section, defaults in (("attack", {**DEFAULTS["gan"], **DEFAULTS["pgd"]}), ("blackbox", DEFAULTS["blackbox"]),
                              ("embedding_attack", DEFAULTS["embedding"])):
        assert set(defaults) - per_run <= set(sections[section]["properties"]), section


@pytest.mark.parametrize("old, new", [("blackbox", "blackbox_models"), ("embedding", "embedding_models")])
def test_an_old_model_list_key_is_refused_with_its_new_name(old, new):
    """Configs written before the rename get one sentence naming the new key, not 'unexpected property'."""
    from robustmvc import config

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["attack"][old] = cfg["attack"].pop(new)
    with pytest.raises(ValueError, match=rf"attack\.{old} is now attack\.{new}: rename it"):
        config.validate(cfg)


def test_the_snakefile_names_the_new_key_of_an_old_model_list(tmp_path):
    overlay = tmp_path / "old.yaml"
    overlay.write_text("attack: {blackbox: [comvc]}\n")
    run = snakemake("-n", "--cores", "1", "--configfile", "config/demo.yaml", str(overlay))
    assert run.returncode != 0
    assert "attack.blackbox is now attack.blackbox_models: rename it" in run.stdout + run.stderr


def test_the_schema_fills_every_default_the_rules_read(tmp_path):
    """The rules read config["a"]["b"] with no fallback: a config of only the required sections must plan a DAG,
    with the nested defaults filled in (a section absent, or present with some keys)."""
    cfg = {"seeds": [0], "datasets": {"demo": {"eps": 0.3}}, "training": {"epochs": 1},
              "architecture": {"encoder_width": 4}, "models": {"comvc": {}},
              "evaluation": {"eps_sweep": {"eps": [0.1]}}}
    filled = json.loads(json.dumps(cfg))
    _validate(filled)
    assert filled["evaluation"]["eps_sweep"] == {"eps": [0.1], "datasets": []}
    assert filled["evaluation"]["protocols"] == ["paper", "strict"]
    assert filled["attack"]["blackbox_models"] == [] and filled["attack"]["pgd"] is True
    assert filled["job_resources"] == {"mem_mb": 16000, "runtime": 240}
    assert filled["datasets"]["demo"]["n_identities"] == 206 and filled["datasets"]["demo"]["raw_dir"] is None
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text(yaml.safe_dump(cfg))
    run = snakemake("-n", "--cores", "1", "--quiet", "rules", "--configfile", str(minimal),
                    "--config", f"results_dir={tmp_path}/r", f"report_dir={tmp_path}/p")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "attack_pgd" in run.stdout + run.stderr  # attack.pgd defaults to every model
