"""The demo DAG, run once (the demo_run fixture, tests/demo-fast.yaml's epochs) and read by every test here,
so `pytest -n 2 --dist loadfile` builds it on one worker only:
- end to end, with a space and a non-ASCII letter in every path it was given;
- every baseline learns something on the demo data (no model is trained twice);
- the reports in a real browser: headless Chromium opens the landing page, follows every link, and finds
  Table 1 and the figures, with no page logging a console error; every page is clean (no stderr boxes,
  no absolute path of the machine, in pages or shipped files), carries its provenance header and a link back, every image has alt text, and the
  whole folder stays within its size budget;
- its results exported and merged into a fresh folder: the dry run plans only what that folder lacks."""
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from robustmvc import registry
from robustmvc import results as portable
from robustmvc.files import read_json
from conftest import ABSOLUTE_PATH, FIXTURE_CONFIGS, FIXTURE_MODELS, LEFT_OUT_OF_FIXTURE, ROOT, demo_configfiles, report_defects, snakemake, write_demo_configfiles

pytestmark = pytest.mark.slow

def test_demo_dag_end_to_end(demo_run):
    """The whole demo DAG, run with a space and a non-ASCII letter in every path it was given."""
    results, reports = demo_run
    assert " " in str(results) and "é" in str(results) and " " in demo_configfiles(results)[1]
    index = (reports / "index.html").read_text()
    for page in ("01_prepare_data/demo.html", "02_train/demo-comvc-seed0.html", "03_attack/demo-comvc-gan-both-paper-seed0.html",
                 "03_attack/demo-comvc-gan-both-strict-seed0.html",
                 "02_train/demo-ardmvc-seed0.html", "02_train/demo-ardmvc-am-seed0.html",
                 "06_evaluate/evaluate.html", "02_train/demo-alrdc-seed0.html", "08_related/related.html",
                 "03_attack/demo-comvc-blackbox-paper-seed0.html", "03_attack/demo-alrdc-embedding-paper-seed0.html"):
        assert page in index, page
    assert (reports.parent / "index.html").is_file()
    metrics = json.loads((results / "metrics" / "demo" / "comvc" / "clean" / "seed0.json").read_text())
    assert metrics["clean"]["acc"] > 0.5
    attacked = json.loads((results / "metrics" / "demo" / "comvc" / "gan-both" / "paper" / "seed0.json").read_text())
    assert attacked["attacked"]["acc"] < attacked["clean"]["acc"] and attacked["protocol"] == "paper"
    strict = json.loads((results / "metrics" / "demo" / "comvc" / "gan-both" / "strict" / "seed0.json").read_text())
    assert strict["protocol"] == "strict" and strict["n_fit"] + strict["n_eval"] == attacked["n_eval"]
    assert attacked["max_abs_perturbation"] <= attacked["settings"]["eps"] + 1e-6
    # the related systems: queries counted, transfer matrix complete, a detector AUC per attack
    blackbox = json.loads((results / "metrics" / "demo" / "comvc" / "blackbox" / "paper" / "seed0.json").read_text())
    assert blackbox["queries"] > len(blackbox["history"]) * blackbox["n_fit"]
    assert blackbox["max_abs_perturbation"] <= blackbox["settings"]["eps"] + 1e-6
    transfer = pd.read_csv(results / "transfer" / "demo.csv")
    assert len(transfer) == 16 and transfer["post_acc"].between(0, 1).all()
    for attack in ("gan-both", "blackbox", "embedding"):
        auc = json.loads((results / "detection" / "demo" / "comvc" / attack / "paper" / "seed0.json").read_text())["auc"]
        assert 0 <= auc["iforest-h"] <= 1, attack
    sensitivity = json.loads((results / "sensitivity" / "demo" / "lambda1-gamma1-klpaper" / "seed0.json").read_text())
    assert sensitivity["model"] == "ardmvc-am" and 0 <= sensitivity["attacked"]["acc"] <= 1
    # the tidy table covers every model the fixture runs and none it leaves out
    table = (results / "metrics" / "all.csv").read_text()
    for model in FIXTURE_MODELS:
        assert f",{model}," in table, model
    for model in LEFT_OUT_OF_FIXTURE:
        assert f",{model}," not in table, model
    # the executed notebook is kept; the rendered report has no code cells
    assert (results / "notebooks" / "02_train" / "demo-comvc-seed0.ipynb").is_file()
    assert "import " not in (reports / "02_train" / "demo-comvc-seed0.html").read_text().split("<body")[1][:20000]


