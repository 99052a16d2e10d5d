"""Outputs appear whole, and together, or not at all: temporary files stay out of readers' globs,
vanish on SIGTERM, and a rerun after SIGKILL at any rename produces the same outputs as an
uninterrupted run."""
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from robustmvc import files
from conftest import ROOT

# Runs CLI commands one after another, each in a child forked from one process that has imported the
# package (and not yet run anything), so a job costs its work and not another interpreter start. A job
# with kill_at = k wraps os.replace: at the k-th rename into its folder `root`, before the rename
# happens, the child sends itself the signal (what `strace -e inject=rename:signal=KILL:when=k` does).
# Prints the exit status of every job (minus the signal number when a signal ended it).
DRIVER = """
import json, os, signal, sys
import sklearn.datasets, torch
import robustmvc.data, robustmvc.plots, robustmvc.runs
from robustmvc.cli import main
statuses = []
for kill_at, sig, root, argv in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        if kill_at:
            real, seen = os.replace, [0]
            def replace(src, dst, *args, **kwargs):
                if str(dst).startswith(root):
                    seen[0] += 1
                    if seen[0] == kill_at:
                        os.kill(os.getpid(), getattr(signal, sig))
                return real(src, dst, *args, **kwargs)
            os.replace = replace
        status = main(argv)
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(status)
    _, raw = os.waitpid(pid, 0)
    statuses.append(-os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw))
print(json.dumps(statuses))
"""
ENV = {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}


def run_jobs(*jobs):
    """Exit statuses of `jobs`, each (argv, kill_at or None, signal name, root folder)."""
    spec = [[kill_at, sig, str(root), [str(a) for a in argv]] for argv, kill_at, sig, root in jobs]
    run = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(spec)], capture_output=True, text=True,
                         env=ENV, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def job(*argv, kill_at=None, sig="SIGKILL", root="/"):
    return argv, kill_at, sig, root


def outputs(folder):
    """Every file a reader's glob would see (temporary files start with '.' and end in .tmp)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.is_file() and not p.name.endswith(".tmp"))


def test_temporary_names_match_no_reader_glob(tmp_path):
    with files.atomic_path(tmp_path / "table.csv") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.suffix == ".tmp"
        tmp.write_text("a\n")
        assert list(tmp_path.glob("*.csv")) == [] and list(tmp_path.rglob("seed*.json")) == []
    assert (tmp_path / "table.csv").read_text() == "a\n" and list(tmp_path.iterdir()) == [tmp_path / "table.csv"]


def test_together_writes_all_or_nothing(tmp_path):
    (tmp_path / "old.json").write_text("old")
    with pytest.raises(RuntimeError):
        with files.together():
            files.write_json(tmp_path / "a.json", 1)
            files.write_json(tmp_path / "old.json", 2)
            raise RuntimeError("the second step failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]
    assert (tmp_path / "old.json").read_text() == "old"
    with files.together():
        files.write_json(tmp_path / "a.json", 1)
        assert not (tmp_path / "a.json").exists()  # deferred to the end of the block
        files.write_json(tmp_path / "old.json", 2)
    assert json.loads((tmp_path / "a.json").read_text()) == 1 and json.loads((tmp_path / "old.json").read_text()) == 2


def test_sigterm_removes_temporary_files(tmp_path):
    out = tmp_path / "d.npz"
    assert run_jobs(job("data", "build", "demo", "--out", out, "--max-samples", "100", kill_at=1, sig="SIGTERM",
                        root=tmp_path)) == [-signal.SIGTERM]
    assert list(tmp_path.iterdir()) == []  # neither output, no temporary file


def test_kill_at_every_rename_of_data_build_then_rerun(tmp_path):
    """`data build` renames twice (sidecar, then .npz). Killed at either, it leaves no .npz (so a
    workflow reruns it) and the rerun writes what an uninterrupted build writes."""
    ref = tmp_path / "ref" / "d.npz"
    build = ("data", "build", "demo", "--max-samples", "100", "--out")
    jobs = [job(*build, ref)]
    for k in (1, 2):
        folder = tmp_path / f"kill{k}"
        jobs += [job(*build, folder / "d.npz", kill_at=k, root=folder), job(*build, folder / "d.npz")]
    assert run_jobs(*jobs) == [0, -signal.SIGKILL, 0, -signal.SIGKILL, 0]
    for k in (1, 2):
        out = tmp_path / f"kill{k}" / "d.npz"
        assert outputs(out.parent) == ["d.json", "d.npz"]
        with np.load(out) as got, np.load(ref) as want:
            assert got.files == want.files and all(np.array_equal(got[f], want[f]) for f in want.files)
        assert json.loads(out.with_suffix(".json").read_text()) == json.loads(ref.with_suffix(".json").read_text())


def test_killed_data_build_leaves_no_dataset(tmp_path):
    """What a kill at each rename leaves behind, before any rerun: never the .npz without its sidecar."""
    build = ("data", "build", "demo", "--max-samples", "100", "--out")
    statuses = run_jobs(*[job(*build, tmp_path / f"kill{k}" / "d.npz", kill_at=k, root=tmp_path / f"kill{k}")
                          for k in (1, 2)])
    assert statuses == [-signal.SIGKILL] * 2
    assert outputs(tmp_path / "kill1") == [] and outputs(tmp_path / "kill2") == ["d.json"]


def test_kill_at_every_rename_of_an_attack_then_rerun(tmp_path):
    """An attack with generators and a figure renames three times, its metrics last: killed at any of
    them, no metrics file exists (the workflow's marker that the job is done), and the rerun's metrics
    equal an uninterrupted run's."""
    from robustmvc.cli import main

    data, ckpt, cfg = tmp_path / "d.npz", tmp_path / "m.pt", tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"architecture": {"encoder_width": 4}, "training": {"batch_size": 50},
                                   "datasets": {"demo": {"eps": 0.3}}}))
    assert main(["data", "build", "demo", "--out", str(data), "--max-samples", "100"]) == 0
    assert main(["train", "--data", str(data), "--model", "comvc", "--out", str(ckpt), "--epochs", "1", "--config",
                 str(cfg), "--device", "cpu"]) == 0

    def attack(folder, **kill):
        return job("attack", "--data", data, "--checkpoint", ckpt, "--config", cfg, "--epochs", "1", "--device", "cpu",
                   "--out", folder / "metrics.json", "--generator-out", folder / "gen.pt",
                   "--examples-out", folder / "examples.png", **kill)

    jobs, expected = [attack(tmp_path / "ref")], [0]
    for k in (1, 2, 3):
        folder = tmp_path / f"kill{k}"
        jobs += [attack(folder, kill_at=k, root=folder)]
        expected += [-signal.SIGKILL]
    assert run_jobs(*jobs) == expected
    for k in (1, 2, 3):
        assert "metrics.json" not in outputs(tmp_path / f"kill{k}")
    assert run_jobs(*[attack(tmp_path / f"kill{k}") for k in (1, 2, 3)]) == [0, 0, 0]
    want = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    for k in (1, 2, 3):
        folder = tmp_path / f"kill{k}"
        assert outputs(folder) == ["examples.png", "gen.pt", "metrics.json"]
        got = json.loads((folder / "metrics.json").read_text())
        for key in ("clean", "attacked", "max_abs_perturbation", "mean_abs_perturbation_per_view", "n_eval"):
            assert got[key] == want[key], key
