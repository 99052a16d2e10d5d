# Related systems (docs/ARCHITECTURE.md, section 9). Their attacks are attack-stage variants (rules/attack.smk:
# `blackbox`, `whitebox`, `embedding`) and ALRDC is a model like any other (rules/train.smk); here:
# generators moved between models (transfer), anomaly detectors against each attack (detect), and
# notebook 08, which puts them side by side. All of them read the runs and generators of one protocol,
# `evaluation.related_protocol` (default: the first of `evaluation.protocols`).

TRANSFER_MODELS = [m for m in (config.get("transfer") or {}).get("models", []) if m in MODELS]
DETECTION = config.get("detection") or {}
RELATED_PROTOCOL = (config.get("evaluation") or {}).get("related_protocol", PROTOCOLS[0])
if RELATED_PROTOCOL not in PROTOCOLS:
    raise ValueError(
        f"evaluation.related_protocol {RELATED_PROTOCOL!r} is not one of evaluation.protocols {PROTOCOLS}; "
        "add it there or name one of them"
    )


def first_seed(model):
    return seeds_of(model)[0]


def attack_output(dataset, model, variant, kind, protocol=RELATED_PROTOCOL):
    """What the attack job of (dataset, model, variant, protocol, first seed) writes: `metrics` or its
    `generator`."""
    seed = first_seed(model)
    if kind == "metrics":
        return f"{R}/metrics/{dataset}/{model}/{variant}/{protocol}/seed{seed}.json"
    return f"{R}/attacks/{dataset}/{model}/{variant}/{protocol}/seed{seed}.pt"


def transfer_args(w):
    return " ".join(
        f"--generator {shlex.quote(m + '=' + attack_output(w.dataset, m, 'gan-both', 'generator'))}"
        f" --checkpoint {shlex.quote(f'{m}={R}/models/{w.dataset}/{m}/seed{first_seed(m)}.pt')}"
        for m in TRANSFER_MODELS
    )


rule transfer:
    input:
        data=f"{R}/data/{{dataset}}.npz",
        # the attack job writes the generator beside its metrics; the metrics file stands for both
        attacks=lambda w: [attack_output(w.dataset, m, "gan-both", "metrics") for m in TRANSFER_MODELS],
        checkpoints=lambda w: [f"{R}/models/{w.dataset}/{m}/seed{first_seed(m)}.pt" for m in TRANSFER_MODELS],
    output:
        table=report(f"{R}/transfer/{{dataset}}.csv", caption="captions/transfer.rst", category="Related systems"),
    log:
        f"{R}/logs/transfer/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/08_transfer/{{dataset}}.tsv"
    params:
        args=transfer_args,
        device=config.get("device", "auto"),
    threads: TORCH_THREADS
    resources:
        **TORCH_RESOURCES,
    shell:
        f"{PY} -m robustmvc transfer --data {{input.data:q}} {{params.args}} --device {{params.device}} --threads {{threads}}"
        f" --protocol {RELATED_PROTOCOL} --out {{output.table:q}} > {{log:q}} 2>&1"


DETECTION_RUNS = [
    (d, m, v)
    for d in DATASETS
    for m in DETECTION.get("models", [])
    if m in MODELS
    for v in DETECTION.get("attacks", [])
    if v in attack_variants(m) and v != "pgd" and RELATED_PROTOCOL in attack_protocols(v)
]


rule detect:
    input:
        data=f"{R}/data/{{dataset}}.npz",
        checkpoint=f"{R}/models/{{dataset}}/{{model}}/seed{{seed}}.pt",
        attack=f"{R}/metrics/{{dataset}}/{{model}}/{{variant}}/{{protocol}}/seed{{seed}}.json",
    output:
        f"{R}/detection/{{dataset}}/{{model}}/{{variant}}/{{protocol}}/seed{{seed}}.json",
    log:
        f"{R}/logs/detection/{{dataset}}-{{model}}-{{variant}}-{{protocol}}-seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/08_detect/{{dataset}}-{{model}}-{{variant}}-{{protocol}}-seed{{seed}}.tsv"
    wildcard_constraints:
        variant=r"gan-(both|com|con)|blackbox|whitebox|embedding",
        protocol="paper|strict",
    params:
        generator=lambda w: f"{R}/attacks/{w.dataset}/{w.model}/{w.variant}/{w.protocol}/seed{w.seed}.pt",
        detectors=" ".join(DETECTION.get("detectors", ["iforest-h", "pca-input"])),
        device=config.get("device", "auto"),
    threads: TORCH_THREADS
    resources:
        **TORCH_RESOURCES,
    shell:
        f"{PY} -m robustmvc detect --data {{input.data:q}} --checkpoint {{input.checkpoint:q}} --threads {{threads}}"
        " --generator {params.generator:q} --detectors {params.detectors} --device {params.device}"
        " --out {output:q} > {log:q} 2>&1"


RELATED_ATTACKS = [
    attack_output(d, m, v, "metrics")
    for d in DATASETS
    for m in MODELS
    for v in ("gan-both", "blackbox", "whitebox", "embedding")
    if v in attack_variants(m) and RELATED_PROTOCOL in attack_protocols(v)
]
RELATED_INPUTS = {
    "attacks": RELATED_ATTACKS,
    "transfer": [f"{R}/transfer/{d}.csv" for d in DATASETS] if len(TRANSFER_MODELS) > 1 else [],
    "detection": [f"{R}/detection/{d}/{m}/{v}/{RELATED_PROTOCOL}/seed{first_seed(m)}.json" for d, m, v in DETECTION_RUNS],
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
        nb=lambda w: notebook_args({"results": R, "config_files": CONFIGFILES, "protocol": RELATED_PROTOCOL}),
    shell:
        papermill("notebooks/08_related.ipynb")
