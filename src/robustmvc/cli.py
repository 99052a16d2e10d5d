"""`python -m robustmvc ...`: every stage of the workflow without notebooks."""
from __future__ import annotations

import argparse
import logging
import sys
import traceback

from robustmvc import __version__


def _data_build(args) -> None:
    from robustmvc import data
    from robustmvc.files import check_outputs

    check_outputs({"--out": (args.out, (".npz",))})
    views = args.views
    ds = data.build(args.dataset, raw_dir=args.raw_dir, max_samples=args.max_samples, seed=args.seed,
                    views=views, cache_dir=args.cache_dir, pairing=args.pairing,
                    n_identities=args.n_identities, download=not args.no_download)
    data.save(args.out, ds)
    print(f"wrote {args.out}: {len(ds.labels)} samples, {len(ds.views)} views {ds.view_shapes[0]}, "
          f"{ds.n_clusters} clusters, train {len(ds.train_idx)} / eval {len(ds.eval_idx)}")


def _key_value(item: str):
    """`KEY=VALUE` with VALUE read as YAML (numbers, booleans, lists; `1e-4` is a number)."""
    from robustmvc.config import parse_value

    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
    try:
        return key, parse_value(value)
    except ValueError as err:
        raise ValueError(f"--set {item}: {err}") from None


def _job(args, given: dict) -> dict | None:
    """The resolved settings passed whole with --settings (as the DAG does), or None; --settings stands
    alone, so no setting comes from two places."""
    import json

    if args.settings is None:
        return None
    clash = [flag for flag, value in given.items() if value not in (None, [], False)]
    if clash:
        raise ValueError(f"--settings holds every setting of the run; drop {', '.join(clash)} or --settings")
    try:
        job = json.loads(args.settings)
    except json.JSONDecodeError as err:
        raise ValueError(f"--settings is not a JSON object ({err.msg}); pass the settings as JSON") from None
    if not isinstance(job, dict):
        raise ValueError("--settings is not a JSON object; pass the settings as JSON")
    return job


def _config(paths) -> dict:
    """The config the command's files make, validated with its defaults filled (no files: the defaults)."""
    from robustmvc import config

    return config.load(*paths) if paths else config.validate({}, complete=False, source="the defaults")


def _train(args) -> None:
    from robustmvc import config, data, runs
    from robustmvc.files import check_outputs

    check_outputs({"--out": (args.out, (".pt",)), "--metrics": (args.metrics, (".json",))}, {"--data": args.data})
    job = _job(args, {"--config": args.config, "--set": args.set, "--epochs": args.epochs, "--device": args.device})
    if job is None:
        overrides = dict(_key_value(item) for item in args.set)
        if args.epochs is not None:
            overrides["epochs"] = args.epochs
        job = config.train_job(_config(args.config), args.model, data.dataset_name(args.data), **overrides)
        job["device"] = args.device or job["device"]
    run = runs.train_run(args.data, args.model, args.seed, args.out, job, metrics=args.metrics)
    print(f"wrote {args.out} after {run['seconds']:.0f}s ({run['samples_per_second']:.0f} samples/s); clean eval "
          + " ".join(f"{k}={v:.3f}" for k, v in run["clean"].items()))


def _evaluate(args) -> None:
    from robustmvc import data, lineage, train
    from robustmvc.device import resolve_device
    from robustmvc.protocols import clean_scores
    from robustmvc.files import check_outputs, write_json

    check_outputs({"--out": (args.out, (".json",))}, {"--data": args.data, "--checkpoint": args.checkpoint})
    device = resolve_device(args.device or "auto")
    ds = data.load(args.data)
    model, meta = train.load_checkpoint(args.checkpoint, device)
    if [list(s) for s in ds.view_shapes] != [list(s) for s in meta["view_shapes"]]:
        raise ValueError(f"{args.checkpoint} was trained on views {meta['view_shapes']}, "
                         f"{args.data} has {ds.view_shapes}; evaluate it on the dataset it was trained on")
    data_id = lineage.of_data(ds)
    lineage.check_data((meta.get("lineage") or {}).get("data"), data_id, args.checkpoint, args.data,
                       f"evaluate it on the dataset file it was trained on, or retrain it on {lineage.shown(args.data)}")
    scores = clean_scores(model, *ds.part("eval"), device=device)
    write_json(args.out, {"dataset": meta.get("dataset"), "model": meta["model"], "seed": meta.get("seed"),
                          "n_eval": int(len(ds.eval_idx)), "clean": scores,
                          "lineage": {"data": data_id, "checkpoint": lineage.file_hash(args.checkpoint)}})
    print(" ".join(f"{k}={v:.4f}" for k, v in scores.items()))


