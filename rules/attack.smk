# Attack stage: every trained model attacked on its eval half, by each of its variants under each of their
# protocols (rules/common.smk: ATTACK_RUNS). Variants that fit an attacker save it beside their metrics
# (the transfer and detection rules read it); PGD fits nothing, so its rule declares no generator.

RUN = attack_run("{dataset}", "{model}", "{variant}", "{protocol}", "{seed}")  # the wildcard patterns
EXAMPLES = report(
    RUN["examples"],
    caption="captions/attack.rst",
    category="Attacks",
    subcategory="{dataset}",
    labels={"model": "{model}", "attack": "{variant}", "protocol": "{protocol}", "seed": "{seed}"},
)


def attack_params(w, input, output, threads):
    return notebook_args(
        {
            "data": input.get("data"),  # none for a kept job (rules/common.smk), which never runs
            "checkpoint": input.get("checkpoint"),
            "metrics": output.metrics,
            "generator": output.get("generator"),
            "examples": output.examples,
            "settings": attack_settings(w.dataset, w.variant, w.protocol, w.seed),
            "threads": threads,
        }
    )


rule attack:
    input:
        unpack(
            unless_kept(
                attack_kept,
                lambda w: {
                    "data": f"{R}/data/{w.dataset}.npz",
                    "checkpoint": checkpoint_of(w.dataset, w.model, w.seed),
                },
            )
        ),
    output:
        metrics=RUN["metrics"],
        generator=RUN["generator"],
        examples=EXAMPLES,
        html=RUN["html"],
    log:
        notebook=RUN["notebook"],
    benchmark:
        RUN["benchmark"]
    wildcard_constraints:
        variant=variants.FITTED_PATTERN,
    # a trained model's attacks before the next training: a run cut short (a shard's deadline) leaves whole
    # (model, attacks) sets rather than trained models that no attack has read
    priority: 1
    threads: TORCH_THREADS
    resources:
        **TORCH_RESOURCES,
    params:
        settings=lambda w: config_mod.canonical(attack_settings(w.dataset, w.variant, w.protocol, w.seed)),
        nb=attack_params,
    shell:
        papermill("notebooks/03_attack.ipynb")


use rule attack as attack_pgd with:
    output:
        metrics=RUN["metrics"],
        examples=EXAMPLES,
        html=RUN["html"],
    wildcard_constraints:
        variant=variants.UNFITTED_PATTERN,
