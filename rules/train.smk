# Training stage: every configured model on every dataset and seed, with its clean evaluation.
# Baselines run notebook 02; AR-DMVC, AR-DMVC-AM and ALRDC run their own notebooks (04, 05, 07), which
# add the curves of their defense terms. Their checkpoints feed the attack stage like any other.

DEFENDED = {"ardmvc": "04_train_ardmvc", "ardmvc-am": "05_attack_mitigator", "alrdc": "07_train_alrdc"}
BASELINES = [m for m in MODELS if m not in DEFENDED]


def train_params(w, input, output, threads):
    return notebook_args(
        {
            "data": input.data,
            "model": w.model,
            "seed": int(w.seed),
            "checkpoint": output.checkpoint,
            "metrics": output.metrics,
            "config_files": CONFIGFILES,
            "device": config.get("device", "auto"),
            "threads": threads,
        }
    )


def train_report(model, dataset, seed):
    stage = DEFENDED.get(model, "02_train")
    return f"{REPORTS}/{stage}/{dataset}-{model}-seed{seed}.html"


rule train:
    input:
        data=f"{R}/data/{{dataset}}.npz",
    output:
        checkpoint=f"{R}/models/{{dataset}}/{{model}}/seed{{seed}}.pt",
        metrics=f"{R}/metrics/{{dataset}}/{{model}}/clean/seed{{seed}}.json",
        html=f"{REPORTS}/02_train/{{dataset}}-{{model}}-seed{{seed}}.html",
    log:
        notebook=f"{R}/notebooks/02_train/{{dataset}}-{{model}}-seed{{seed}}.ipynb",
    benchmark:
        f"{R}/benchmarks/02_train/{{dataset}}-{{model}}-seed{{seed}}.tsv"
    wildcard_constraints:
        model="|".join(BASELINES) or "^$",
    threads: TORCH_THREADS
    resources:
        **TORCH_RESOURCES,
    params:
        nb=train_params,
        notebook="notebooks/02_train.ipynb",
    shell:
        papermill("{params.notebook}")


use rule train as train_ardmvc with:
    output:
        checkpoint=f"{R}/models/{{dataset}}/{{model}}/seed{{seed}}.pt",
        metrics=f"{R}/metrics/{{dataset}}/{{model}}/clean/seed{{seed}}.json",
        html=f"{REPORTS}/04_train_ardmvc/{{dataset}}-{{model}}-seed{{seed}}.html",
    log:
        notebook=f"{R}/notebooks/04_train_ardmvc/{{dataset}}-{{model}}-seed{{seed}}.ipynb",
    benchmark:
        f"{R}/benchmarks/04_train_ardmvc/{{dataset}}-{{model}}-seed{{seed}}.tsv"
    wildcard_constraints:
        model="ardmvc",
    params:
        nb=train_params,
        notebook="notebooks/04_train_ardmvc.ipynb",


use rule train as train_mitigator with:
    output:
        checkpoint=f"{R}/models/{{dataset}}/{{model}}/seed{{seed}}.pt",
        metrics=f"{R}/metrics/{{dataset}}/{{model}}/clean/seed{{seed}}.json",
        html=f"{REPORTS}/05_attack_mitigator/{{dataset}}-{{model}}-seed{{seed}}.html",
    log:
        notebook=f"{R}/notebooks/05_attack_mitigator/{{dataset}}-{{model}}-seed{{seed}}.ipynb",
    benchmark:
        f"{R}/benchmarks/05_attack_mitigator/{{dataset}}-{{model}}-seed{{seed}}.tsv"
    wildcard_constraints:
        model="ardmvc-am",
    params:
        nb=train_params,
        notebook="notebooks/05_attack_mitigator.ipynb",


use rule train as train_alrdc with:
    output:
        checkpoint=f"{R}/models/{{dataset}}/{{model}}/seed{{seed}}.pt",
        metrics=f"{R}/metrics/{{dataset}}/{{model}}/clean/seed{{seed}}.json",
        html=f"{REPORTS}/07_train_alrdc/{{dataset}}-{{model}}-seed{{seed}}.html",
    log:
        notebook=f"{R}/notebooks/07_train_alrdc/{{dataset}}-{{model}}-seed{{seed}}.ipynb",
    benchmark:
        f"{R}/benchmarks/07_train_alrdc/{{dataset}}-{{model}}-seed{{seed}}.tsv"
    wildcard_constraints:
        model="alrdc",
    params:
        nb=train_params,
        notebook="notebooks/07_train_alrdc.ipynb",