def _report(args) -> None:
    from robustmvc.report import write_index

    print(f"wrote {write_index(args.results, args.reports, args.configs, args.landing)}")


def _attack(args) -> None:
    from robustmvc import config, data, train
    from robustmvc.runs import attack_files

    job = _job(args, {"--config": args.config, "--eps": args.eps, "--objective": args.objective,
                      "--epochs": args.epochs, "--seed": args.seed, "--protocol": args.protocol,
                      "--device": args.device})
    if job is None:
        # the attack's seed is the model's unless given
        seed = args.seed if args.seed is not None else int(train.load_checkpoint(args.checkpoint)[1].get("seed") or 0)
        job = config.attack_job(_config(args.config), args.attack, data.dataset_name(args.data), eps=args.eps,
                                objective=args.objective, epochs=args.epochs, seed=seed,
                                protocol=args.protocol or "paper")
        job["device"] = args.device or job["device"]
    elif job.get("attack") != args.attack:
        raise ValueError(f"--settings are for the {job.get('attack')} attack, not --attack {args.attack}; "
                         "pass the attack the settings were resolved for")
    rec = attack_files(args.data, args.checkpoint, args.out, job, generator_out=args.generator_out,
                       examples_out=args.examples_out)
    print(f"wrote {args.out}: {args.attack} eps={rec['settings'].get('eps')} on {rec['n_eval']} samples "
          f"({rec['protocol']} protocol); "
          + " ".join(f"{k} {rec['clean'][k]:.3f}->{rec['attacked'][k]:.3f}" for k in rec["clean"]))


def _named_paths(items: list[str], flag: str) -> dict[str, str]:
    """`NAME=PATH` pairs, in order."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{flag} takes MODEL=PATH, got {item!r}")
        out[name] = path
    return out


def _transfer(args) -> None:
    from robustmvc.runs import transfer_files
    from robustmvc.files import atomic_path, check_outputs

    generators = _named_paths(args.generator, "--generator")
    checkpoints = _named_paths(args.checkpoint, "--checkpoint")
    check_outputs({"--out": (args.out, (".csv",))}, {"--data": args.data, "--generator": list(generators.values()),
                                                    "--checkpoint": list(checkpoints.values())})
    table = transfer_files(args.data, generators, checkpoints, device=args.device or "auto", protocol=args.protocol)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(f"wrote {args.out}: post-attack ACC, surrogate (rows) x target (columns)")
    print(table.pivot(index="surrogate", columns="target", values="post_acc").round(3).to_string())


def _detect(args) -> None:
    from robustmvc.runs import detect_files
    from robustmvc.files import check_outputs

    check_outputs({"--out": (args.out, (".json",))},
                  {"--data": args.data, "--checkpoint": args.checkpoint, "--generator": args.generator})
    rec = detect_files(args.data, args.checkpoint, args.generator, args.out, detectors=args.detectors,
                       device=args.device or "auto")
    print(f"wrote {args.out}: {rec['attack']} on {rec['model']}; AUC "
          + " ".join(f"{k}={'n/a' if v is None else f'{v:.3f}'}" for k, v in rec["auc"].items()))


def _notebook(args) -> None:
    """Execute and render in one process: a separate nbconvert process would import its stack again
    for every job (~1.5 s each, over the ~60 notebook jobs of even the demo)."""
    import json
    from pathlib import Path

    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    from robustmvc.files import atomic_path

    # the notebook refuses an unknown parameter itself (pages.check_parameters), in one sentence
    logging.getLogger("papermill").setLevel(logging.ERROR)
    try:
        papermill.execute_notebook(args.notebook, args.executed, parameters=json.loads(args.params),
                                   kernel_name="python3", cwd=".", progress_bar=False)
    except papermill.PapermillExecutionError as err:
        raise RuntimeError(f"{args.notebook} failed in cell {err.exec_count}: {err.ename}: {err.evalue} "
                           f"(the executed copy, with the traceback, is {args.executed})") from err
    exporter = HTMLExporter(template_name=args.template, extra_template_basedirs=[args.template_dir],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    page, _ = exporter.from_notebook_node(nbformat.read(args.executed, as_version=4),
                                          resources={"metadata": {"name": Path(args.executed).stem}})
    with atomic_path(args.html) as tmp:
        tmp.write_text(page, encoding="utf-8")


def _models(args) -> None:
    """One line a model: its name, family and capabilities (see `robustmvc.registry`)."""
    from robustmvc import registry

    for name, entry in registry.MODELS.items():
        can = ["clustering layer h -> probs"] if entry.clustering_layer else []
        can.append("steps its own optimisers" if entry.own_optimisers else "trained through its loss")
        can.append("seeds stack" if entry.stacks else "seeds one after another")
        print(f"{name:<10} {entry.family:<9} {', '.join(can)}")


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported as one line (the usage is one `--help` away)."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message}; see `{self.prog} --help`\n")


def _at_least(minimum: int):
    """An argparse type: an integer >= `minimum`, else one sentence saying so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _view_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of view numbers, e.g. 0,1,3") from None


