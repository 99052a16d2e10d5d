# Attack stage: every trained model attacked on its eval half, under each evaluation protocol of
# `evaluation.protocols` (`paper`: batch-statistics BatchNorm, fitted and scored on the same samples, as
# the public code; `strict`: running statistics, scored on samples the attacker was not fitted on).
# Variants: `gan-both` (the paper's attack) and `pgd` on every model; `gan-com` and `gan-con` (the
# ablation) on attack.ablation_models; `blackbox` / `whitebox` (Chhabra et al.'s attack, query-only or
# with exact gradients) on attack.blackbox; `embedding` (ALRDC's attack on h) on attack.embedding; a
# suffix `-eps0.1` sets the budget (the eps sweep of the evaluation stage).

PROTOCOLS = (config.get("evaluation") or {}).get("protocols", ["paper", "strict"])


def attack_protocols(variant):
    """Protocols a variant runs under: the paper's attack under every one of `evaluation.protocols`; the
    other variants too, or only under those of `evaluation.extra_variant_protocols` when it is set."""
    extra = (config.get("evaluation") or {}).get("extra_variant_protocols")
    return PROTOCOLS if variant == "gan-both" or extra is None else [p for p in PROTOCOLS if p in extra]


def attack_variants(model):
    section = config.get("attack") or {}
    objectives = section.get("objectives", ["both", "com", "con"])
    ablation = model in section.get("ablation_models", MODELS)
    variants = [f"gan-{o}" for o in objectives if o == "both" or ablation]
    pgd = section.get("pgd", True)
    variants += ["pgd"] if pgd is True or (isinstance(pgd, list) and model in pgd) else []
    variants += ["blackbox", "whitebox"] if model in section.get("blackbox", []) else []
    return variants + (["embedding"] if model in section.get("embedding", []) else [])


def parse_variant(variant):
    """`gan-both`, `gan-com-eps0.1`, `pgd`, `blackbox` -> (attack, objective, eps or None)."""
    parts = variant.split("-")
    eps = float(parts.pop()[3:]) if parts[-1].startswith("eps") else None
    return parts[0], (parts[1] if len(parts) > 1 else "both"), eps


def attack_params(w, input, output, threads):
    attack, objective, eps = parse_variant(w.variant)
    return notebook_args(
        {
            "data": input.data,
            "checkpoint": input.checkpoint,
            "metrics": output.metrics,
            "generator": f"{R}/attacks/{w.dataset}/{w.model}/{w.variant}/{w.protocol}/seed{w.seed}.pt",
            "examples": output.examples,
            "attack": attack,
            "objective": objective,
            "eps": eps,
            "protocol": w.protocol,
            "config_files": CONFIGFILES,
            "device": config.get("device", "auto"),
            "threads": threads,
        }
    )


rule attack:
    input:
        data=f"{R}/data/{{dataset}}.npz",
        checkpoint=f"{R}/models/{{dataset}}/{{model}}/seed{{seed}}.pt",
    output:
        metrics=f"{R}/metrics/{{dataset}}/{{model}}/{{variant}}/{{protocol}}/seed{{seed}}.json",
        examples=report(
            f"{R}/attacks/{{dataset}}/{{model}}/{{variant}}/{{protocol}}/seed{{seed}}.png",
            caption="captions/attack.rst",
            category="Attacks",
            subcategory="{dataset}",
            labels={"model": "{model}", "attack": "{variant}", "protocol": "{protocol}", "seed": "{seed}"},
        ),
        html=f"{REPORTS}/03_attack/{{dataset}}-{{model}}-{{variant}}-{{protocol}}-seed{{seed}}.html",
    log:
        notebook=f"{R}/notebooks/03_attack/{{dataset}}-{{model}}-{{variant}}-{{protocol}}-seed{{seed}}.ipynb",
    benchmark:
        f"{R}/benchmarks/03_attack/{{dataset}}-{{model}}-{{variant}}-{{protocol}}-seed{{seed}}.tsv"
    wildcard_constraints:
        variant=r"(gan-(both|com|con)|pgd|blackbox|whitebox|embedding)(-eps[0-9.]+)?",
        protocol="paper|strict",
    threads: TORCH_THREADS
    resources:
        **TORCH_RESOURCES,
    params:
        nb=attack_params,
    shell:
        papermill("notebooks/03_attack.ipynb")


def attack_seeds(model, variant):
    """Seeds a variant runs on: the paper's attack on every seed of the model; the other variants on
    every seed too, or on the first only with `attack.extra_variants_seeds: first`."""
    seeds = seeds_of(model)
    first_only = (config.get("attack") or {}).get("extra_variants_seeds", "all") == "first"
    return seeds[:1] if first_only and variant != "gan-both" else seeds


ATTACK_RUNS = [
    (d, m, v, p, s)
    for d in DATASETS
    for m in MODELS
    for v in attack_variants(m)
    for p in attack_protocols(v)
    for s in attack_seeds(m, v)
]
ATTACK_REPORTS = [f"{REPORTS}/03_attack/{d}-{m}-{v}-{p}-seed{s}.html" for d, m, v, p, s in ATTACK_RUNS]
ATTACK_METRICS = [f"{R}/metrics/{d}/{m}/{v}/{p}/seed{s}.json" for d, m, v, p, s in ATTACK_RUNS]
