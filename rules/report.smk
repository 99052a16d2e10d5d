from pathlib import Path

# Report stage: the landing page linking every rendered notebook, with clean metrics and stage times.

REPORT_INPUTS = {
    "data": expand(f"{REPORTS}/01_prepare_data/{{dataset}}.html", dataset=DATASETS),
    "train": expand(
        f"{REPORTS}/02_train/{{dataset}}-{{model}}-seed{{seed}}.html", dataset=DATASETS, model=MODELS, seed=SEEDS
    ),
    "metrics": expand(
        f"{R}/metrics/{{dataset}}/{{model}}/clean/seed{{seed}}.json", dataset=DATASETS, model=MODELS, seed=SEEDS
    ),
}


rule report_index:
    input:
        **REPORT_INPUTS,
    output:
        scale=f"{REPORTS}/index.html",
        landing=f"{Path(REPORTS).parent}/index.html",
    params:
        configs=" ".join(CONFIGFILES),
    shell:
        f"{PY} -m robustmvc report --results {R} --reports {REPORTS} --configs {{params.configs}}"
