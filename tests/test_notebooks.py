"""A notebook run by hand with its default parameters writes into a scratch folder, never into the
folders a workflow run fills: there it would overwrite tracked outputs and make Snakemake rerun
everything downstream of them."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
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
    assert len(NOTEBOOKS) >= 8
    assert all(defaults(nb) for nb in NOTEBOOKS)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_default_paths_under_results_are_scratch_or_read_only(notebook):
    under_results = {k: v for k, v in defaults(notebook).items() if isinstance(v, str) and v.startswith("results")}
    outside = {k: v for k, v in under_results.items()
               if not v.startswith(SCRATCH) and (notebook.stem, k) not in READ_ONLY}
    assert not outside, f"{notebook.name} defaults outside {SCRATCH}: {outside}"
