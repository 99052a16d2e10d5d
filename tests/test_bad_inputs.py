"""The catalogue of mistakes: every bad input or fault a careless user can cause, run through the CLI.

Each row must end with a non-zero exit status and one line on stderr that names the fix (no traceback
unless -v), and must leave every existing file as it was (checksums before and after). Rows run
in-process (`cli.main`) on a tiny dataset; the few that need a real exit status run in a subprocess.
"""
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from robustmvc.cli import main
from robustmvc.data.idx import write_idx
from robustmvc.data.sources import FILES
from conftest import ROOT

CPU = ["--device", "cpu"]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Good files every row starts from: a 200-digit demo dataset, a CoMVC checkpoint, its GAN
    generators, a valid config, and a folder of small MNIST-format IDX files."""
    root = tmp_path_factory.mktemp("good")
    f = {k: root / v for k, v in dict(data="d.npz", ckpt="m.pt", gen="g.pt", metrics="a.json", config="c.yaml",
                                       raw="raw").items()}
    f["config"].write_text(yaml.safe_dump({"architecture": {"encoder_width": 4}, "training": {"batch_size": 50},
                                           "datasets": {"demo": {"eps": 0.3}}}))
    assert main(["data", "build", "demo", "--out", str(f["data"]), "--max-samples", "200"]) == 0
    assert main(["train", "--data", str(f["data"]), "--model", "comvc", "--out", str(f["ckpt"]), "--epochs", "1",
                 "--config", str(f["config"]), *CPU]) == 0
    assert main(["attack", "--data", str(f["data"]), "--checkpoint", str(f["ckpt"]), "--out", str(f["metrics"]),
                 "--epochs", "1", "--config", str(f["config"]), "--generator-out", str(f["gen"]), *CPU]) == 0
    f["raw"].mkdir()
    rng = np.random.default_rng(0)
    for name, n in zip(FILES, (40, 40, 20, 20)):
        array = (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if "images" in name
                 else (np.arange(n) % 10).astype(np.uint8))
        write_idx(f["raw"] / name, array)
    return f


def npz_arrays(path):
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def write_npz(path, arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def changed_data(good, case, change):
    """A copy of the good dataset with `change(arrays)` applied (its meta travels inside the file)."""
    arrays = npz_arrays(good["data"])
    change(arrays)
    return write_npz(case / "bad.npz", arrays)


def copied_raw(good, case, change):
    """A copy of the good IDX folder with `change(folder)` applied."""
    raw = case / "raw"
    shutil.copytree(good["raw"], raw)
    change(raw)
    return raw


def nan_eval_pixels(a):
    a["view_0"][a["eval_idx"][:5]] = np.nan


def inf_pixels(a):
    a["view_1"][a["train_idx"][:5]] = np.inf


def label(value):
    def change(a):
        a["labels"][3] = value
    return change


def idx_label_200(raw):
    labels = (np.arange(40) % 10).astype(np.uint8)
    labels[0] = 200
    write_idx(raw / FILES[1], labels)


def truncated_gzip(raw):
    data = (raw / FILES[0]).read_bytes()
    (raw / FILES[0]).write_bytes(data[: len(data) // 2])


def bitflipped_gzip(raw):
    data = bytearray((raw / FILES[0]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (raw / FILES[0]).write_bytes(bytes(data))


def swapped_idx(raw):
    a, b = raw / FILES[0], raw / FILES[1]
    tmp = raw / "swap"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def nan_weights(good, case):
    ckpt = torch.load(good["ckpt"], weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][name][0] = float("nan")
    torch.save(ckpt, case / "nan.pt")
    return case / "nan.pt"


class Code:
    """Pickled by reference: loading it would import and run code."""

    def __reduce__(self):
        return (print, ("this must never run",))


def pickled_code(good, case):
    torch.save({"state_dict": {}, "meta": {}, "payload": Code()}, case / "code.pt")
    return case / "code.pt"


def old_npz_without_sidecar(good, case):
    arrays = npz_arrays(good["data"])
    del arrays["meta_json"]  # as files were written before the meta moved inside the .npz
    return write_npz(case / "old.npz", arrays)


def config_file(case, cfg, name="bad.yaml"):
    (case / name).write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return case / name


def raw_bytes(case, name, data):
    (case / name).write_bytes(data)
    return case / name


def truncated(path, case, name):
    data = Path(path).read_bytes()
    return raw_bytes(case, name, data[: len(data) // 2])


def train(data, *more, out="new.pt"):
    """`out`: a name in the case folder, or a function of (good files, case folder)."""
    return lambda g, c: ["train", "--data", str(data(g, c)), "--model", "comvc", "--out",
                         str(out(g, c) if callable(out) else c / out),
                         "--epochs", "1", "--config", str(g["config"]), *CPU, *more]


def evaluate(data=lambda g, c: g["data"], ckpt=lambda g, c: g["ckpt"], out=lambda g, c: c / "e.json"):
    return lambda g, c: ["evaluate", "--data", str(data(g, c)), "--checkpoint", str(ckpt(g, c)),
                         "--out", str(out(g, c)), *CPU]


def build(raw_change, dataset="noisymnist", *more):
    return lambda g, c: ["data", "build", dataset, "--raw-dir", str(copied_raw(g, c, raw_change)),
                         "--no-download", "--out", str(c / "n.npz"), *more]


def attack(*more, config=lambda g, c: g["config"]):
    return lambda g, c: ["attack", "--data", str(g["data"]), "--checkpoint", str(g["ckpt"]), "--out",
                         str(c / "a.json"), "--epochs", "1", "--config", str(config(g, c)), *CPU, *more]


def notebook(name, params):
    """A notebook run with `params`; its executed copy and page go to a folder of their own (a failing run
    keeps its executed copy, which is no file the row may change)."""
    import json
    import tempfile

    def argv(g, c):
        out = Path(tempfile.mkdtemp(prefix="nb-"))
        return ["notebook", str(ROOT / "notebooks" / f"{name}.ipynb"), str(out / "run.ipynb"), str(out / "run.html"),
                "--template-dir", str(ROOT / "notebooks" / "templates"), "--params", json.dumps(params)]
    return argv


def train_settings(**drop_or_set):
    """A train command given its whole settings as --settings JSON, with keys of `training` set or dropped (None)."""
    import json

    training = {"epochs": 1, "batch_size": 50, "lr": 1e-3, "pretrain_epochs": 0}
    for key, value in drop_or_set.items():
        training.pop(key) if value is None else training.update({key: value})
    job = {"model": {"encoder_width": 4}, "training": training, "device": "cpu", "precision": "fp32",
           "deterministic": False}
    return lambda g, c: ["train", "--data", str(g["data"]), "--model", "comvc", "--out", str(c / "s.pt"),
                         "--settings", json.dumps(job)]


GOOD_DATA = lambda g, c: g["data"]  # noqa: E731


def rebuilt(g, c):
    """The good dataset built again with another seed: another stratified subset, another split."""
    from robustmvc import data

    data.save(c / "rebuilt.npz", data.build("demo", max_samples=200, seed=1))
    return c / "rebuilt.npz"


def swapped_split(a):
    a["train_idx"], a["eval_idx"] = a["eval_idx"].copy(), a["train_idx"].copy()


def other_checkpoint(g, c):
    """A second CoMVC trained on the good dataset (another seed): the good generator was not fitted on it."""
    assert main(train(GOOD_DATA, "--seed", "1", out="other.pt")(g, c)) == 0
    return c / "other.pt"


def report(results, reports):
    return lambda g, c: ["report", "--results", str(results(g, c)), "--reports", str(reports(g, c))]


def empty_folder(c):
    (c / "empty").mkdir()
    return c / "empty"

# (id, argv builder (good files, case folder) -> argv, a word the error must contain)
CASES = [
    # values that were accepted with exit 0
    ("nan-pixels-in-eval-half", evaluate(data=lambda g, c: changed_data(g, c, nan_eval_pixels)), "NaN"),
    ("inf-pixels", train(lambda g, c: changed_data(g, c, inf_pixels)), "infinite"),
    ("label-100", train(lambda g, c: changed_data(g, c, label(100))), "0..K-1"),
    ("label-minus-3", train(lambda g, c: changed_data(g, c, label(-3))), "0..K-1"),
    ("idx-label-200", build(idx_label_200), "re-download"),
    ("checkpoint-with-nan-weights", evaluate(ckpt=nan_weights), "NaN"),
    ("train-epochs-negative", train(GOOD_DATA, "--epochs", "-5"), "at least 1"),
    ("set-batch-size-negative", train(GOOD_DATA, "--set", "batch_size=-10"), "batch_size"),
    ("set-lr-not-a-number", train(GOOD_DATA, "--set", "lr=fast"), "lr"),
    ("set-lr-nan", train(GOOD_DATA, "--set", "lr=nan"), "finite"),
    ("max-samples-zero", lambda g, c: ["data", "build", "demo", "--out", str(c / "x.npz"), "--max-samples", "0"],
     "at least 10"),
    ("npz-without-sidecar", train(lambda g, c: old_npz_without_sidecar(g, c)), "sidecar"),
    ("config-section-typo", lambda g, c: train(GOOD_DATA, "--config", str(config_file(c, {"trainig": {"epochs": 3}})))(g, c),
     "trainig"),
    ("config-key-typo", lambda g, c: train(GOOD_DATA, "--config", str(config_file(c, {"training": {"epoch": 3}})))(g, c),
     "epoch"),
    ("config-model-typo-in-attack-pgd", attack(config=lambda g, c: config_file(c, {"attack": {"pgd": ["comvcc"]}})),
     "attack.pgd"),
    ("config-model-typo-in-transfer",
     lambda g, c: train(GOOD_DATA, "--config", str(config_file(c, {"transfer": {"models": ["comvc", "simvcc"]}})))(g, c),
     "transfer.models"),
    ("config-lr-as-text", lambda g, c: train(GOOD_DATA, "--config", str(config_file(c, "training:\n  lr: 1e-4\n")))(g, c),
     "1.0e-4"),
    ("raw-dir-typo", lambda g, c: ["data", "build", "noisyfashion", "--raw-dir", str(c / "fashon"), "--no-download",
                                   "--out", str(c / "f.npz")], "raw_dir"),
    # path collisions
    ("data-build-out-json", lambda g, c: ["data", "build", "demo", "--out", str(c / "x.json")], ".npz"),
    ("train-out-is-the-data", train(GOOD_DATA, out=lambda g, c: g["data"]), ".pt"),
    ("train-metrics-is-the-data-sidecar", train(GOOD_DATA, "--metrics", "SIDECAR"), "sidecar"),
    ("evaluate-out-onto-checkpoint", evaluate(out=lambda g, c: g["ckpt"]), ".json"),
    ("evaluate-out-onto-data-sidecar", evaluate(out=lambda g, c: g["data"].with_suffix(".json")), "sidecar"),
    ("train-metrics-pt-and-out-pt", train(GOOD_DATA, "--metrics", "SAME", out="same.pt"), ".json"),
    ("attack-generator-onto-checkpoint", lambda g, c: attack("--generator-out", str(g["ckpt"]))(g, c), "--checkpoint"),
    # work that was lost late
    ("out-under-a-file", train(GOOD_DATA, out="afile/m.pt"), "cannot be written"),
    ("out-is-a-folder", train(GOOD_DATA, out="folder.pt"), "folder"),
    ("examples-out-bad-suffix", lambda g, c: attack("--examples-out", str(c / "x.jpgg"))(g, c), "suffix"),
    # damaged or wrong files that ended in a traceback
    ("empty-npz", train(lambda g, c: raw_bytes(c, "e.npz", b"")), "not a readable .npz"),
    ("truncated-npz", train(lambda g, c: truncated(g["data"], c, "t.npz")), "not a readable .npz"),
    ("random-npz", train(lambda g, c: raw_bytes(c, "r.npz", np.random.default_rng(0).bytes(5000))), "not a readable .npz"),
    ("npz-missing-keys", train(lambda g, c: changed_data(g, c, lambda a: a.pop("eval_idx"))), "missing eval_idx"),
    ("one-class-data", train(lambda g, c: changed_data(g, c, lambda a: a["labels"].fill(0))), "single class"),
    ("empty-pt", evaluate(ckpt=lambda g, c: raw_bytes(c, "e.pt", b"")), "not a readable"),
    ("truncated-pt", evaluate(ckpt=lambda g, c: truncated(g["ckpt"], c, "t.pt")), "not a readable"),
    ("random-pt", evaluate(ckpt=lambda g, c: raw_bytes(c, "r.pt", np.random.default_rng(1).bytes(5000))), "not a readable"),
    ("pickled-code-pt", evaluate(ckpt=pickled_code), "holds code"),
    ("generator-as-checkpoint", evaluate(ckpt=lambda g, c: g["gen"]), "train --out"),
    ("truncated-gzip-idx", build(truncated_gzip), "re-download"),
    ("bitflipped-gzip-idx", build(bitflipped_gzip), "re-download"),
    ("swapped-idx-files", build(swapped_idx), "swapped"),
    ("invalid-yaml", lambda g, c: train(GOOD_DATA, "--config", str(config_file(c, "training:\n  epochs: [3\n")))(g, c),
     "line"),
    # answered well before, kept so they stay that way
    ("missing-data", train(lambda g, c: c / "none.npz"), "data build"),
    ("missing-checkpoint", evaluate(ckpt=lambda g, c: c / "none.pt"), "train"),
    ("missing-config", lambda g, c: train(GOOD_DATA, "--config", str(c / "none.yaml"))(g, c), "does not exist"),
    ("yaml-python-tag", lambda g, c: train(GOOD_DATA, "--config", str(config_file(
        c, "training: !!python/object/apply:os.system ['touch PWNED']\n")))(g, c), "YAML"),
    ("unknown-model", lambda g, c: ["train", "--data", str(g["data"]), "--model", "kmeans", "--out", str(c / "k.pt"),
                                    *CPU], "known models"),
    ("unknown-model-setting", train(GOOD_DATA, "--set", "contrast_weigth=1"), "comvc"),
    ("set-without-equals", train(GOOD_DATA, "--set", "lr"), "KEY=VALUE"),
    ("unknown-dataset", lambda g, c: ["data", "build", "cifar", "--out", str(c / "c.npz")], "invalid choice"),
    ("unknown-option", train(GOOD_DATA, "--seeds", "3"), "unrecognized arguments"),
    ("attack-eps-out-of-range", lambda g, c: attack("--eps", "5")(g, c), "eps"),
    ("attack-unknown-variant", lambda g, c: attack("--attack", "fgsm")(g, c), "invalid choice"),
    ("views-of-another-dataset", evaluate(data=lambda g, c: changed_data(
        g, c, lambda a: a.update(view_0=a["view_0"][:, :, :14, :14].copy()))), "trained on views"),
    ("transfer-generator-without-name", lambda g, c: ["transfer", "--data", str(g["data"]), "--generator",
                                                      str(g["gen"]), "--checkpoint", f"comvc={g['ckpt']}",
                                                      "--out", str(c / "t.csv")], "MODEL=PATH"),
    ("checkpoint-as-generator", lambda g, c: ["detect", "--data", str(g["data"]), "--checkpoint", str(g["ckpt"]),
                                              "--generator", str(g["ckpt"]), "--out", str(c / "d.json")],
     "attack --generator-out"),
    ("regdb-without-folder", lambda g, c: ["data", "build", "regdb", "--out", str(c / "r.npz")], "datasets.regdb.dir"),
    # notebooks take the parameters their parameters cell defines, and the required ones
    ("notebook-misspelt-parameter", notebook("02_train", {"chekpoint": "x.pt"}), "unknown notebook parameter(s) chekpoint"),
    ("notebook-missing-settings", notebook("03_attack", {"threads": 1}), "settings missing"),
    # a run given its whole settings gets every one, from one place
    ("train-settings-missing-a-key", train_settings(batch_size=None), "training.batch_size"),
    ("train-settings-unknown-key", train_settings(epoch=3), "'epoch' was unexpected"),
    ("train-settings-and-config", lambda g, c: train_settings()(g, c) + ["--config", str(g["config"])], "drop --config"),
    # lineage: a result and its inputs must come from the same dataset build, split and checkpoint
    ("evaluate-on-a-rebuilt-dataset", evaluate(data=rebuilt), "another build of demo"),
    ("evaluate-on-another-split", evaluate(data=lambda g, c: changed_data(g, c, swapped_split)), "split another way"),
    ("attack-on-a-rebuilt-dataset", lambda g, c: ["attack", "--data", str(rebuilt(g, c)), "--checkpoint", str(g["ckpt"]),
                                                  "--out", str(c / "a.json"), "--epochs", "1", "--eps", "0.3", *CPU], "another build"),
    ("detect-with-another-checkpoints-generator", lambda g, c: [
        "detect", "--data", str(g["data"]), "--checkpoint", str(other_checkpoint(g, c)), "--generator", str(g["gen"]),
        "--out", str(c / "d.json")], "another checkpoint"),
    ("transfer-on-a-rebuilt-dataset", lambda g, c: [
        "transfer", "--data", str(rebuilt(g, c)), "--generator", f"comvc={g['gen']}", "--checkpoint",
        f"comvc={g['ckpt']}", "--out", str(c / "t.csv"), *CPU], "another build"),
    # writes stay where the user pointed
    ("report-results-missing", report(lambda g, c: c / "nonexist", lambda g, c: c / "site" / "typo"), "does not exist"),
    ("report-results-empty", report(lambda g, c: empty_folder(c), lambda g, c: c / "rep"), "no run metrics"),
    ("report-folder-empty", report(lambda g, c: c, lambda g, c: ""), "empty"),
    ("report-folder-root", report(lambda g, c: c, lambda g, c: "/"), "root"),
    ("config-results-dir-empty", lambda g, c: train(GOOD_DATA, "--config", str(config_file(c, {"results_dir": ""})))(g, c),
     "folder of its own"),
    # settings checked before the work
    ("config-seeds-empty", lambda g, c: train(GOOD_DATA, "--config", str(config_file(c, {"seeds": []})))(g, c),
     "seeds is an empty list"),
    ("set-encoder-width-zero", train(GOOD_DATA, "--set", "encoder_width=0"), "encoder_width"),
    ("set-pgd-eps-negative", lambda g, c: ["train", "--data", str(g["data"]), "--model", "ardmvc", "--out",
                                           str(c / "p.pt"), "--epochs", "1", "--config", str(g["config"]), *CPU,
                                           "--set", "pgd_eps=-0.5"], "pgd_eps"),
]


def checksums(*roots):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots for p in sorted(Path(root).rglob("*")) if p.is_file()}


def argv_of(case_id, make, good, case):
    argv = [str(a) for a in make(good, case)]
    if case_id == "out-under-a-file":
        (case / "afile").write_text("a file, not a folder")
    if case_id == "out-is-a-folder":
        (case / "folder.pt").mkdir()
    if "SIDECAR" in argv:
        argv[argv.index("SIDECAR")] = str(good["data"].with_suffix(".json"))
    if case_id == "train-metrics-pt-and-out-pt":
        argv[argv.index("SAME")] = str(case / "same.pt")
    return argv


@pytest.mark.parametrize("case_id, make, fix", CASES, ids=[c[0] for c in CASES])
def test_mistake_is_one_sentence_and_changes_nothing(case_id, make, fix, good, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a YAML tag that ran code would leave PWNED here
    argv = argv_of(case_id, make, good, tmp_path)
    before = checksums(good["data"].parent, tmp_path)
    capsys.readouterr()
    status = main(argv)
    out, err = capsys.readouterr()
    assert status != 0, (argv, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fix in lines[0], lines[0]
    assert "Traceback" not in err + out and "weights_only=False" not in err
    assert checksums(good["data"].parent, tmp_path) == before
    assert not (tmp_path / "PWNED").exists()


def test_verbose_adds_the_traceback(good, tmp_path, capsys):
    assert main(["-v", "evaluate", "--data", str(tmp_path / "no.npz"), "--checkpoint", str(good["ckpt"]),
                 "--out", str(tmp_path / "e.json")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


def test_exit_status_and_single_line_from_a_real_process(good, tmp_path):
    """What a shell sees: status 2 for a usage mistake, 1 for a bad file, one line each, no traceback."""
    env = {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    usage = subprocess.run([sys.executable, "-m", "robustmvc", "train", "--data", str(good["data"]), "--model", "comvc",
                            "--out", str(tmp_path / "m.pt"), "--epochs", "-5"], capture_output=True, text=True, env=env)
    bad = tmp_path / "e.npz"
    bad.write_bytes(b"")
    damaged = subprocess.run([sys.executable, "-m", "robustmvc", "evaluate", "--data", str(bad), "--checkpoint",
                              str(good["ckpt"]), "--out", str(tmp_path / "e.json")], capture_output=True, text=True, env=env)
    assert (usage.returncode, damaged.returncode) == (2, 1)
    for run in (usage, damaged):
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr, run.stderr


def test_set_reads_numbers_yaml_leaves_as_text(good, tmp_path):
    """`--set lr=1e-4`, which YAML 1.1 reads as text, trains with lr 0.0001."""
    assert main(train(GOOD_DATA, "--set", "lr=1e-4")(good, tmp_path)) == 0
    assert torch.load(tmp_path / "new.pt", weights_only=True)["meta"]["train"]["lr"] == 1e-4


def test_old_dataset_with_its_sidecar_still_loads(good, tmp_path):
    from robustmvc import data

    old = old_npz_without_sidecar(good, tmp_path)
    shutil.copy(good["data"].with_suffix(".json"), old.with_suffix(".json"))
    assert data.load(old).meta["dataset"] == "demo"


def test_snakemake_refuses_a_misspelt_model_before_any_job(tmp_path):
    from conftest import snakemake

    overlay = tmp_path / "typo.yaml"
    overlay.write_text(yaml.safe_dump({"transfer": {"models": ["simvc", "comvcc"]}}))
    run = snakemake("-n", "--cores", "1", "--configfile", "config/demo.yaml", str(overlay),
                    "--config", f"results_dir={tmp_path / 'r'}")
    assert run.returncode != 0
    assert "transfer.models" in run.stdout + run.stderr and "comvcc" in run.stdout + run.stderr


def test_a_list_on_snakemakes_command_line_is_told_to_move_to_an_overlay(tmp_path):
    """snakemake --config seeds=[0,1] hands the config ['0', '1']: the error says why and where lists go."""
    from conftest import snakemake

    run = snakemake("-n", "--cores", "1", "--configfile", "config/demo.yaml", "--config",
                    f"results_dir={tmp_path / 'r'}", "seeds=[0,1]")
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert re.search(r"seeds\.[01]: '[01]' is not of type 'integer'", out) and "put it in a YAML overlay" in out
    assert not (tmp_path / "r").exists()



def test_old_checkpoint_without_lineage_loads_with_a_warning(good, tmp_path, caplog):
    """Files from before lineage was recorded are accepted, with one warning that they cannot be checked."""
    ckpt = torch.load(good["ckpt"], weights_only=True)
    del ckpt["meta"]["lineage"]
    torch.save(ckpt, tmp_path / "old.pt")
    assert main(evaluate(ckpt=lambda g, c: c / "old.pt")(good, tmp_path)) == 0
    assert [r.message.split(" (")[0] for r in caplog.records if r.name == "robustmvc.lineage"] == [
        "old.pt records no lineage"]


def test_outputs_record_their_lineage_and_where_they_were_made(good, tmp_path):
    from robustmvc import data, lineage

    ds = data.load(good["data"])
    made = lineage.of_data(ds)
    assert torch.load(good["ckpt"], weights_only=True)["meta"]["lineage"]["data"] == made
    # the same samples split another way differ in the split only; another build differs in its samples
    swapped = lineage.of_data(data.load(changed_data(good, tmp_path, swapped_split)))
    assert swapped["samples"] == made["samples"] and swapped["split"] != made["split"]
    assert lineage.of_data(data.load(rebuilt(good, tmp_path)))["samples"] != made["samples"]
    rec = yaml.safe_load(good["metrics"].read_text())  # JSON is YAML
    assert rec["lineage"]["data"] == made and rec["lineage"]["checkpoint"] == lineage.file_hash(good["ckpt"])
    assert rec["lineage"]["settings"] == lineage.settings_hash({"attack": "gan", **rec["settings"]})
    where = rec["provenance"]
    assert where["torch"] == torch.__version__ and where["threads"] >= 1 and where["cpu_seconds"] >= 0
    assert where["machine"] and where["commit"] and where["precision"] in ("fp32", "bf16")
    # no absolute path of the machine in what is shipped
    assert str(good["data"].parent) not in good["metrics"].read_text()


def test_a_full_disk_while_saving_a_checkpoint_is_one_sentence(good, tmp_path):
    """A file-size limit makes every write past 4 KB fail as a full disk does; the checkpoint is larger."""
    import resource

    env = {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run([sys.executable, "-m", "robustmvc", *train(GOOD_DATA)(good, tmp_path)], capture_output=True,
                         text=True, env=env, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)))
    lines = [line for line in run.stderr.replace("\r", "\n").splitlines() if line.strip() and "model comvc" not in line]
    assert run.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: could not write"), run.stderr
    assert "free space" in lines[0] and "enforce fail" not in run.stderr
    assert not list(tmp_path.iterdir())  # no half checkpoint, no temporary file


def test_ctrl_c_during_training_is_one_sentence(good, tmp_path):
    import signal
    import time

    env = {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    argv = train(GOOD_DATA)(good, tmp_path)
    argv[argv.index("--epochs") + 1] = "1000"
    run = subprocess.Popen([sys.executable, "-m", "robustmvc", *argv], stderr=subprocess.PIPE, text=True, env=env,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    while "model comvc" not in seen:  # the progress bar: training has started
        seen += run.stderr.read(1)
    time.sleep(1)
    run.send_signal(signal.SIGINT)
    rest = run.communicate(timeout=60)[1]
    lines = [line for line in (seen + rest).replace("\r", "\n").splitlines() if line.strip() and "model comvc" not in line]
    assert run.returncode == 130 and len(lines) == 1 and lines[0].startswith("error: interrupted"), seen + rest
    assert not list(tmp_path.iterdir())


def test_snakemake_refuses_an_empty_results_dir_before_any_job(tmp_path):
    from conftest import snakemake

    overlay = tmp_path / "empty.yaml"
    overlay.write_text(yaml.safe_dump({"results_dir": ""}))
    run = snakemake("-n", "--cores", "1", "--configfile", "config/demo.yaml", str(overlay))
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "results_dir '' is not a folder of its own" in out
    assert "/data/demo.npz" not in out


def test_a_model_set_to_false_is_left_out_and_true_is_refused(tmp_path):
    """An overlay cannot delete a model the base config runs; false leaves it out. `true` names no settings:
    one sentence says what a model entry takes."""
    from robustmvc import config

    cfg = config.load("config/demo.yaml")
    cfg["models"].update(eamc=False, sem=False)
    config.validate(cfg)
    assert config.run_models(cfg) == [m for m in config.load("config/demo.yaml")["models"] if m not in ("eamc", "sem")]
    cfg["models"]["sem"] = True
    with pytest.raises(ValueError, match=r"models\.sem is true; .* false leaves it out"):
        config.validate(cfg)
