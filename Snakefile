# robustmvc: the paper's experiment as a DAG of papermill notebooks over the robustmvc package.
#   snakemake --cores all                                   the paper's experiment (config/config.yaml)
#   snakemake --cores all --configfile config/demo.yaml     the embedded demo, CPU, minutes
import json
import os
import shlex
import sys

from snakemake.utils import min_version, validate

from robustmvc.config import check_model_names

min_version("9.0")


# The paper's experiment unless --configfile names others (which then replace it, not extend it:
# the demo must not inherit the paper's datasets). Overlays go after the base: --configfile A B.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")
check_model_names(config, "the Snakemake config")

PY = shlex.quote(sys.executable)  # the interpreter snakemake runs in, so tools need not be on PATH
R = config["results_dir"]
REPORTS = config["report_dir"]
SEEDS = config["seeds"]
# an overlay leaves a dataset out by setting it to null; RegDB is left out until its folder is set
DATASETS = [d for d, e in config["datasets"].items() if e is not None and (d != "regdb" or e.get("dir"))]
MODELS = list(config["models"])


def seeds_of(model):
    """Seeds `model` is trained and attacked with: `seeds_per_model.<model>`, else `seeds`."""
    return (config.get("seeds_per_model") or {}).get(model, SEEDS)


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(sorted(MODELS, key=len, reverse=True)),
    seed=r"\d+",
    lam=r"[0-9.e+-]+",
    gam=r"[0-9.e+-]+",


CONFIGFILES = [os.path.relpath(f) for f in (workflow.overwrite_configfiles or ["config/config.yaml"])]


# What every torch job (training, attack, sensitivity_point, transfer, detect) declares. `threads:` becomes
# its torch.set_num_threads (notebook parameter `threads`, CLI --threads), so `--cores all` runs
# cores / threads jobs at once and never oversubscribes. `gpu` is 1 when `device` resolves to cuda, else 0:
# on a GPU machine `snakemake --cores all --resources gpu=N` runs N torch jobs at once on the GPU(s)
# (e.g. gpu=4 shares one large GPU between four jobs); mem_mb and runtime (minutes) are for cluster profiles.
TORCH_THREADS = int(config.get("threads", 4))


def _uses_gpu():
    device = config.get("device", "auto")
    if device != "auto":
        return int(device.startswith("cuda"))
    import torch  # only when the config leaves the device to the machine

    return int(torch.cuda.is_available())


TORCH_RESOURCES = {"gpu": _uses_gpu(), **(config.get("job_resources") or {"mem_mb": 16000, "runtime": 240})}


def notebook_args(params):
    """Notebook parameters as one shell-quoted JSON argument for papermill's -y."""
    return shlex.quote(json.dumps(params))


def papermill(notebook):
    """Shell command of a notebook rule: run the notebook with `params.nb`, keep the executed copy
    as the rule's log (kept when the job fails), and render it without code to `output.html`."""
    return (
        f"{PY} -m papermill --cwd . -k python3 {notebook} {{log.notebook:q}} -y {{params.nb}}"
        f" && {PY} -m nbconvert --to html --no-input --log-level WARN {{log.notebook:q}}"
        " --TemplateExporter.extra_template_basedirs=notebooks/templates --template offline"
        ' --output-dir "$(dirname {output.html:q})" --output "$(basename {output.html:q} .html)"'
    )


include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/attack.smk"
include: "rules/report.smk"
include: "rules/evaluate.smk"
include: "rules/related.smk"


rule all:
    input:
        f"{REPORTS}/index.html",
