# Data stage: one multi-view dataset file per configured dataset.


def data_params(dataset):
    entry, opts = config["datasets"][dataset], config["data"]
    return {
        "dataset": dataset,
        "out": f"{R}/data/{dataset}.npz",
        "raw_dir": entry["dir"] if dataset == "regdb" else entry["raw_dir"],
        "max_samples": entry["max_samples"],
        "views": entry["views"],
        "n_identities": entry["n_identities"],
        "seed": opts["seed"],
        "pairing": opts["pairing"],
        "cache_dir": opts["cache_dir"],
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
