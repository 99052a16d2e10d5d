# Related systems (docs/ARCHITECTURE.md, section 9). Their attacks are attack-stage variants (rules/attack.smk:
# `blackbox`, `whitebox`, `embedding`) and ALRDC is a model like any other (rules/train.smk); here: generators
# moved between models (transfer), anomaly detectors against each attack (detect), and notebook 08, which puts
# them side by side. All of them read the runs and generators of one protocol, RELATED_PROTOCOL (rules/common.smk).

DETECTION = config["detection"]


def transfer_args(w):
    return " ".join(
        f"--generator {shlex.quote(m + '=' + related_run(w.dataset, m, 'gan-both', 'generator'))}"
        f" --checkpoint {shlex.quote(f'{m}={R}/models/{w.dataset}/{m}/seed{first_seed(m)}.pt')}"
        for m in TRANSFER_MODELS
    )


def transfer_inputs(w):
    return {
        "data": f"{R}/data/{w.dataset}.npz",
        "generators": [related_run(w.dataset, m, "gan-both", "generator") for m in TRANSFER_MODELS],
        "checkpoints": [f"{R}/models/{w.dataset}/{m}/seed{first_seed(m)}.pt" for m in TRANSFER_MODELS],
    }


def transfer_kept(dataset):
    """A merged transfer table: its attacks are kept (rules/common.smk) and a generator or checkpoint is gone."""
    inputs = transfer_inputs(SimpleNamespace(dataset=dataset))
    runs_kept = all(attack_kept(dataset, m, "gan-both", RELATED_PROTOCOL, first_seed(m)) for m in TRANSFER_MODELS)
    made_from = [*inputs["generators"], *inputs["checkpoints"]]
    return results_mod.kept_derived(f"{R}/transfer/{dataset}.csv", made_from, runs_kept, MERGED)


rule transfer:
    input:
        unpack(unless_kept(transfer_kept, transfer_inputs)),
    output:
        table=report(f"{R}/transfer/{{dataset}}.csv", caption="captions/transfer.rst", category="Related systems"),
    log:
        f"{R}/logs/transfer/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/08_transfer/{{dataset}}.tsv"
    params:
        args=transfer_args,
        device=config["device"],
    threads: TORCH_THREADS
    resources:
        **TORCH_RESOURCES,
    shell:
        f"{PY} -m robustmvc transfer --data {{input.data:q}} {{params.args}} --device {{params.device}} --threads {{threads}}"
        f" --protocol {RELATED_PROTOCOL} --out {{output.table:q}} > {{log:q}} 2>&1"


DETECTION_RUNS = [
    (d, m, v)
    for d in DATASETS
    for m in DETECTION["models"]
    if m in MODELS
    for v in DETECTION["attacks"]
    if v in attack_variants(m) and variants.fits_attacker(v) and RELATED_PROTOCOL in attack_protocols(v)
]


def detect_inputs(w):
    return {
        "data": f"{R}/data/{w.dataset}.npz",
        "checkpoint": f"{R}/models/{w.dataset}/{w.model}/seed{w.seed}.pt",
        "generator": attack_run(w.dataset, w.model, w.variant, w.protocol, w.seed)["generator"],
    }


def detect_kept(dataset, model, variant, protocol, seed):
    """A merged detection: its attack is kept (rules/common.smk) and its checkpoint or generator is gone."""
    run = attack_run(dataset, model, variant, protocol, seed)
    return results_mod.kept_derived(
        f"{R}/detection/{dataset}/{model}/{variant}/{protocol}/seed{seed}.json",
        [f"{R}/models/{dataset}/{model}/seed{seed}.pt", run["generator"]],
        attack_kept(dataset, model, variant, protocol, seed),
        MERGED,
    )


rule detect:
    input:
        unpack(unless_kept(detect_kept, detect_inputs)),
    output:
        f"{R}/detection/{{dataset}}/{{model}}/{{variant}}/{{protocol}}/seed{{seed}}.json",
    log:
        f"{R}/logs/detection/{{dataset}}-{{model}}-{{variant}}-{{protocol}}-seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/08_detect/{{dataset}}-{{model}}-{{variant}}-{{protocol}}-seed{{seed}}.tsv"
    wildcard_constraints:
        variant=variants.FITTED,
    params:
        detectors=" ".join(DETECTION["detectors"]),
        device=config["device"],
    threads: TORCH_THREADS
    resources:
        **TORCH_RESOURCES,
    shell:
        f"{PY} -m robustmvc detect --data {{input.data:q}} --checkpoint {{input.checkpoint:q}} --threads {{threads}}"
        " --generator {input.generator:q} --detectors {params.detectors} --device {params.device}"
        " --out {output:q} > {log:q} 2>&1"


RELATED_INPUTS = {
    "attacks": [
        related_run(d, m, v, "metrics")
        for d in DATASETS
        for m in MODELS
        for v in ("gan-both", "blackbox", "whitebox", "embedding")
        if v in attack_variants(m) and RELATED_PROTOCOL in attack_protocols(v)
    ],
    "transfer": TRANSFER_TABLES,
    "detection": [
        f"{R}/detection/{d}/{m}/{v}/{RELATED_PROTOCOL}/seed{first_seed(m)}.json" for d, m, v in DETECTION_RUNS
    ],
}


rule related:
    input:
        **RELATED_INPUTS,
    output:
        html=report(f"{REPORTS}/08_related/related.html", caption="captions/related.rst", category="Related systems"),
    log:
        notebook=f"{R}/notebooks/08_related/related.ipynb",
    benchmark:
        f"{R}/benchmarks/08_related/related.tsv"
    params:
        nb=lambda w: notebook_args({"results": R, "protocol": RELATED_PROTOCOL, "precision": config["precision"]}),
    shell:
        papermill("notebooks/08_related.ipynb")
