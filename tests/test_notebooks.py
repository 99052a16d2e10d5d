"""A notebook run by hand with its default parameters writes into a scratch folder, never into the
folders a workflow run fills: there it would overwrite tracked outputs and make Snakemake rerun
everything downstream of them."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCRATCH = "results/scratch/"
# defaults under results/ that a notebook only reads: the workflow's results it summarises, the raw
# download cache every dataset build shares
READ_ONLY = {("06_evaluate", "results"), ("08_related", "results"), ("01_prepare_data", "cache_dir")}


def defaults(path: Path) -> dict:
    cells = json.loads(path.read_text())["cells"]
    source = "".join(next(c for c in cells if "parameters" in c["metadata"].get("tags", []))["source"])
    values: dict = {}
    exec(source, {}, values)  # the parameters cell is plain assignments of literals
    return values


def test_every_notebook_has_a_parameters_cell():
    assert all(defaults(nb) for nb in NOTEBOOKS)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter_the_cell_assigns(notebook):
    """A line papermill cannot parse (its help comment holding `=`) makes every run warn "Passed unknown
    parameter" for a parameter that is in fact injected: noise that reads like a wiring fault."""
    import papermill

    assert set(papermill.inspect_notebook(str(notebook))) == set(defaults(notebook))


def test_every_notebook_is_run_by_a_rule_and_every_rule_runs_a_notebook_that_exists():
    """One notebook per stage (one training notebook for every model): none lies unused beside the rules."""
    named = {m for f in (ROOT / "rules").glob("*.smk") for m in re.findall(r"notebooks/(\w+)\.ipynb", f.read_text())}
    assert named == {nb.stem for nb in NOTEBOOKS}


def test_notebooks_are_committed_without_outputs_or_execution_counts():
    for nb in NOTEBOOKS:
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, nb.name


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_default_paths_under_results_are_scratch_or_read_only(notebook):
    under_results = {k: v for k, v in defaults(notebook).items() if isinstance(v, str) and v.startswith("results")}
    outside = {k: v for k, v in under_results.items()
               if not v.startswith(SCRATCH) and (notebook.stem, k) not in READ_ONLY}
    assert not outside, f"{notebook.name} defaults outside {SCRATCH}: {outside}"


def _tiny_notebook(path: Path, body: str) -> None:
    """A two-cell notebook: a tagged parameters cell, then `body`."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("divisor = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_the_notebook_command_injects_parameters_and_renders_outputs_without_code(tmp_path):
    from robustmvc.cli import main

    source, executed, page = tmp_path / "nb.ipynb", tmp_path / "run.ipynb", tmp_path / "out" / "run.html"
    _tiny_notebook(source, "print('quotient', 84 // divisor)")
    assert main(["notebook", str(source), str(executed), str(page), "--params", '{"divisor": 2}']) == 0
    html = page.read_text()
    assert "quotient 42" in html  # the injected 2, not the default 1
    assert "84 // divisor" not in html and "<title>run</title>" in html
    assert "quotient 42" in executed.read_text()


def test_a_failing_notebook_is_one_error_line_and_keeps_its_executed_copy(tmp_path, capsys):
    from robustmvc.cli import main

    source, executed, page = tmp_path / "nb.ipynb", tmp_path / "run.ipynb", tmp_path / "run.html"
    _tiny_notebook(source, "1 / (divisor - 1)")
    assert main(["notebook", str(source), str(executed), str(page)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "ZeroDivisionError" in err and str(executed) in err
    assert "ZeroDivisionError" in executed.read_text() and not page.exists()
