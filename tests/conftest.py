import os
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MNIST_10K = ROOT.parent / "shared" / "data" / "mnist-10k"
FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")

# Headless machines (CI among them) often name a non-interactive matplotlib backend; the reports must
# embed their figures all the same, so the tests run the notebooks under one.
os.environ["MPLBACKEND"] = "Agg"

# `make test` runs two workers, `--dist loadfile` handing out whole files in collection order (kept with
# --no-loadscope-reorder; xdist's own order is by test count), a worker taking the next file when it has two
# tests or fewer left. The longest files go first so that they run beside the rest instead of after it: the
# demo DAG's (its session fixture is most of the suite: ~930 s of 1,111 in `pytest --durations` on a 2-core
# AMD EPYC without AVX-512, where the count order started it 23rd), the Slurm run's (~320 s, mostly waiting
# on the executor's status checks), then every other file that took over a minute there.
LONGEST_FIRST = ("test_demo_dag.py", "test_cluster.py", "test_atomic_outputs.py", "test_regdb_dag.py",
                 "test_stack.py", "test_cli_workflow.py", "test_bad_inputs.py", "test_blackbox.py", "test_defenses.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


@pytest.fixture(scope="session")
def demo_data():
    from robustmvc import data

    return data.build("demo")


@pytest.fixture(scope="session")
def mnist10k():
    if not MNIST_10K.is_dir():
        pytest.skip(f"{MNIST_10K} not present (the shared 10k MNIST digits)")
    return MNIST_10K


def snakemake_exe():
    import shutil

    return shutil.which("snakemake", path=str(ROOT / ".venv" / "bin")) or shutil.which("snakemake")


def snakemake(*args, cwd=ROOT):
    import subprocess

    return subprocess.run([snakemake_exe(), *args], cwd=cwd, capture_output=True, text=True)


# The demo DAG fixture: the demo with tests/demo-fast.yaml's shorter training, on the models some stage of the
# demo names beyond Table 1 (PGD, the ablation, the black-box, embedding, transfer, detection, eps-sweep, t-SNE
# and sensitivity runs) and AR-DMVC, so every stage and every report runs. The demo's other baselines go
# through the same rules; each job costs ~8 s of CPU before its work (interpreter, kernel, imports), so the
# fixture leaves them out (an overlay setting them to false), and tests/test_core_train.py trains each of
# them with these settings instead.
FIXTURE_CONFIGS = (ROOT / "config" / "demo.yaml", ROOT / "tests" / "demo-fast.yaml")
FIXTURE_MODELS = ("simvc", "comvc", "ardmvc", "ardmvc-am", "alrdc")
LEFT_OUT_OF_FIXTURE = tuple(m for m in yaml.safe_load(FIXTURE_CONFIGS[0].read_text())["models"] if m not in FIXTURE_MODELS)


def demo_configfiles(results):
    """The --configfile list the demo_run fixture used: the demo, and beside `results` a copy of the fast
    overlay and the overlay that leaves out LEFT_OUT_OF_FIXTURE."""
    return ["config/demo.yaml", str(results.parent / "fast over lay.yaml"), str(results.parent / "fewer models.yaml")]


def write_demo_configfiles(results):
    """Write the overlays of `demo_configfiles(results)` and return the list."""
    configs = demo_configfiles(results)
    Path(configs[1]).write_text(FIXTURE_CONFIGS[1].read_text())
    Path(configs[2]).write_text(yaml.safe_dump({"models": {name: False for name in LEFT_OUT_OF_FIXTURE}}))
    return configs


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The demo DAG (with tests/demo-fast.yaml's shorter training) run once into a temporary folder:
    (results dir, reports dir of the demo scale). Every path it is given (results, reports, the overlay)
    sits under folders whose names hold a space and a non-ASCII letter, so each job that builds a shell
    command from paths is run with such paths."""
    root = tmp_path_factory.mktemp("demo") / "a dir é"
    results, reports = root / "rés ults", root / "rep orts" / "demo"
    root.mkdir()
    configs = write_demo_configfiles(results)
    run = snakemake("--cores", "2", "--configfile", *configs, "--config",
                    f"results_dir={results}", f"report_dir={reports}")
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return results, reports


def blob_views(n=60, k=3, seed=0):
    """Two views of k well-separated blob classes, in [0, 1] (numpy), and the class of each sample."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    views = []
    for _ in range(2):
        centres = rng.uniform(0.2, 0.8, size=(k, 1, 28, 28))
        views.append(np.clip(centres[labels] + rng.normal(0, 0.05, (n, 1, 28, 28)), 0, 1).astype(np.float32))
    return views, labels


# an absolute path of a machine on a page (the folders results and reports are written under, in practice)
ABSOLUTE_PATH = r"(?<![\w.:/~-])/(?:home|tmp|work|root|Users|mnt|scratch|var/folders)/[^\s<\"']*"


def report_defects(root: Path) -> tuple[list[str], list[str]]:
    """(links that do not resolve, absolute paths shown) over every HTML page under `root` and every
    shipped JSON, CSV and YAML file: each href and src of a page, relative to the page (external and
    in-page links aside, a #fragment dropped), must name a file or folder that exists."""
    import re
    from urllib.parse import unquote

    broken, paths = [], []
    for f in sorted(root.rglob("*")):
        if not f.is_file() or f.suffix not in (".html", ".json", ".csv", ".yaml"):
            continue
        text = f.read_text()
        paths += [f"{f.relative_to(root)}: {p}" for p in re.findall(ABSOLUTE_PATH, text)]
        if f.suffix != ".html":
            continue
        for link in re.findall(r"""(?:href|src)=["']([^"']+)["']""", text):
            if re.match(r"[a-z]+:", link) or link.startswith("#"):
                continue
            if not (f.parent / unquote(link.split("#")[0])).exists():
                broken.append(f"{f.relative_to(root)} -> {link}")
    return broken, paths
