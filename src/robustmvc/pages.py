"""What every notebook shares on its rendered page: number formats, figures with alt text, and the
runtime record (device, threads, precision) that the report index lifts into the page's header.

A notebook's setup cell calls `setup(...)` once, after `%matplotlib inline`.
"""
from __future__ import annotations

import html
import json
import logging
import sys

import pandas as pd

RUNTIME_CLASS = "robustmvc-runtime"  # the element report.py reads and removes


def setting(value) -> str:
    """One config value as text of its kind: integers without decimals, floats to 4 significant
    digits (learning rates stay readable), None as a dash, lists and the rest as they print."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e6):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def settings_frame(values: dict, name: str = "setting") -> pd.DataFrame:
    """A one-column table of settings, each value formatted by `setting` (a float column would print
    `seed 0.00000` and `projection_dim NaN`)."""
    return pd.Series({k: setting(v) for k, v in values.items()}, name=name, dtype=object).to_frame()


def alt_text(fig) -> str:
    """A figure described by what it shows (`fig.finding`, where the figure function states it), then its
    own labels: the title, then each panel's title and axes."""
    parts = [fig.finding] if getattr(fig, "finding", "") else []  # what the figure shows, set by robustmvc.plots
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    title = title.replace("\n", ": ")
    if title:
        parts.append(title)
    for ax in fig.get_axes():
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        panel = ", ".join(p for p in (ax.get_title().replace("\n", ": "), ax.get_xlabel() and f"x: {ax.get_xlabel()}",
                                      ax.get_ylabel() and f"y: {ax.get_ylabel()}") if p)
        if panel:
            parts.append(panel)
    seen = []
    for p in parts:  # shared labels repeat on every panel
        if p not in seen:
            seen.append(p)
    return "Figure: " + ("; ".join(seen[:8]) or "untitled plot")


def _png_with_alt(fig):
    """IPython's PNG formatter for matplotlib figures: the image and its alt text (the offline
    template writes `alt` from the output's metadata)."""
    from robustmvc.plots import png_bytes  # here, not at module level: see `setup`

    return png_bytes(fig), {"alt": alt_text(fig)}


def check_parameters(namespace: dict, declared, required=()) -> None:
    """Refuse a notebook run whose parameters are not the notebook's: a name its parameters cell does not
    define (a misspelt `chekpoint` would otherwise leave the default and write to the scratch folder), or a
    required one left None. `declared`: the names defined when the parameters cell ended (its last line
    records them). Parameters are JSON values, so the modules and functions the notebook imported since
    are not counted."""
    try:  # the names IPython defines (In, Out, exit, ...) are no parameters
        from IPython import get_ipython

        hidden = set(getattr(get_ipython(), "user_ns_hidden", None) or ())
    except ImportError:
        hidden = set()
    declared = set(declared) - hidden
    names = sorted(k for k in declared if isinstance(namespace.get(k), _PARAMETER_TYPES))
    unknown = sorted(
        k for k, v in namespace.items()
        if k not in declared | hidden and k != "PARAMETERS" and not k.startswith("_") and isinstance(v, _PARAMETER_TYPES))
    if unknown:
        raise ValueError(f"unknown notebook parameter(s) {', '.join(unknown)}; this notebook takes "
                         f"{', '.join(names)}: fix the name")
    missing = [k for k in required if namespace.get(k) is None]
    if missing:
        raise ValueError(f"notebook parameter(s) {', '.join(missing)} missing (None); pass them, e.g. "
                         f"papermill -y '{{\"{missing[0]}\": ...}}'")


_PARAMETER_TYPES = (str, int, float, bool, list, dict, type(None))  # what papermill can inject


def runtime(device: str = "cpu", precision: str = "fp32") -> dict:
    """Where and from what the page's computation ran: the code's commit (and whether the tree had
    uncommitted changes, and in which files), the resolved device and the machine's CPU model or GPU name,
    torch's thread count and the precision (the run's `precision` resolved for the device)."""
    # imported here, not at module level: the report writer reads this module's page helpers and
    # must not load torch (seconds) for them
    import torch

    from robustmvc.device import resolve_device, resolve_precision
    from robustmvc.lineage import changed_files, git_state, machine

    commit, dirty = git_state()
    dev = resolve_device(device)
    return {"commit": commit, "dirty": dirty, **({"changed": changed_files()} if dirty else {}),
            "device": str(dev), "machine": machine(dev), "threads": torch.get_num_threads(),
            "precision": resolve_precision(precision, dev), "torch": torch.__version__}


def setup(device: str = "cpu", precision: str = "fp32") -> None:
    """Page defaults for a notebook: 3-decimal floats in tables, the report's plot style, figures
    with alt text, log lines as plain output (not stderr boxes), and the runtime record shown once
    (a hidden element the report index moves into the page header)."""
    # imported here, not at module level: the report writer reads this module's page helpers and
    # must not load IPython and matplotlib (seconds) for them
    from IPython import get_ipython
    from IPython.display import HTML, display
    from matplotlib.figure import Figure

    from robustmvc import plots

    pd.options.display.float_format = "{:.3f}".format
    plots.style()
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, _png_with_alt)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout,
                        force=True)
    record = html.escape(json.dumps(runtime(device, precision)), quote=True)
    display(HTML(f"<div class='{RUNTIME_CLASS}' hidden data-runtime=\"{record}\"></div>"))
