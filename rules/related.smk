# Related systems (docs/ARCHITECTURE.md, section 9). Their attacks are attack-stage variants (rules/attack.smk:
# `blackbox`, `whitebox`, `embedding`) and ALRDC is a model like any other (rules/train.smk); here: generators
# moved between models (transfer), anomaly detectors against each attack (detect), and notebook 08, which puts
# them side by side. All of them read the runs and generators of one protocol, RELATED_PROTOCOL (rules/common.smk).

DETECTION = config["detection"]


def transfer_args(w):
    return " ".join(
        f"--generator {shlex.quote(m + '=' + related_run(w.dataset, m, 'gan-both', 'generator'))}"
        f" --checkpoint {shlex.quote(m + '=' + checkpoint_of(w.dataset, m, first_seed(m)))}"
        for m in TRANSFER_MODELS
    )


def transfer_inputs(w):
    return {
        "data": f"{R}/data/{w.dataset}.npz",
        "generators": [related_run(w.dataset, m, "gan-both", "generator") for m in TRANSFER_MODELS],
        "checkpoints": [checkpoint_of(w.dataset, m, first_seed(m)) for m in TRANSFER_MODELS],
    }


for dataset, table in zip(DATASETS, TRANSFER_TABLES):
    read = transfer_inputs(SimpleNamespace(dataset=dataset))
    READERS.append((table, [*read["generators"], *read["checkpoints"]]))


def transfer_kept(dataset):
    """A merged transfer table whose attacks are kept (rules/common.smk)."""
    runs_kept = all(attack_kept(dataset, m, "gan-both", RELATED_PROTOCOL, first_seed(m)) for m in TRANSFER_MODELS)
    return results_mod.kept_derived(f"{R}/transfer/{dataset}.csv", runs_kept, MERGED)


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


def detection_of(dataset, model, variant):
    """The detection result of the related runs' attack `variant` on `model`."""
    return f"{R}/detection/{dataset}/{model}/{variant}/{RELATED_PROTOCOL}/seed{first_seed(model)}.json"


READERS += [
    (detection_of(d, m, v), [checkpoint_of(d, m, first_seed(m)), related_run(d, m, v, "generator")])
    for d, m, v in DETECTION_RUNS
]


def detect_inputs(w):
    return {
        "data": f"{R}/data/{w.dataset}.npz",
        "checkpoint": checkpoint_of(w.dataset, w.model, w.seed),
        "generator": attack_run(w.dataset, w.model, w.variant, w.protocol, w.seed)["generator"],
    }


def detect_kept(dataset, model, variant, protocol, seed):
    """A merged detection whose attack is kept (rules/common.smk)."""
    return results_mod.kept_derived(
        f"{R}/detection/{dataset}/{model}/{variant}/{protocol}/seed{seed}.json",
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
    "detection": [detection_of(d, m, v) for d, m, v in DETECTION_RUNS],
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
