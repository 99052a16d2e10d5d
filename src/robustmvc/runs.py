"""Every stage's files in, files out: what the CLI and the notebooks call.

- `train_run`: train one model on a dataset file, write its checkpoint (and clean metrics);
- `attack_files`: one attack on one checkpoint under one protocol, written to a metrics JSON (with,
  optionally, the attacker's file and a figure of its examples);
- `detect_files`: anomaly detectors against a saved attacker;
- `transfer_files`: generators fitted against one model applied to others.

The work itself lives a floor below (`train`, `attacks`, `detect`, `evaluate`); this module reads the
inputs, checks they belong together, and writes every output whole or not at all.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from robustmvc import config as config_mod
from robustmvc import data as data_mod
from robustmvc import detect, lineage, protocols, stack
from robustmvc.attack_settings import check_attack_settings
from robustmvc.attacks import embedding, gan
from robustmvc.attacks.run import AttackResult, finish, prepare, run
from robustmvc.attacks.transfer import transfer_scores
from robustmvc.device import resolve_device, resolve_precision, to_tensors
from robustmvc.files import check_outputs, load_module_file, together, write_json
from robustmvc.train import load_checkpoint, save_checkpoint


def train_run(data_path: str | Path, model_name: str, seed: int, checkpoint: str | Path, job: dict,
              metrics: str | Path | None = None, progress: bool = True) -> dict:
    """One training run as the workflow does it: train `model_name` with the resolved settings `job`
    (`config.train_job`: model, training, device, precision, deterministic) on the train half, save the
    checkpoint, score the eval half (and write the metrics JSON if asked).

    Returns a dict with the model, its settings, history, seconds and clean scores.
    """
    return train_runs(data_path, model_name, [seed], [checkpoint], job, [metrics], progress)[0]


def train_runs(data_path: str | Path, model_name: str, seeds: list[int], checkpoints: list, job: dict,
               metrics: list | None = None, progress: bool = True) -> list[dict]:
    """`train_run` for several seeds of one model in one call (`stack.train_seeds`: side by side on CUDA, one
    after another elsewhere). Each seed's checkpoint and metrics are what its lone run writes; a stack's wall
    and CPU seconds are shared out equally between its seeds, and their provenance says how many there were."""
    metrics = metrics or [None] * len(seeds)
    if not len(seeds) == len(checkpoints) == len(metrics):
        raise ValueError(f"{len(seeds)} seeds, {len(checkpoints)} checkpoints and {len(metrics)} metrics files; "
                         "give one of each per seed")
    ds = data_mod.load(data_path)
    dataset = ds.meta.get("dataset")
    config_mod.check_train_job(job, model_name)
    settings = dict(job["model"])
    dev = resolve_device(job["device"], job["deterministic"])
    precision = resolve_precision(job["precision"], dev)
    data_id = lineage.of_data(ds)
    start, cpu_start = time.perf_counter(), time.process_time()
    trained = stack.train_seeds(model_name, ds.view_shapes, ds.n_clusters, settings, ds.part("train")[0],
                                dict(job["training"]), [int(s) for s in seeds], device=dev, progress=progress,
                                precision=precision)
    share = len(seeds)
    seconds, cpu = (time.perf_counter() - start) / share, (time.process_time() - cpu_start) / share
    where = lineage.provenance(dev, precision, seconds, cpu)
    if share > 1:
        where["seeds_in_job"] = share
    out = []
    for seed, (model, history), checkpoint, metrics_path in zip(seeds, trained, checkpoints, metrics):
        seed, tcfg = int(seed), dict(job["training"], seed=int(seed))
        made = {"data": data_id, "settings": lineage.train_hash(model_name, job, seed)}
        save_checkpoint(checkpoint, model, {
            "model": model_name, "settings": settings, "train": tcfg, "view_shapes": ds.view_shapes,
            "n_clusters": ds.n_clusters, "dataset": dataset, "seed": seed, "history": history,
            "train_seconds": seconds, "device": str(dev), "precision": precision, "lineage": made,
            "provenance": where})
        scores = protocols.clean_scores(model, *ds.part("eval"), device=dev)
        if metrics_path:
            write_json(metrics_path, {
                "dataset": dataset, "model": model_name, "seed": seed, "n_eval": int(len(ds.eval_idx)),
                "train_seconds": seconds, "device": str(dev), "precision": precision, "settings": settings,
                "train": tcfg, "clean": scores, "lineage": dict(made, checkpoint=lineage.file_hash(checkpoint)),
                "provenance": where})
        out.append({"model": model, "dataset": dataset, "settings": settings, "train": tcfg, "history": history,
                    "seconds": seconds, "samples_per_second": len(ds.train_idx) * len(history) / seconds,
                    "device": dev, "clean": scores})
    return out


def collapse_record(result: AttackResult) -> dict:
    """What explains a collapse, for the metrics JSON: the size of every cluster clean and attacked
    (an NMI of 0 after the attack means one cluster took every sample), and per view the perturbation's
    mean |delta|, the share of pixels pushed to the full budget +-eps, and the per-sample L2 norm.

    A pixel counts as at the budget when |delta| >= eps (1 - 1e-3): float rounding of the clamp leaves
    it a hair below. Attacks without an input budget (the embedding attack) record sizes only.
    """
    k = int(max(result.pred_clean.max(initial=0), result.pred_adv.max(initial=0), result.labels.max(initial=0))) + 1
    sizes = {"clean": np.bincount(result.pred_clean, minlength=k).tolist(),
             "attacked": np.bincount(result.pred_adv, minlength=k).tolist()}
    n = max(len(result.pred_adv), 1)
    record = {"cluster_sizes": sizes,
              "largest_cluster_share": {p: max(v) / n for p, v in sizes.items()}}
    eps = result.settings.get("eps")
    if eps is None or result.attack == "embedding":
        return record
    deltas = [(a - c).reshape(len(c), -1) for a, c in zip(result.adv_views, result.clean_views)]
    record["perturbation"] = {
        "eps": float(eps),
        "mean_abs": [float(np.abs(d).mean()) for d in deltas],
        "share_at_eps": [float((np.abs(d) >= float(eps) * (1 - 1e-3)).mean()) for d in deltas],
        "l2_mean": [float(np.linalg.norm(d, axis=1).mean()) for d in deltas],
        "l2_max": [float(np.linalg.norm(d, axis=1).max()) for d in deltas],
    }
    return record


def save_attacker(path: str | Path, attack: str, perturber: torch.nn.Module, meta: dict) -> None:
    """The fitted generators (or embedding perturber), with `attack` in their meta."""
    meta = dict(meta, attack=attack)
    (embedding.save_perturber if attack == "embedding" else gan.save_perturber)(path, perturber, meta)


def load_attacker(path: str | Path, device="cpu") -> tuple[torch.nn.Module, dict]:
    """What `save_attacker` wrote: a `gan.Perturber` (gan, blackbox, whitebox) or an
    `embedding.EmbeddingPerturber`; meta["attack"] says which (files without it come from the GAN attack)."""
    ckpt = load_module_file(path, device, "train one with `python -m robustmvc attack ... --generator-out PATH`")
    if "eps" not in ckpt["meta"] and ckpt["meta"].get("kind") != "embedding":
        raise ValueError(f"{path} is not an attacker's file (a trained model's checkpoint?); pass the file written "
                         "by `attack --generator-out`")
    build = embedding.perturber_from if ckpt["meta"].get("kind") == "embedding" else gan.perturber_from
    perturber, meta = build(ckpt, device)
    meta.setdefault("attack", "gan")
    return perturber, meta


def attack_files(data: str | Path, checkpoint: str | Path, out: str | Path, job: dict, *,
                 generator_out: str | Path | None = None, examples_out: str | Path | None = None,
                 progress: bool = True, n_examples: int = 5) -> dict:
    """Attack the checkpoint on the dataset's eval half with the resolved settings `job`
    (`config.attack_job`: attack, settings, device, precision, deterministic) and write the metrics JSON to
    `out` (whole or not at all); optionally the generators (`generator_out`, fitted attacks only) and a
    figure of adversarial examples (`examples_out`)."""
    check_outputs({"--out": (out, (".json",)), "--generator-out": (generator_out, (".pt",)),
                   "--examples-out": (examples_out, (".png", ".pdf", ".svg"))},
                  {"--data": data, "--checkpoint": checkpoint})
    run_ = _attack_inputs(data, checkpoint, job)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = run(run_["model"], *run_["ds"].part("eval"), run_["settings"], run_["attack"], run_["device"], progress,
                 run_["precision"])
    where = lineage.provenance(run_["device"], run_["precision"], time.perf_counter() - start,
                               time.process_time() - cpu_start)
    return _write_attack(run_, result, where, data, checkpoint, out, generator_out, examples_out, n_examples)


def attack_seeds_files(data: str | Path, checkpoints: list, outs: list, jobs: list[dict], *,
                       examples_outs: list | None = None, progress: bool = True, mechanism: str = "auto") -> list[dict]:
    """`attack_files` of the paper's attack for several seeds of a model (job s attacks checkpoints[s]; the jobs
    differ in their seed only), fitted side by side (`stack.fit_gan_seeds`) on CUDA, one after another
    elsewhere (`mechanism` as `stack.train_seeds`'). Each seed's metrics are what its lone run writes, up to
    the rounding of the batched kernels; the stack's time is shared out between its seeds."""
    examples_outs = examples_outs or [None] * len(jobs)
    if not len(checkpoints) == len(outs) == len(jobs) == len(examples_outs):
        raise ValueError(f"{len(checkpoints)} checkpoints, {len(outs)} metrics files and {len(jobs)} jobs; give one of "
                         "each per seed")
    first = _attack_inputs(data, checkpoints[0], jobs[0])  # the dataset read and hashed once for every seed
    runs_ = [first] + [_attack_inputs(data, c, job, (first["ds"], first["made"]["data"]))
                       for c, job in zip(checkpoints[1:], jobs[1:])]
    same = {config_mod.canonical({**r["settings"], "seed": 0}) for r in runs_}
    if mechanism not in stack.MECHANISMS:
        raise ValueError(f"mechanism {mechanism!r} is not one of {', '.join(stack.MECHANISMS)}")
    if mechanism == "auto":
        mechanism = "stack" if runs_[0]["device"].type == "cuda" else "loop"
    if (mechanism == "loop" or len(jobs) == 1 or len(same) > 1 or {r["attack"] for r in runs_} != {"gan"}
            or runs_[0]["settings"]["eval_every"]):  # a stack of attacks does not score while fitting
        return [attack_files(data, c, o, job, examples_out=e, progress=progress)
                for c, o, job, e in zip(checkpoints, outs, jobs, examples_outs)]
    start, cpu_start = time.perf_counter(), time.process_time()
    prepared = [prepare(first["model"], *first["ds"].part("eval"), first["settings"], first["device"])]
    prepared += [prepare(r["model"], prepared[0][1], prepared[0][2], r["settings"], r["device"])  # tensors made once
                 for r in runs_[1:]]
    seeds = [int(r["settings"]["seed"]) for r in runs_]
    fitted = stack.fit_gan_seeds([r["model"] for r in runs_], prepared[0][1], runs_[0]["settings"], seeds,
                                 positions=[p[3] for p in prepared], progress=progress, name="gan",
                                 precision=runs_[0]["precision"])
    results = []
    for r, (_, x, labels, fit_pos, score_pos), (perturber, history) in zip(runs_, prepared, fitted):
        scored = [v[torch.as_tensor(score_pos, device=x[0].device)] for v in x]
        with torch.no_grad():
            adv = perturber.perturb(scored)
        results.append(finish(r["model"], "gan", r["settings"], labels, scored, adv, score_pos, fit_pos, history,
                              0.0, perturber))
    share = len(jobs)
    where = lineage.provenance(runs_[0]["device"], runs_[0]["precision"], (time.perf_counter() - start) / share,
                               (time.process_time() - cpu_start) / share)
    where["seeds_in_job"] = share
    return [_write_attack(r, result, where, data, c, o, None, e, 5)
            for r, result, c, o, e in zip(runs_, results, checkpoints, outs, examples_outs)]


def _attack_inputs(data, checkpoint, job: dict, loaded: tuple | None = None) -> dict:
    """An attack job's inputs, read and checked against each other: the settings, device and precision it
    resolves to, the dataset, the target model and its meta, and the lineage its record starts from.
    `loaded`: the dataset and its lineage hash, when a stack of seeds has read them once already."""
    missing = [k for k in ("attack", "settings", *config_mod.RUNTIME_KEYS) if k not in job]
    if missing:
        raise ValueError(f"the attack settings lack {', '.join(missing)}; pass every setting "
                         "(robustmvc.config.attack_job resolves them from a config)")
    attack = job["attack"]
    settings = check_attack_settings(attack, job["settings"])
    dev = resolve_device(job["device"], job["deterministic"])
    ds = loaded[0] if loaded else data_mod.load(data)
    model, meta = load_checkpoint(checkpoint, dev)
    if [list(s) for s in ds.view_shapes] != [list(s) for s in meta["view_shapes"]]:
        raise ValueError(f"{checkpoint} was trained on views {meta['view_shapes']}, {data} has "
                         f"{ds.view_shapes}; attack it on the dataset it was trained on")
    data_id = loaded[1] if loaded else lineage.of_data(ds)
    lineage.check_data((meta.get("lineage") or {}).get("data"), data_id, checkpoint, data,
                       f"attack it on the dataset file it was trained on, or retrain it on {lineage.shown(data)}")
    return {"attack": attack, "settings": settings, "device": dev, "precision": resolve_precision(job["precision"], dev),
            "ds": ds, "model": model, "meta": meta,
            "made": {"data": data_id, "checkpoint": lineage.file_hash(checkpoint), "settings": lineage.attack_hash(job)}}


def _write_attack(run_: dict, result: AttackResult, where: dict, data, checkpoint, out, generator_out, examples_out,
                  n_examples: int) -> dict:
    """The metrics JSON of an attack run (and its attacker and examples figure, when asked), written together."""
    attack, settings, meta, made, dev = run_["attack"], run_["settings"], run_["meta"], run_["made"], run_["device"]
    dataset = run_["ds"].meta.get("dataset") or meta.get("dataset")
    record = {"dataset": dataset, "model": meta["model"], "seed": meta.get("seed"), "attack": attack,
              "data": lineage.shown(data), "checkpoint": lineage.shown(checkpoint), "device": str(dev),
              "precision": run_["precision"], "protocol": settings["protocol"], "n_fit": int(len(result.fit_positions)),
              "n_eval": int(len(result.score_positions)), "settings": settings, "lineage": made, "provenance": where}
    record.update(result.summary())
    record.update(collapse_record(result))
    record["history"] = result.history
    with together():  # generators, figure and metrics appear together, the metrics (what rules track) last
        if generator_out and result.perturber is not None:
            save_attacker(generator_out, attack, result.perturber,
                          {"dataset": dataset, "model": meta["model"], "seed": meta.get("seed"),
                           "settings": settings, "history": result.history, "lineage": made, "provenance": where})
        if examples_out:
            # the figure module sits a floor above (it reads result tables too); imported here only when a
            # figure is asked for, so an attack job without one does not load matplotlib and seaborn
            from robustmvc import plots

            if attack == "embedding":
                plots.embedding_shift(result, examples_out, title=f"{meta['model']} on {dataset}: embedding "
                                                                  f"attack, bound {settings['bound']} ||h||")
            else:
                plots.attack_examples(result, examples_out, n=n_examples,
                                      title=f"{meta['model']} on {dataset}: {attack} attack, eps {settings['eps']}")
        write_json(out, record)
    return record


def detect_files(data: str | Path, checkpoint: str | Path, generator: str | Path, out: str | Path, *,
                 detectors=None, device: str = "auto", seed: int = 0) -> dict:
    """AUC of each anomaly detector (fitted on the clean train half) at telling the eval half from its
    attacked copy, made by the saved attacker `generator`; written to `out` whole or not at all."""
    dev = resolve_device(device)
    ds = data_mod.load(data)
    model, meta = load_checkpoint(checkpoint, dev)
    attacker, ameta = load_attacker(generator, dev)
    if ameta.get("model") not in (None, meta["model"]) or ameta.get("dataset") not in (None, ds.meta.get("dataset")):
        raise ValueError(f"{generator} attacks {ameta.get('model')} on {ameta.get('dataset')}, not {meta['model']} on "
                         f"{ds.meta.get('dataset')}; detect with the generator trained against this checkpoint")
    data_id = lineage.of_data(ds)
    lineage.check_data((meta.get("lineage") or {}).get("data"), data_id, checkpoint, data,
                       "detect on the dataset file the checkpoint was trained on")
    made = ameta.get("lineage") or {}
    if made:
        lineage.check_data(made["data"], data_id, generator, data, "detect on the dataset file it was fitted on")
    lineage.check_checkpoint(made.get("checkpoint"), checkpoint, generator,
                             "detect with the generator fitted against this checkpoint")
    views, _ = ds.part("eval")
    train_views, _ = ds.part("train")
    x = to_tensors(views, dev)
    kinds = tuple(detectors or detect.DETECTORS)
    if ameta["attack"] == "embedding":
        settings = ameta.get("settings") or {}
        # files from before the protocols were named carry the BatchNorm mode itself
        batchnorm = settings.get("target_batchnorm") or protocols.batchnorm_of({"protocol": settings.get("protocol", "paper")})
        h_adv = embedding.attacked_predictions(model, attacker, x, batchnorm)[3]
        aucs = detect.detection_aucs(model, train_views, views, attacked_h=h_adv.cpu().numpy(), kinds=kinds, seed=seed)
    else:
        adv = [a.cpu().numpy() for a in attacker.perturb(x)]
        aucs = detect.detection_aucs(model, train_views, views, attacked_views=adv, kinds=kinds, seed=seed)
    record = {"dataset": ds.meta.get("dataset"), "model": meta["model"], "seed": meta.get("seed"),
              "attack": ameta["attack"], "protocol": protocols.protocol_name(ameta.get("settings") or {}),
              "generator": lineage.shown(generator), "n_train": int(len(train_views[0])),
              "n_eval": int(len(views[0])), "auc": aucs,
              "lineage": {"data": data_id, "checkpoint": lineage.file_hash(checkpoint),
                          "generator": lineage.file_hash(generator)}}
    write_json(out, record)
    return record


def transfer_files(data: str | Path, generators: dict[str, str | Path], checkpoints: dict[str, str | Path],
                   device: str = "auto", protocol: str = "paper") -> pd.DataFrame:
    """`transfer_scores` from files: the dataset's eval half, generators and checkpoints by model name.
    Every generator must have been fitted under `protocol`."""
    protocols.check_protocol(protocol)
    dev = resolve_device(device)
    ds = data_mod.load(data)
    views, labels = ds.part("eval")
    x = to_tensors(views, dev)
    data_id = lineage.of_data(ds)
    perturbers, surrogate_seeds, scored, batch_sizes = {}, {}, {}, set()
    for name, path in generators.items():
        perturber, meta = gan.load_perturber(path, dev)
        lineage.check_data((meta.get("lineage") or {}).get("data"), data_id, path, data,
                           "transfer on the dataset file the generators were fitted on")
        surrogate_seeds[name] = meta.get("seed")
        if [list(s) for s in meta["view_shapes"]] != [list(s) for s in ds.view_shapes]:
            raise ValueError(f"generator {path} was trained on views {meta['view_shapes']}, {data} has "
                             f"{ds.view_shapes}; use generators trained on this dataset")
        settings = meta.get("settings") or {}
        fitted = protocols.protocol_name(settings)
        if fitted != protocol:
            raise ValueError(f"generator {path} was fitted under the {fitted!r} protocol, not {protocol!r}; "
                             f"pass --protocol {fitted} or use generators fitted under {protocol}")
        perturbers[name] = perturber
        scored[name] = protocols.split(len(labels), protocol, settings.get("heldout_fraction", 0.5), settings.get("seed", 0))[1]
        batch_sizes.add(int(settings.get("batch_size", 100)))
    loaded = {name: load_checkpoint(path, dev) for name, path in checkpoints.items()}
    for name, (_, meta) in loaded.items():
        lineage.check_data((meta.get("lineage") or {}).get("data"), data_id, checkpoints[name], data,
                           "transfer on the dataset file the targets were trained on")
    targets = {name: model for name, (model, _) in loaded.items()}
    table = transfer_scores(perturbers, targets, x, labels, protocol, min(batch_sizes, default=100), scored)
    table.insert(0, "dataset", ds.meta.get("dataset"))
    # the seeds let tables.transfer_tidy pair a row with the target's other attacks of the same seed
    table.insert(3, "seed", table["target"].map(lambda t: loaded[t][1].get("seed")))
    table.insert(4, "surrogate_seed", table["surrogate"].map(surrogate_seeds))
    return table
