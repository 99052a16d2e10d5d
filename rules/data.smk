# Data stage: one multi-view dataset file per configured dataset.


def data_params(dataset):
    entry = config["datasets"][dataset] or {}
    opts = config.get("data", {})
    return {
        "dataset": dataset,
        "out": f"{R}/data/{dataset}.npz",
        "raw_dir": entry.get("dir") if dataset == "regdb" else entry.get("raw_dir"),
        "max_samples": entry.get("max_samples"),
        "views": entry.get("views"),
        "n_identities": entry.get("n_identities", 206),
        "seed": opts.get("seed", 7),
        "pairing": opts.get("pairing", "derangement"),
        "cache_dir": opts.get("cache_dir", "results/raw"),
    }


rule prepare_data:
    output:
        npz=f"{R}/data/{{dataset}}.npz",
        html=f"{REPORTS}/01_prepare_data/{{dataset}}.html",
    log:
        notebook=f"{R}/notebooks/01_prepare_data/{{dataset}}.ipynb",
    benchmark:
        f"{R}/benchmarks/01_prepare_data/{{dataset}}.tsv"
    params:
        nb=lambda w: notebook_args(data_params(w.dataset)),
    shell:
        papermill("notebooks/01_prepare_data.ipynb")
