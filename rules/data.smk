# Data stage: one multi-view dataset file per configured dataset.


def data_params(dataset):
    return {"dataset": dataset, "out": f"{R}/data/{dataset}.npz", **config_mod.data_job(config, dataset)}


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
