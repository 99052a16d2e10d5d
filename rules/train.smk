# Training stage: every configured model on every dataset and seed, with its clean evaluation.


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
    params:
        nb=lambda w, input, output: notebook_args(
            {
                "data": input.data,
                "model": w.model,
                "seed": int(w.seed),
                "checkpoint": output.checkpoint,
                "metrics": output.metrics,
                "config_files": CONFIGFILES,
                "device": config.get("device", "auto"),
            }
        ),
    shell:
        papermill("notebooks/02_train.ipynb")