def _results(args) -> None:
    from robustmvc import results

    if args.action == "export":
        made = results.export(args.results, args.reports, args.archive, new_only=args.new_only, carry=args.carry)
        print(f"wrote {args.archive}: {made['files']} files, {made['bytes'] / 1024:.0f} KiB" if made["files"] else
              f"nothing new in {args.results} since its merges: no archive written")
    else:
        left_out = results.trainings_left_out(args.leave_out) if args.leave_out else set()
        made = results.merge(args.archive, args.results, args.reports, leave_out=left_out)
        print(f"merged {args.archive} into {args.results}: {made['added']} files added, {made['kept']} already there kept")


def _lease(args) -> None:
    from robustmvc import lease

    if args.action == "plan":
        from robustmvc import config

        made = lease.write_plan(config.load(*args.configfile), args.out)
        print(f"wrote {args.out}: {len(made['data'])} datasets, {sum(len(t['seeds']) for t in made['trainings'])} "
              f"trainings, {len(made['attacks'])} attacks")
    else:
        done = lease.run(args.plan, args.minutes, args.archive, args.results, progress=args.verbose)
        archive = (f"wrote {args.archive} ({done['archive']['files']} files, {done['archive']['bytes'] / 1024:.0f} KiB)"
                   if done["archive"]["files"] else "nothing finished: no archive written")
        print(f"{done['trained']} seeds trained and attacked in full, {done['attacked']} attacks, {done['left']} seeds "
              f"left for another lease; {archive}")


