# Report stage: the landing page linking every rendered notebook, with clean metrics and stage times.
from pathlib import Path

REPORT_CLEAN_METRICS = [f"{R}/metrics/{d}/{m}/clean/seed{s}.json" for d in DATASETS for m in MODELS for s in seeds_of(m)]


rule report_index:
    input:
        data=expand(f"{REPORTS}/01_prepare_data/{{dataset}}.html", dataset=DATASETS),
        train=[train_report(m, d, s) for d in DATASETS for m in MODELS for s in seeds_of(m)],
        attack=ATTACK_REPORTS,
        evaluate=f"{REPORTS}/06_evaluate/evaluate.html",
        scorecard=f"{R}/metrics/scorecard.json",
        related=f"{REPORTS}/08_related/related.html",
    output:
        scale=f"{REPORTS}/index.html",
        landing=f"{Path(REPORTS).parent}/index.html",
    params:
        configs=" ".join(shlex.quote(c) for c in CONFIGFILES),
    shell:
        f"{PY} -m robustmvc report --results {shlex.quote(R)} --reports {shlex.quote(REPORTS)} --configs {{params.configs}}"