def test_snakemake_report_collects_the_captioned_outputs(demo_run, tmp_path):
    results, reports = demo_run
    out = tmp_path / "report.zip"
    run = snakemake("--cores", "1", "--configfile", *demo_configfiles(results), "--config",
                    f"results_dir={results}", f"report_dir={reports}", "--report", str(out))
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    names = zipfile.ZipFile(out).namelist()
    for wanted in ("evaluate.html", "related.html", "demo.csv"):
        assert any(n.endswith(wanted) for n in names), wanted
    assert sum(n.endswith(".png") for n in names) >= 10  # one adversarial-example figure per attack run


def planned_jobs(results, reports) -> dict[str, int]:
    """Jobs a dry run of the demo plans, by rule (Snakemake's job stats), for the finished demo_run."""
    run = snakemake("-n", "--cores", "1", "--configfile", *demo_configfiles(results), "--config",
                    f"results_dir={results}", f"report_dir={reports}")
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    stats = re.search(r"Job stats:\njob\s+count\n[-\s]+\n(.*?)\ntotal", run.stdout, re.S)
    return {} if stats is None else {line.split()[0]: int(line.split()[1]) for line in stats.group(1).splitlines()}


def test_a_changed_setting_reruns_exactly_the_jobs_that_use_it(demo_run):
    """Jobs are given the values they use, so a finished DAG plans nothing; a comment changes no value; the
    attack's epochs rerun the runs of the GAN attack (the ablation, the eps sweep and the sensitivity sweep's
    included, never PGD, the black-box or the embedding attack, which have their own settings) and what reads
    them, and no training. The overlay is edited in place: the list of config files stays the same."""
    results, reports = demo_run
    overlay = Path(demo_configfiles(results)[1])
    original = overlay.read_text()
    assert planned_jobs(results, reports) == {}
    try:
        overlay.write_text(original + "# a comment changes no value\n")
        assert planned_jobs(results, reports) == {}
        overlay.write_text(original.replace("attack:\n  epochs: 2\n", "attack:\n  epochs: 1\n"))
        jobs = planned_jobs(results, reports)
    finally:
        overlay.write_text(original)
    gan_runs = len(list((results / "metrics").glob("demo/*/gan-*/*/seed*.json")))
    sensitivity_points = len(list((results / "sensitivity").glob("demo/*/seed*.json")))
    assert gan_runs > 0 and sensitivity_points > 0
    # the consumers: the transfer table and the detection of the paper's attack read its generators; the
    # tables and the index read every metrics file
    assert jobs == {"attack": gan_runs, "sensitivity_point": sensitivity_points, "detect": 1, "transfer": 1,
                    "evaluate": 1, "related": 1, "report_index": 1, "all": 1}


@pytest.mark.parametrize("name", [m for m in FIXTURE_MODELS if registry.entry(m).family == "baseline"])
def test_baseline_beats_chance_on_demo_digits(name, demo_run):
    """The fixture's baselines; the demo's others: tests/test_core_train.py, with the same settings."""
    results, _ = demo_run
    scores = read_json(results / "metrics" / "demo" / name / "clean" / "seed0.json")["clean"]
    # 10 classes: chance is ~0.1; the bound clears seeds 0-4 (tests/outcomes.py, comvc-acc: ACC 0.67-0.83)
    assert scores["acc"] > 0.2, scores
    meta = torch.load(results / "models" / "demo" / name / "seed0.pt", weights_only=True)["meta"]
    assert len(meta["history"]) == int(meta["train"]["epochs"]) + int(meta["train"].get("pretrain_epochs") or 0)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
ARTIFACTS = ROOT / "test-artifacts"
# the demo's reports weigh ~6 MB (the shared CSS once, ~45 pages); the budget leaves room, and fails
# if the CSS is inlined into every page again (~260 KB each) or the figures grow several-fold
SIZE_BUDGET = 10_000_000

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")


def browse(path: Path, tmp_path, *extra) -> tuple[str, list[str]]:
    """(DOM after load, console error lines) of a local page."""
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *extra, "--dump-dom",
                          path.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    errors = [line for line in console if re.search(r"error|uncaught|failed to load", line, re.I)]
    return run.stdout, errors


def check_page(dom: str, name: str, run_root: str) -> None:
    """The invariants every rendered page keeps (`dom` as the browser built it)."""
    assert "application/vnd.jupyter.stderr" not in dom, f"{name} shows stderr output (progress bars, warnings)"
    assert run_root not in dom, f"{name} shows the run's folder {run_root}"
    assert not re.findall(ABSOLUTE_PATH, dom), f"{name} shows an absolute path: {re.findall(ABSOLUTE_PATH, dom)[:3]}"
    assert 'class="provenance"' in dom, f"{name} has no provenance header"
    assert 'href="../index.html"' in dom, f"{name} has no link back to the index"
    for img in re.findall(r"<img[^>]*>", dom):
        alt = re.search(r'alt="([^"]*)"', img)
        assert alt and alt.group(1).strip() and "No description" not in alt.group(1), f"{name}: image without alt text"


