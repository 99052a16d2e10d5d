# Each target sets itself up on a fresh machine (a .venv) before it runs.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
# make benchmark: encoder width and torch threads
WIDTH ?= 64
THREADS ?= 2
# The CPU wheel on machines that have it; on a GPU machine pip resolves the CUDA build of the same version.
TORCH ?= torch==2.13.0

.PHONY: setup demo reproduce cpu-scale test benchmark clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test,cluster]"
	touch $@

setup: $(STAMP)

demo: setup  ## the whole DAG on embedded data, CPU, a few minutes -> reports/index.html
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores $(CORES) --configfile config/demo.yaml

reproduce: setup  ## the paper's experiment (config/config.yaml)
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores $(CORES)

cpu-scale: setup  ## the paper's experiment shrunk to 2 CPU cores (config/cpu-scale.yaml overlay); prints its estimate first
	PATH=$(CURDIR)/$(BIN):$$PATH python benchmarks/estimate_run.py --configfile config/config.yaml config/cpu-scale.yaml
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores $(CORES) --configfile config/config.yaml config/cpu-scale.yaml

test: setup  ## the test suite (what CI runs): two workers of one thread each, a file to a worker (the demo DAG's tests share tests/test_demo_dag.py)
	PATH=$(CURDIR)/$(BIN):$$PATH OMP_NUM_THREADS=1 python -m pytest -q -n 2 --dist loadfile

benchmark: setup  ## our trainer vs a public-code-style loop; seeds side by side vs one after another (S = 1, 5, 10)
	$(BIN)/python benchmarks/side_by_side.py --width $(WIDTH) --threads $(THREADS)
	$(BIN)/python benchmarks/seeds.py --width $(WIDTH) --threads $(THREADS) --precision auto

clean:
	rm -rf results reports/demo reports/index.html .snakemake
