"""The DAG on a real Slurm: tests/cluster/start-slurm.sh brings up a one-node cluster (munged, MariaDB,
slurmdbd, slurmctld, slurmd) on this machine; a few demo targets then run through `--profile
profiles/slurm`, every job by sbatch, and their metrics must equal those of a local run. Where a daemon
cannot start the test is skipped with the reason, never passed."""
import json
import os
import time
import re
import subprocess

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, snakemake, snakemake_exe

CLUSTER = ROOT / "tests" / "cluster"
PROFILE = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
# the torch jobs: each asks the cluster for a GPU (profiles/slurm/config.yaml)
TORCH_RULES = {"train", "attack", "attack_pgd", "sensitivity_point", "transfer", "detect"}
# the test overlay with a one-epoch attack; training keeps its epochs, so the model clusters and equal
# metrics mean something
LEANER = {"attack": {"epochs": 1}}
# data -> train -> attack of one model: the three rule kinds (CPU, GPU training, GPU attack) in a few minutes
TARGETS = ["metrics/demo/comvc/clean/seed0.json", "metrics/demo/comvc/gan-both/paper/seed0.json"]
# the same threads in both runs (a local run caps them at --cores), so torch computes the same sums
THREADS = ["--set-threads", "prepare_data=1", "train=1", "attack=1"]


def dry_run_jobs(*args):
    """(rule, threads, resources) of each job of a dry run of the DAG that runs a command (`all` only
    names the targets)."""
    run = snakemake("-n", "--cores", "4", *args)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", run.stdout):
        rule = re.match(r"rule (\w+):", block)
        if not rule or rule.group(1) == "all":
            continue
        threads = re.search(r"^\s+threads: (\d+)", block, re.M)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        resources = dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {}
        jobs.append((rule.group(1), int(threads.group(1)) if threads else 1, resources))
    return jobs


def test_slurm_profile_sizes_every_rule_and_gives_torch_jobs_a_gpu():
    jobs = dry_run_jobs()  # the paper's DAG
    rules = {rule for rule, _, _ in jobs}
    assert TORCH_RULES <= rules
    assert rules <= set(PROFILE["set-resources"]) and rules <= set(PROFILE["set-threads"])
    for rule, resources in PROFILE["set-resources"].items():
        assert resources.get("gpu", 0) == (1 if rule in TORCH_RULES else 0), rule
        assert resources["mem_mb"] > 0 and resources["runtime"] > 0, rule
    # where a rule sizes itself, the cluster gives it at least that much
    for rule, threads, resources in jobs:
        wanted = PROFILE["set-resources"][rule]
        assert PROFILE["set-threads"][rule] >= threads, rule
        for key in ("mem_mb", "runtime"):
            if key in resources and resources[key].isdigit():
                assert wanted[key] >= int(resources[key]), (rule, key)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """Environment of a running one-node Slurm (SLURM_CONF set); its daemons are stopped by pid after."""
    if os.geteuid() != 0:
        pytest.skip("starting the Slurm daemons needs root")
    state = tmp_path_factory.mktemp("slurm")
    try:
        start = subprocess.run(["bash", str(CLUSTER / "start-slurm.sh"), str(state)], capture_output=True,
                               text=True, timeout=600)
        if start.returncode != 0:
            reason = (start.stderr.strip().splitlines() or ["no message"])[-1]
            pytest.skip(f"no local Slurm: {reason}")
        yield dict(os.environ, SLURM_CONF=str(state / "slurm.conf"), PATH=f"{state / 'bin'}:{os.environ['PATH']}")
    finally:
        subprocess.run(["bash", str(CLUSTER / "stop-slurm.sh"), str(state)], timeout=60)


def run_demo(results, *args, env=None):
    """Start snakemake on the demo TARGETS under `results`; its output goes to `results`.log."""
    results.mkdir()
    leaner = results.parent / "leaner.yaml"
    leaner.write_text(yaml.safe_dump(LEANER))
    cmd = ["--configfile", "config/demo.yaml", "tests/demo-fast.yaml", str(leaner),
           "--config", f"results_dir={results}", f"report_dir={results}/reports", *THREADS, *args,
           *[f"{results}/{t}" for t in TARGETS]]
    with open(f"{results}.log", "w") as log:
        return subprocess.Popen([snakemake_exe(), *cmd], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def numbers(path):
    """The metric values of a metrics JSON: every number under its `clean` and `attacked` entries."""
    data = json.loads(path.read_text())
    return {k: data[k] for k in ("clean", "attacked") if k in data}


@pytest.mark.cluster
def test_demo_targets_run_through_sbatch_and_match_a_local_run(slurm, tmp_path):
    start = time.monotonic()
    local = run_demo(tmp_path / "local", "--cores", "1")
    cluster = run_demo(tmp_path / "slurm", "--profile", "profiles/slurm", "--jobs", "2",
                       "--default-resources", "slurm_account=robustmvc", "slurm_partition=main",
                       "--slurm-init-seconds-before-status-checks", "5", "--slurm-logdir", str(tmp_path / "slurm-logs"),
                       env=slurm)
    for name, run in (("local", local), ("slurm", cluster)):
        assert run.wait(timeout=900) == 0, f"{name} run: " + (tmp_path / f"{name}.log").read_text()[-3000:]
    print(f"both runs took {time.monotonic() - start:.0f} s")
    sacct = subprocess.run(["sacct", "-X", "-P", "-n", "-o", "JobID,State,AllocTRES,Comment"], env=slurm,
                           capture_output=True, text=True, check=True).stdout
    table = subprocess.run(["sacct", "-X", "-o", "JobID,JobName%10,Comment%40,Account,State,ExitCode,AllocTRES%38"],
                           env=slurm, capture_output=True, text=True).stdout
    print(table)
    jobs = [line.split("|") for line in sacct.splitlines()]
    rules = sorted(comment.split("_wildcards")[0].removeprefix("rule_") for *_, comment in jobs)
    assert rules == ["attack", "prepare_data", "train"], table
    assert all(state == "COMPLETED" for _, state, _, _ in jobs), table
    for _, _, tres, comment in jobs:  # the torch jobs were given the GPU the profile asks for
        assert ("gres/gpu=1" in tres) == (not comment.startswith("rule_prepare_data")), table
    local_data, slurm_data = (np.load(tmp_path / run / "data" / "demo.npz") for run in ("local", "slurm"))
    assert all(np.array_equal(local_data[k], slurm_data[k]) for k in local_data.files)
    local_model, slurm_model = (torch.load(tmp_path / run / "models" / "demo" / "comvc" / "seed0.pt",
                                           weights_only=True)["state_dict"] for run in ("local", "slurm"))
    assert local_model.keys() == slurm_model.keys()
    assert all(torch.equal(local_model[k], slurm_model[k]) for k in local_model)
    for target in TARGETS:
        a, b = numbers(tmp_path / "local" / target), numbers(tmp_path / "slurm" / target)
        print(target, json.dumps(b))
        assert a and a == b, (target, a, b)
    assert a["clean"]["nmi"] > 0.5 and a["attacked"]["acc"] < a["clean"]["acc"]
