# Report stage: the landing page linking every rendered notebook, with clean metrics and stage times.


rule report_index:
    input:
        data=expand(f"{REPORTS}/01_prepare_data/{{dataset}}.html", dataset=DATASETS),
        train=TRAIN_REPORTS,
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
        " --landing {output.landing:q}"