@needs_chromium
def test_reports_open_in_a_browser_without_errors(demo_run, tmp_path):
    results, reports = demo_run
    run_root = str(results.parent)
    landing = reports.parent / "index.html"
    dom, errors = browse(landing, tmp_path)
    assert not errors, errors
    assert 'href="demo/index.html"' in dom
    index = reports / "index.html"
    dom, errors = browse(index, tmp_path)
    assert not errors, errors
    check_page(dom, "index.html", run_root)
    landing_dom = browse(landing, tmp_path)[0]
    assert "verdicts:" in landing_dom and "class=\"bottom-line\"" in landing_dom, "the landing page has no bottom line"
    # every href and src of every page and no absolute path in any page or shipped file
    broken, paths = report_defects(reports.parent)
    assert not broken, f"{len(broken)} broken links, e.g. {broken[:3]}"
    assert not paths and not any(str(results.parent) in f.read_text() for f in reports.rglob("*")
                                 if f.suffix in (".html", ".json", ".csv", ".yaml")), paths[:3]
    links = [link for link in re.findall(r'href="([^"#]+\.html)"', dom) if not link.startswith("../")]
    assert len(links) >= 6
    for link in re.findall(r'href="(data/[^"#]+)"', dom):
        assert (index.parent / link).exists(), f"broken data link {link}"
    for link in links:
        page = (index.parent / link)
        assert page.is_file(), f"broken link {link}"
        page_dom, errors = browse(page, tmp_path)
        assert not errors, (link, errors)
        check_page(page_dom, link, run_root)
        for target in re.findall(r'(?:href|src)="(\.\./[^"#]+)"', page_dom):
            assert (page.parent / target).exists(), f"{link} links {target}, which does not exist"
        # every notebook draws; a figure that reached the page as its text repr was never rendered
        assert "<img" in page_dom, f"{link} shows no figure"
        assert "&lt;Figure size" not in page_dom, f"{link} has a figure that was not rendered as an image"

    evaluate = reports / "06_evaluate" / "evaluate.html"
    dom, _ = browse(evaluate, tmp_path)
    assert 'id="table1"' in dom and "paper" in dom
    figures = dom.count("<img")
    assert figures >= 6, f"expected the drop, ablation, eps, sensitivity, t-SNE and example figures; found {figures}"
    related, _ = browse(reports / "08_related" / "related.html", tmp_path)
    assert "<img" in related, "the transfer heat map is missing"
    assert "iforest-h" in related and "queries" in related and "embedding" in related
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "evaluate.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400",
                    f"--screenshot={shot}", evaluate.resolve().as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
    size = sum(f.stat().st_size for f in reports.rglob("*") if f.is_file())
    assert size < SIZE_BUDGET, f"the demo reports weigh {size / 1e6:.1f} MB, over the {SIZE_BUDGET / 1e6:.0f} MB budget"


# --- a run's results merged into a fresh folder (robustmvc.results): the DAG plans only what it lacks -------

def planned(results_dir, reports, *overlays, inputs=None):
    """{rule: [wildcards of each job]} a dry run of the demo (and `overlays`) plans for these folders; with a
    dict as `inputs`, each job's input line goes in it under (rule, wildcards)."""
    run = snakemake("-n", "--cores", "1", "--configfile", *demo_configfiles(results_dir), *overlays, "--config",
                    f"results_dir={results_dir}", f"report_dir={reports}")
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    jobs = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\nrule |\[[^\]]+\]\nlocalrule )", run.stdout):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if rule:
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            job = wildcards.group(1) if wildcards else ""
            jobs.setdefault(rule.group(1), []).append(job)
            if inputs is not None:
                given = re.search(r"^\s+input: (.*)$", block, re.M)
                inputs[rule.group(1), job] = given.group(1) if given else ""
    return jobs


