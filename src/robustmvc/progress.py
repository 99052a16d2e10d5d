"""Progress bars for long loops, kept out of the rendered reports.

In a notebook kernel, `sys.stderr` is captured into the notebook, so every refresh of a bar would
become a pink stderr box in the HTML report. The kernel's own process stderr (`sys.__stderr__`) is
the terminal or log of whoever started the kernel (papermill under Snakemake, or the Jupyter server),
so the bars go there instead; outside a kernel they go to the usual stderr.
"""
from __future__ import annotations

import sys

from tqdm import tqdm


def stream():
    """Where progress is written: the process's stderr, bypassing a notebook's captured output."""
    if "ipykernel" in sys.modules and sys.__stderr__ is not None:
        return sys.__stderr__
    return sys.stderr


def bar(iterable, **kwargs) -> tqdm:
    """`tqdm(iterable, **kwargs)` written to `stream()`."""
    return tqdm(iterable, file=stream(), **kwargs)
