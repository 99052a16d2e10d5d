"""Progress bars for long loops, kept out of the rendered reports.

In a notebook kernel, `sys.stderr` is captured into the notebook, and so is anything written to file
descriptor 2 (ipykernel watches it), so every refresh of a bar would become a pink stderr box in the
HTML report. ipykernel keeps a copy of the process's original stderr, which `sys.stderr.fileno()`
returns: the terminal or log of whoever started the kernel (papermill under Snakemake, or the Jupyter
server). The bars go there; outside a kernel they go to the usual stderr.
"""
from __future__ import annotations

import io
import sys

from tqdm import tqdm

_kernel_stream = None  # opened once per kernel, on the original stderr


def stream():
    """Where progress is written: the process's original stderr, bypassing a notebook's output."""
    global _kernel_stream
    if "ipykernel" not in sys.modules or not hasattr(sys.stderr, "fileno"):
        return sys.stderr
    if _kernel_stream is None:
        try:
            fd = sys.stderr.fileno()  # ipykernel: the saved copy of the original stderr
        except (OSError, ValueError, io.UnsupportedOperation):  # fd 2 not captured: it is the original
            return sys.__stderr__ or sys.stderr
        _kernel_stream = open(fd, "w", buffering=1, encoding="utf-8", closefd=False)
    return _kernel_stream


def bar(iterable, **kwargs) -> tqdm:
    """`tqdm(iterable, **kwargs)` written to `stream()`."""
    return tqdm(iterable, file=stream(), **kwargs)
