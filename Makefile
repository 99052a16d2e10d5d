# Each target sets itself up on a fresh machine (a .venv) before it runs.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
# make benchmark: encoder width and torch threads
WIDTH ?= 64
THREADS ?= 2
CPU_SCALE := --configfile config/config.yaml config/cpu-scale.yaml
# make cpu-scale-shard: hours of the run one machine does (the jobs still running then are stopped and lost)
SHARD_HOURS ?= 2.5
# where a shard renders its per-job pages: reports/cpu-scale is rendered whole once every shard is in
SHARD_PAGES ?= results/cpu-scale/pages
PAGES ?= reports/cpu-scale
# make gpu-lease-plan / gpu-lease / gpu-scale: the claims at the paper's scale on a lent GPU (config/gpu-lease.yaml)
GPU_SCALE := --configfile config/config.yaml config/gpu-lease.yaml
LEASE := results/gpu-lease
LEASE_MINUTES ?= 4
LEASE_ARCHIVE ?= shards/gpu-scale/$$(date -u +%Y%m%d-%H%M).tar.gz
FASHION ?= /usr/share/datasets/fashion-mnist
MNIST_10K ?= ../shared/data/mnist-10k
# The CPU wheel on machines that have it; on a GPU machine pip resolves the CUDA build of the same version.
TORCH ?= torch==2.13.0

.PHONY: setup demo reproduce cpu-scale merge-shards cpu-scale-data cpu-scale-shard gpu-lease-inputs gpu-lease-plan gpu-lease gpu-scale test benchmark clean

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

cpu-scale: cpu-scale-data  ## the paper's experiment shrunk to 2 CPU cores (config/cpu-scale.yaml overlay), continued from the committed shards; prints its estimate first
	PATH=$(CURDIR)/$(BIN):$$PATH python benchmarks/estimate_run.py $(CPU_SCALE)
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores $(CORES) $(CPU_SCALE)

merge-shards: setup  ## merge the committed shards of the CPU-scale run (shards/cpu-scale/*.tar.gz) into its results, less the trainings shards/cpu-scale/make-again.txt names
	for a in shards/cpu-scale/*.tar.gz; do [ ! -e "$$a" ] || $(BIN)/python -m robustmvc results merge "$$a" \
	  --results results/cpu-scale --reports $(PAGES) --leave-out shards/cpu-scale/make-again.txt || exit 1; done
	@# what merges brought carries no metadata of this machine (results.brought_files; snakemake warns for each file
	@# without any, hence the ignored status)
	-PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores 1 $(CPU_SCALE) --cleanup-metadata $$($(BIN)/python -c \
	  'from robustmvc import results; print(*results.brought_files("results/cpu-scale", "$(PAGES)"))') > /dev/null 2>&1

cpu-scale-data: merge-shards  ## the CPU-scale run's datasets first: one that cannot be built (Fashion-MNIST absent here: apt-get install dataset-fashion-mnist) stops the run before hours of work that would leave its runs out
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --until prepare_data --cores $(CORES) $(CPU_SCALE) --config report_dir=$(PAGES)

cpu-scale-shard: PAGES = $(SHARD_PAGES)

cpu-scale-shard: cpu-scale-data  ## one machine's share of the CPU-scale run: SHARD_HOURS of it, then what it added as a new shard, with the checkpoints and attackers the rest of the run reads
	-PATH=$(CURDIR)/$(BIN):$$PATH timeout --signal=INT --kill-after=10m $(SHARD_HOURS)h \
	  snakemake --cores $(CORES) $(CPU_SCALE) --config report_dir=$(SHARD_PAGES) --rerun-incomplete
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake carry --forcerun=carry --cores 1 $(CPU_SCALE) --config report_dir=$(SHARD_PAGES)
	$(BIN)/python -m robustmvc results export shards/cpu-scale/$$(date -u +%Y%m%d-%H%M).tar.gz --new-only \
	  --results results/cpu-scale --reports $(SHARD_PAGES) --carry results/cpu-scale/carry.txt

gpu-lease-inputs:  # the raw files the lease's datasets are built from, where config/gpu-lease.yaml names them
	mkdir -p $(LEASE)/raw/fashion-mnist $(LEASE)/raw/mnist-10k
	cp $(FASHION)/*-ubyte.gz $(LEASE)/raw/fashion-mnist/
	cp $(MNIST_10K)/*-ubyte.gz $(LEASE)/raw/mnist-10k/

gpu-lease-plan: setup gpu-lease-inputs  ## before a GPU lease, here: the plan, its raw data and the committed lease shards in $(LEASE) (~35 MB; carry it)
	rm -rf $(LEASE)/results
	for a in shards/gpu-scale/*.tar.gz; do [ ! -e "$$a" ] || $(BIN)/python -m robustmvc results merge "$$a" \
	  --results $(LEASE)/results --reports $(LEASE)/pages || exit 1; done
	$(BIN)/python -m robustmvc lease plan $(GPU_SCALE) --out $(LEASE)/plan.json

gpu-lease:  ## on the lent GPU (no venv, no Snakemake): run the plan for LEASE_MINUTES, what it finished to LEASE_ARCHIVE
	PYTHONPATH=src python3 -m robustmvc lease run $(LEASE)/plan.json --results $(LEASE)/results \
	  --minutes $(LEASE_MINUTES) --archive $(LEASE_ARCHIVE) --threads 8

gpu-scale: setup gpu-lease-inputs  ## after the leases, here: merge shards/gpu-scale and render reports/gpu-scale on the CPU
	for a in shards/gpu-scale/*.tar.gz; do [ ! -e "$$a" ] || $(BIN)/python -m robustmvc results merge "$$a" \
	  --results results/gpu-scale --reports reports/gpu-scale || exit 1; done
	PATH=$(CURDIR)/$(BIN):$$PATH snakemake --cores $(CORES) $(GPU_SCALE) --config device=cpu

test: setup  ## the test suite (what CI runs): two workers of one thread each, a file to a worker (the demo DAG's tests share tests/test_demo_dag.py)
	PATH=$(CURDIR)/$(BIN):$$PATH OMP_NUM_THREADS=1 python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

benchmark: setup  ## our trainer vs a public-code-style loop; seeds side by side vs one after another (S = 1, 5, 10)
	$(BIN)/python benchmarks/side_by_side.py --width $(WIDTH) --threads $(THREADS)
	$(BIN)/python benchmarks/seeds.py --width $(WIDTH) --threads $(THREADS) --precision auto

clean:
	rm -rf results reports/demo reports/index.html .snakemake
