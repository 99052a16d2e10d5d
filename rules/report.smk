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


# A run spread over machines: what the jobs not finished here will read of what this machine made, for the
# shard's export (`robustmvc results export --carry`, `make cpu-scale-shard`). Not part of `all`: run it after
# the shard, `snakemake carry --forcerun=carry ...` with the run's config (the target first: --configfile and
# --config take lists), so the list is taken from the folder as the shard left it (it is made when the DAG is).
rule carry:
    output:
        f"{R}/carry.txt",
    params:
        files=lambda w: sorted({os.path.relpath(f, R) for result, read in READERS if not Path(result).exists()
                                for f in read if finished_with(f)}),
    localrule: True
    run:
        Path(output[0]).write_text("".join(f"{f}\n" for f in params.files))