def parser() -> argparse.ArgumentParser:
    from robustmvc import data, variants

    p = _Parser(prog="python -m robustmvc", description=__doc__)
    p.add_argument("--version", action="version", version=__version__)
    p.add_argument("-v", "--verbose", action="store_true", help="log every epoch and data source; show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="build datasets").add_subparsers(dest="action", required=True)
    b = d.add_parser("build", help="build one multi-view dataset into an .npz file")
    b.add_argument("dataset", choices=data.DATASETS)
    b.add_argument("--out", required=True, help="output .npz (a .json sidecar is written beside it)")
    b.add_argument("--raw-dir", help="directory with the raw IDX files (or the RegDB folder)")
    b.add_argument("--max-samples", type=_at_least(data.MIN_SAMPLES),
                   help=f"keep a stratified subset of this many samples (at least {data.MIN_SAMPLES})")
    b.add_argument("--seed", type=int, default=7, help="seed of the subset and the train/eval shuffle (paper: 7)")
    b.add_argument("--views", type=_view_list, help="comma-separated views to keep (PatchedMNIST default 0,1,3)")
    b.add_argument("--pairing", choices=["derangement", "paper"], default="derangement",
                   help="view-2 partner draw: 'paper' may pair a sample with itself, 'derangement' never does")
    b.add_argument("--n-identities", type=_at_least(2), default=206, help="RegDB: identities to keep")
    b.add_argument("--cache-dir", default="results/raw", help="where verified downloads are kept")
    b.add_argument("--no-download", action="store_true", help="fail instead of downloading raw files")
    b.set_defaults(func=_data_build)

    t = sub.add_parser("train", help="train one model on the train half of a dataset")
    t.add_argument("--data", required=True)
    t.add_argument("--model", required=True)
    t.add_argument("--out", required=True, help="checkpoint .pt")
    t.add_argument("--seed", type=_at_least(0), default=0)
    t.add_argument("--epochs", type=_at_least(1), help="override the configured epochs")
    t.add_argument("--config", action="append",
                   help="project config YAML (training, architecture, models sections); repeat to overlay")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting of the model or its training (e.g. --set adv_weight=10)")
    t.add_argument("--settings", help="every setting of the run as one JSON object (robustmvc.config.train_job), "
                                      "instead of --config, --set, --epochs and --device")
    t.add_argument("--metrics", help="also write the clean eval metrics JSON here")
    t.add_argument("--device", help="auto, cpu or cuda (default: config's, else auto)")
    t.add_argument("--threads", type=int, help="torch threads (default: torch's, all cores)")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="clean ACC/NMI/ARI of a checkpoint on the eval half")
    e.add_argument("--data", required=True)
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True, help="metrics .json")
    e.add_argument("--device")
    e.add_argument("--threads", type=int, help="torch threads (default: torch's, all cores)")
    e.set_defaults(func=_evaluate)

    r = sub.add_parser("report", help="write the reports' index pages from results on disk")
    r.add_argument("--results", required=True, help="results directory of one experiment scale")
    r.add_argument("--reports", required=True, help="report directory of that scale, e.g. reports/demo")
    r.add_argument("--configs", nargs="*", default=[], help="config files to show on the page")
    r.add_argument("--landing", help="also rewrite this landing page, index.html of the folder above --reports "
                                     "(one line per scale); without it nothing outside --reports is written")
    r.set_defaults(func=_report)

    a = sub.add_parser("attack", help="attack a checkpoint on the eval half; pre/post ACC/NMI/ARI to JSON")
    a.add_argument("--data", required=True)
    a.add_argument("--checkpoint", required=True)
    a.add_argument("--out", required=True, help="metrics .json")
    a.add_argument("--attack", choices=variants.ATTACKS, default="gan",
                   help="gan: the paper's; pgd; blackbox: Chhabra et al.'s, queries only; whitebox: the same "
                        "loss with exact gradients; embedding: ALRDC's perturbation of h")
    a.add_argument("--objective", choices=["both", "com", "con"], help="GAN: terms attacked (default: both)")
    a.add_argument("--eps", type=float, help="L-infinity budget (default: datasets.<name>.eps, else the paper's)")
    a.add_argument("--epochs", type=_at_least(1), help="training epochs of the attacker (GAN default 30)")
    a.add_argument("--seed", type=_at_least(0), help="attack seed (default: the checkpoint's)")
    a.add_argument("--protocol", choices=["paper", "strict"],
                   help="paper (default): the target's BatchNorm on the statistics of shuffled batches, the "
                        "attacker fitted and scored on the same samples, as the public code; strict: running "
                        "statistics, fitted on part of the eval half and scored on the rest")
    a.add_argument("--config", action="append",
                   help="project config YAML (attack section, datasets.<name>.eps); repeat to overlay")
    a.add_argument("--settings", help="every setting of the run as one JSON object (robustmvc.config.attack_job), "
                                      "instead of --config and the attack's own flags")
    a.add_argument("--generator-out", help="save the trained generators (perturbation network) here (.pt)")
    a.add_argument("--examples-out", help="figure of adversarial examples (.png/.pdf)")
    a.add_argument("--device", help="auto, cpu or cuda (default auto)")
    a.add_argument("--threads", type=int, help="torch threads (default: torch's, all cores)")
    a.set_defaults(func=_attack)

    x = sub.add_parser("transfer", help="apply generators trained against surrogates to target models")
    x.add_argument("--data", required=True)
    x.add_argument("--generator", action="append", required=True, metavar="MODEL=PATH",
                   help="a surrogate's generators (attack --generator-out); repeat")
    x.add_argument("--checkpoint", action="append", required=True, metavar="MODEL=PATH",
                   help="a target model; repeat")
    x.add_argument("--protocol", choices=["paper", "strict"], default="paper",
                   help="the protocol the generators were fitted under; the targets are scored under it too")
    x.add_argument("--out", required=True, help="table .csv: one row per (surrogate, target)")
    x.add_argument("--device")
    x.add_argument("--threads", type=int, help="torch threads (default: torch's, all cores)")
    x.set_defaults(func=_transfer)

    n = sub.add_parser("detect", help="AUC of anomaly detectors at telling clean from attacked samples")
    n.add_argument("--data", required=True)
    n.add_argument("--checkpoint", required=True)
    n.add_argument("--generator", required=True, help="the attack's generators (attack --generator-out)")
    n.add_argument("--detectors", nargs="+", default=["iforest-h", "pca-input"],
                   choices=["iforest-h", "pca-input"])
    n.add_argument("--out", required=True, help="results .json")
    n.add_argument("--device")
    n.add_argument("--threads", type=int, help="torch threads (default: torch's, all cores)")
    n.set_defaults(func=_detect)

    rs = sub.add_parser("results", help="export a run's results as one archive, or merge an archive into a results "
                                        "folder").add_subparsers(dest="action", required=True)
    for action, text in (("export", "write the results and pages the reports read (no data, checkpoints or "
                                    "attackers: the DAG rebuilds them) as one .tar.gz"),
                         ("merge", "add an exported archive to a results folder; runs already there are kept, a "
                                   "run recorded there with other settings refuses the merge")):
        x = rs.add_parser(action, help=text)
        x.add_argument("archive", help="the .tar.gz to write or to merge")
        x.add_argument("--results", required=True, help="results directory of one experiment scale (results_dir)")
        x.add_argument("--reports", required=True, help="report directory of that scale (report_dir), e.g. reports/demo")
        x.set_defaults(func=_results, new_only=False)
    rs.choices["export"].add_argument("--new-only", action="store_true",
                                      help="leave out what merges brought (a shard of a run split across machines)")
    rs.choices["merge"].add_argument("--leave-out", default=None,
                                     help="a list of trainings to make again, <dataset>/<model>/seed<s> a line: "
                                          "they and every run made from them are not merged")
    rs.choices["export"].add_argument("--carry", default=None,
                                      help="a list of checkpoints and attackers to carry, one path relative to "
                                           "--results a line (the workflow's `carry` rule writes it)")

    ls = sub.add_parser("lease", help="the claims on a lent machine without the workflow's tools: plan here, run "
                                      "there, merge the archive here (robustmvc.lease)").add_subparsers(dest="action",
                                                                                                  required=True)
    lp = ls.add_parser("plan", help="resolve every training and paper attack the config's DAG runs into a JSON plan")
    lp.add_argument("--configfile", nargs="+", required=True, help="the config and its overlays, as snakemake's")
    lp.add_argument("--out", required=True, help="the plan (.json)")
    lp.set_defaults(func=_lease)
    lr = ls.add_parser("run", help="run a plan for some minutes; what it finished goes to one archive")
    lr.add_argument("plan", help="the plan `lease plan` wrote")
    lr.add_argument("--minutes", type=float, required=True, help="no training or attack starts after this many")
    lr.add_argument("--archive", required=True, help="the .tar.gz of what this run finished (results export)")
    lr.add_argument("--results", default=None, help="results directory (default: the plan's results_dir)")
    lr.add_argument("--threads", type=int, default=None, help="torch threads")
    lr.set_defaults(func=_lease)

    k = sub.add_parser("notebook", help="execute a notebook with parameters and render it to HTML without code")
    k.add_argument("notebook", help="the notebook to run (notebooks/*.ipynb)")
    k.add_argument("executed", help="the executed copy (.ipynb), kept also when a cell fails")
    k.add_argument("html", help="the rendered page")
    k.add_argument("--params", default="{}", help="the notebook's parameters as one JSON object")
    k.add_argument("--template", default="offline", help="nbconvert template (offline: no CDN)")
    k.add_argument("--template-dir", default="notebooks/templates", help="folder holding --template")
    k.set_defaults(func=_notebook)

    m = sub.add_parser("models", help="list the registered models, their family and capabilities")
    m.set_defaults(func=_models)
    return p


def main(argv=None) -> int:
    """Run one command. A mistake a user can make (a bad value, a missing or damaged file, an output
    that cannot be written) ends with exit status 1 and one line on stderr; `-v` adds the traceback."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error (already reported in one line)
        return int(stop.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if getattr(args, "threads", None) is not None:  # torch only for the commands that run it (~2 s of CPU)
            from robustmvc.device import set_threads

            set_threads(args.threads)
        args.func(args)
    except (OSError, ValueError, RuntimeError, ArithmeticError) as err:
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.verbose:
            traceback.print_exc()
        print("error: interrupted before the command finished; an output it was writing was removed, those it had "
              "finished are kept, so rerun the command to complete it", file=sys.stderr)
        return 130
    return 0
