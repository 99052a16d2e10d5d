# Evaluation stage: the eps sweep (extra attack variants, under the protocols of every extra variant),
# the lambda/gamma (and KL direction) sensitivity sweep of the defense, and notebook 06, which
# aggregates every metrics file into Table 1 and the figures.

EPS_SWEEP = EVALUATION["eps_sweep"]
SWEEP_DATASETS = [d for d in EPS_SWEEP["datasets"] if d in DATASETS]
EPS_SWEEP_RUNS = [
    (d, m, v, p, s)
    for d in SWEEP_DATASETS
    for m in EPS_SWEEP.get("models", MODELS)  # a default the schema cannot state: every model
    if m in MODELS
    for v in (variants.name("gan", "both", e) for e in EPS_SWEEP["eps"])
    for p in attack_protocols(v)
    for s in attack_seeds(m, v)
]
EPS_SWEEP_METRICS = [attack_run(*run)["metrics"] for run in EPS_SWEEP_RUNS]
READERS += [(attack_run(d, m, v, p, s)["metrics"], [checkpoint_of(d, m, s)]) for d, m, v, p, s in EPS_SWEEP_RUNS]

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

def sensitivity_settings(w):
    """(training, attack) settings of one point of the sweep: the swept model with the point's weights and KL
    direction, attacked by the paper's attack under the sweep's protocol."""
    train = config_mod.train_job(config, SENSITIVITY["model"], w.dataset, adv_weight=float(w.lam),
                                 kl_weight=float(w.gam), kl_direction=w.kl)
    attack = config_mod.attack_job(config, "gan", w.dataset, objective="both", protocol=SENSITIVITY["protocol"],
                                   seed=int(w.seed))
    return train, attack


def sensitivity_kept(dataset, lam, gam, kl, seed):
    """A merged point of the sweep (its checkpoint is temporary, so always gone): its metrics record the point's
    attack settings (the training's are not recorded beside them, so a point merged from a run with other
    training settings is not retrained)."""
    w = SimpleNamespace(dataset=dataset, lam=lam, gam=gam, kl=kl, seed=seed)
    point = f"{R}/sensitivity/{dataset}/lambda{lam}-gamma{gam}-kl{kl}/seed{seed}"
    return results_mod.kept(f"{point}.json", lineage.attack_hash(sensitivity_settings(w)[1]), f"{point}.pt", brought=MERGED)


rule sensitivity_point:
    input:
        unpack(unless_kept(sensitivity_kept, lambda w: {"data": f"{R}/data/{w.dataset}.npz"})),
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
        train=lambda w: config_mod.canonical(sensitivity_settings(w)[0]),
        attack=lambda w: config_mod.canonical(sensitivity_settings(w)[1]),
        model=SENSITIVITY["model"],
    threads: TORCH_THREADS
    resources:
        **TORCH_RESOURCES,
    shell:
        f"({PY} -m robustmvc train --data {{input.data:q}} --model {{params.model}} --settings {{params.train:q}}"
        " --threads {threads} --seed {wildcards.seed} --out {output.checkpoint:q}"
        f" && {PY} -m robustmvc attack --data {{input.data:q}} --checkpoint {{output.checkpoint:q}} --attack gan"
        " --settings {params.attack:q} --threads {threads} --out {output.metrics:q}) > {log:q} 2>&1"


# what notebook 06 uses besides the files it reads: the evaluation settings and the config the scale summary,
# the claims and the eps curve's training radius read (robustmvc.claims, robustmvc.tables.training_radius)
EVALUATE_VALUES = {
    "scale": EVALUATION["scale"],
    "tolerance": EVALUATION["tolerance"],
    "eps_sweep_datasets": SWEEP_DATASETS,
    "tsne_models": EVALUATION["tsne_models"],
    "tsne_samples": EVALUATION["tsne_samples"],
    "sensitivity_dataset": SENSITIVITY["dataset"],
    "protocols": PROTOCOLS,
    "precision": config["precision"],
    "config": {k: config[k] for k in ("device", "datasets", "architecture", "training", "models", "attack", "evaluation")},
}


# the t-SNE panels draw each of `tsne_models`' first seed and its generator under the first protocol
# (robustmvc.tables.tsne_runs), read without being inputs: a figure left out rather than a run made for it
READERS += [
    (f"{R}/metrics/all.csv",
     [checkpoint_of(d, m, first_seed(m)), attack_run(d, m, "gan-both", PROTOCOLS[0], first_seed(m))["generator"]])
    for d in DATASETS
    for m in EVALUATION["tsne_models"]
    if m in MODELS
]
READ_IF_THERE.add(f"{R}/metrics/all.csv")


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
        values=config_mod.canonical(EVALUATE_VALUES),
        nb=lambda w, input, output: notebook_args(
            {
                "results": R,
                "table": output.table,
                "scorecard": output.scorecard,
                "paper_table": "config/paper_table1.yaml",
                **EVALUATE_VALUES,
                # the runs the config names (under {R}/metrics): a metrics file on disk that is not one is left out
                "runs": [os.path.relpath(f, f"{R}/metrics") for f in (*input.clean, *input.attacks, *input.eps_sweep)],
            }
        ),
    shell:
        papermill("notebooks/06_evaluate.ipynb")