@pytest.mark.slow
def test_a_fresh_folder_with_merged_results_plans_only_what_is_missing(demo_run, tmp_path):
    """The demo run on seed 0 exported, merged into a fresh folder, and the config given seed 1: the dry run
    plans seed 1's jobs and the reports, nothing of seed 0."""
    res, rep = demo_run
    made = portable.export(res, rep, tmp_path / "demo.tar.gz")
    assert made["bytes"] < 5_000_000
    fresh, fresh_rep = tmp_path / "fresh" / "results", tmp_path / "fresh" / "reports" / "demo"
    fresh.mkdir(parents=True)
    write_demo_configfiles(fresh)
    before = planned(fresh, fresh_rep)
    assert len(before["train"]) == len(FIXTURE_MODELS) and "prepare_data" in before
    portable.merge(tmp_path / "demo.tar.gz", fresh, fresh_rep)
    same = planned(fresh, fresh_rep)
    assert sorted(same) == ["all", "evaluate", "related", "report_index"], same
    (fresh.parent / "seeds.yaml").write_text("seeds: [0, 1]\n")
    grown = planned(fresh, fresh_rep, str(fresh.parent / "seeds.yaml"))
    seeded = {rule: jobs for rule, jobs in grown.items() if any("seed=" in j for j in jobs)}
    assert set(seeded) == {"train", "attack", "sensitivity_point"} | ({"attack_pgd"} & set(before)), grown
    assert all("seed=1" in job for jobs in seeded.values() for job in jobs)
    assert len(grown["train"]) == len(before["train"])
    assert sorted(set(grown) - set(seeded)) == ["all", "evaluate", "prepare_data", "related", "report_index"]
    # a training merged without its checkpoint and without a result made from it (a shard stopped before its
    # attacks, as shards did before they carried checkpoints) is trained again with its attacks, not planned
    # with no inputs; one with results made from it and others still to make is refused, naming the fix
    for attacked in (fresh / "metrics" / "demo" / "ardmvc").glob("*/*/seed0.json"):
        attacked.unlink()
    given = {}
    orphan = planned(fresh, fresh_rep, inputs=given)
    assert orphan["train"] == ["dataset=demo, model=ardmvc, seed=0"], orphan
    assert "data/demo.npz" in given["train", "dataset=demo, model=ardmvc, seed=0"], given
    assert sorted(orphan["attack"]) == [f"dataset=demo, model=ardmvc, variant=gan-both, protocol={p}, seed=0"
                                        for p in ("paper", "strict")], orphan
    (fresh / "metrics" / "demo" / "simvc" / "gan-both" / "strict" / "seed0.json").unlink()
    refused = snakemake("-n", "--cores", "1", "--configfile", *demo_configfiles(fresh), "--config",
                        f"results_dir={fresh}", f"report_dir={fresh_rep}")
    assert refused.returncode != 0 and "add the line demo/simvc/seed0" in refused.stdout + refused.stderr


@pytest.mark.slow
def test_a_shard_stopped_before_the_related_stage_carries_what_it_reads(demo_run, tmp_path):
    """A copy of the demo run as a shard leaves it when stopped before the transfer and detection jobs: the
    `carry` rule lists the checkpoints and attackers those jobs read (the t-SNE's are not: the evaluation is
    done), the export carries them, and a fresh folder that merges it plans those jobs and no training or
    attack (without them it would train and attack again every model they read)."""
    res, rep = demo_run
    cut, cut_rep = tmp_path / "cut" / "results", tmp_path / "cut" / "reports" / "demo"
    shutil.copytree(res, cut)
    shutil.copytree(rep, cut_rep)
    for unfinished in ("transfer", "detection"):
        shutil.rmtree(cut / unfinished)
    write_demo_configfiles(cut)
    run = snakemake("carry", "--forcerun=carry", "--cores", "1", "--configfile", *demo_configfiles(cut), "--config",
                    f"results_dir={cut}", f"report_dir={cut_rep}")  # the target first: the options take lists
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    listed = sorted((cut / "carry.txt").read_text().split())
    transfer = ("simvc", "comvc", "ardmvc-am", "alrdc")  # config/demo.yaml's transfer models, all in the fixture
    detected = yaml.safe_load(FIXTURE_CONFIGS[1].read_text())["detection"]["attacks"]  # of comvc, as the demo's
    assert listed == sorted({*(f"models/demo/{m}/seed0.pt" for m in transfer),
                             *(f"attacks/demo/{m}/gan-both/paper/seed0.pt" for m in transfer),
                             *(f"attacks/demo/comvc/{v}/paper/seed0.pt" for v in detected)})
    fresh = tmp_path / "fresh" / "results"
    portable.export(cut, cut_rep, fresh.parent / "shard.tar.gz", carry=cut / "carry.txt")
    fresh.mkdir(parents=True)
    write_demo_configfiles(fresh)
    portable.merge(fresh.parent / "shard.tar.gz", fresh, fresh.parent / "reports" / "demo")
    jobs = planned(fresh, fresh.parent / "reports" / "demo")
    assert sorted(jobs) == ["all", "detect", "evaluate", "prepare_data", "related", "report_index", "transfer"], jobs
