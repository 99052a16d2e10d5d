# Training stage: every configured model on every dataset and seed, with its clean evaluation. One
# notebook for every model: a defense's page adds the curves of its terms (robustmvc.plots.training_curves
# draws what the history holds). The checkpoints feed the attack stage.


def train_params(w, input, output, threads):
    return notebook_args(
        {
            "data": input.get("data"),  # none for a kept job (rules/common.smk), which never runs
            "model": w.model,
            "seed": int(w.seed),
            "checkpoint": output.checkpoint,
            "metrics": output.metrics,
            "settings": train_settings(w.model, w.dataset),
            "threads": threads,
        }
    )


rule train:
    input:
        unpack(unless_kept(train_kept, lambda w: {"data": f"{R}/data/{w.dataset}.npz"})),
    output:
        checkpoint=checkpoint_of("{dataset}", "{model}", "{seed}"),
        metrics=f"{R}/metrics/{{dataset}}/{{model}}/clean/seed{{seed}}.json",
        html=train_page("{dataset}", "{model}", "{seed}"),
    log:
        notebook=f"{R}/notebooks/02_train/{{dataset}}-{{model}}-seed{{seed}}.ipynb",
    benchmark:
        f"{R}/benchmarks/02_train/{{dataset}}-{{model}}-seed{{seed}}.tsv"
    threads: TORCH_THREADS
    resources:
        **TORCH_RESOURCES,
    params:
        settings=lambda w: config_mod.canonical(train_settings(w.model, w.dataset)),
        nb=train_params,
    shell:
        papermill("notebooks/02_train.ipynb")
