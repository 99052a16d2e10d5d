# robustmvc: the paper's experiment as a DAG of papermill notebooks over the robustmvc package.
#   snakemake --cores all                                   the paper's experiment (config/config.yaml)
#   snakemake --cores all --configfile config/demo.yaml     the embedded demo, CPU, minutes
from snakemake.utils import min_version, validate

from robustmvc.config import validate as check_config

min_version("9.0")


# The paper's experiment unless --configfile names others (which then replace it, not extend it:
# the demo must not inherit the paper's datasets). Overlays go after the base: --configfile A B.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# one sentence naming the key (renamed keys, the schema, the model names); then snakemake's validate, which
# also fills in the schema's defaults, so the rules read every setting as config["a"]["b"]
check_config(config, source="the Snakemake config")
validate(config, "config/schema.yaml")


include: "rules/common.smk"  # first: the names every stage shares
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/attack.smk"
include: "rules/evaluate.smk"
include: "rules/related.smk"
include: "rules/report.smk"


# The results as well as the rendered report: a fresh clone carries committed reports but no results, and
# Snakemake does not rebuild a present target for missing intermediates alone.
rule all:
    input:
        f"{REPORTS}/index.html",
        f"{R}/metrics/scorecard.json",
