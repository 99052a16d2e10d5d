# Evaluation stage: the eps sweep (extra attack variants, under the protocols of every extra variant),
# the lambda/gamma (and KL direction) sensitivity sweep of the defense, and notebook 06, which
# aggregates every metrics file into Table 1 and the figures.

EPS_SWEEP = EVALUATION["eps_sweep"]
SWEEP_DATASETS = [d for d in EPS_SWEEP["datasets"] if d in DATASETS]
EPS_SWEEP_METRICS = [
    attack_run(d, m, v, p, s)["metrics"]
    for d in SWEEP_DATASETS
    for m in EPS_SWEEP.get("models", MODELS)  # a default the schema cannot state: every model
    for v in (variants.name("gan", "both", e) for e in EPS_SWEEP["eps"])
    for p in attack_protocols(v)
    for s in attack_seeds(m, v)
]

SENSITIVITY = config["sensitivity"]
SENSITIVITY_METRICS = (
    [
        f"{R}/sensitivity/{SENSITIVITY['dataset']}/lambda{lam}-gamma{gam}-kl{kl}/seed{s}.json"
        for lam in SENSITIVITY["adv_weight"]
        for gam in SENSITIVITY["kl_weight"]
        for kl in SENSITIVITY["kl_direction"]
        for s in SEEDS
    ]
    if SENSITIVITY["dataset"] in DATASETS
    else []
)

rule sensitivity_point:
    input:
        data=f"{R}/data/{{dataset}}.npz",
    output:
        checkpoint=temp(f"{R}/sensitivity/{{dataset}}/lambda{{lam}}-gamma{{gam}}-kl{{kl}}/seed{{seed}}.pt"),
        metrics=f"{R}/sensitivity/{{dataset}}/lambda{{lam}}-gamma{{gam}}-kl{{kl}}/seed{{seed}}.json",
    log:
        f"{R}/logs/sensitivity/{{dataset}}-lambda{{lam}}-gamma{{gam}}-kl{{kl}}-seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/07_sensitivity/{{dataset}}-lambda{{lam}}-gamma{{gam}}-kl{{kl}}-seed{{seed}}.tsv"
    wildcard_constraints:
        kl="paper|code",
    params:
        model=SENSITIVITY["model"],
        protocol=SENSITIVITY["protocol"],
    threads: TORCH_THREADS
    resources:
        **TORCH_RESOURCES,
    shell:
        f"({PY} -m robustmvc train --data {{input.data:q}} --model {{params.model}} {CONFIG_ARGS} --threads {{threads}}"
        " --set adv_weight={wildcards.lam} --set kl_weight={wildcards.gam} --set kl_direction={wildcards.kl}"
        " --seed {wildcards.seed} --out {output.checkpoint:q}"
        f" && {PY} -m robustmvc attack --data {{input.data:q}} --checkpoint {{output.checkpoint:q}} {CONFIG_ARGS}"
        " --threads {threads} --attack gan --objective both --protocol {params.protocol} --out {output.metrics:q})"
        " > {log:q} 2>&1"


rule evaluate:
    input:
        clean=CLEAN_METRICS,
        attacks=ATTACK_METRICS,
        eps_sweep=EPS_SWEEP_METRICS,
        sensitivity=SENSITIVITY_METRICS,
        # the worst-attack column counts the best transferred generator (rules/related.smk)
        transfer=TRANSFER_TABLES,
    output:
        table=f"{R}/metrics/all.csv",
        scorecard=f"{R}/metrics/scorecard.json",
        html=report(f"{REPORTS}/06_evaluate/evaluate.html", caption="captions/evaluate.rst", category="Evaluation"),
    log:
        notebook=f"{R}/notebooks/06_evaluate/evaluate.ipynb",
    benchmark:
        f"{R}/benchmarks/06_evaluate/evaluate.tsv"
    params:
        nb=lambda w, input, output: notebook_args(
            {
                "results": R,
                "table": output.table,
                "scorecard": output.scorecard,
                "config_files": CONFIGFILES,
                "paper_table": "config/paper_table1.yaml",
                "scale": EVALUATION["scale"],
                "tolerance": EVALUATION["tolerance"],
                "eps_sweep_datasets": SWEEP_DATASETS,
                "tsne_models": EVALUATION["tsne_models"],
                "tsne_samples": EVALUATION["tsne_samples"],
                "sensitivity_dataset": SENSITIVITY["dataset"],
                "protocols": PROTOCOLS,
                # the runs the config names (under {R}/metrics): a metrics file on disk that is not one is left out
                "runs": [os.path.relpath(f, f"{R}/metrics") for f in (*input.clean, *input.attacks, *input.eps_sweep)],
            }
        ),
    shell:
        papermill("notebooks/06_evaluate.ipynb")
