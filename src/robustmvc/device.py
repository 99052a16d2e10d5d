"""Where and how a job computes: its device, its numeric precision, its thread budget, its seed and its
input tensors.

Precision. `bf16` runs the convolutional stacks (the encoders and decoders of every model, the attack's
generators and discriminators) under bfloat16 autocast in channels_last layout, on the CPU's matrix
units (AMX, AVX-512 BF16) or a GPU's tensor cores; each stack hands float32 back to what follows. So
every linear head and every loss term stays float32, and no loss needs a case of its own:
- the DDC kernel subtracts squared norms (||x||^2 - 2 x.y + ||y||^2): with bf16's 8-bit mantissa the
  cancellation leaves mostly rounding noise, and the median that scales sigma with it;
- the Cauchy-Schwarz ratios of DDC1/DDC3 take square roots of products of such kernels;
- the NT-Xent logits are cosines divided by tau = 0.1: a bf16 cosine (error ~4e-3) becomes a logit error
  of ~0.04, as large as the gaps the loss is meant to resolve late in training;
- the KL terms and Multi-VAE's entropy take logs of probabilities near the 1e-4 floor;
- the BCE terms (logits form) and the MSE terms are reductions over thousands of pixels;
- the linear layers and these terms are a few percent of a step's arithmetic: fp32 costs nothing there.
`fp32` changes nothing. `auto` is bf16 where the hardware does bf16 natively (CUDA with bf16 support,
CPUs whose flags list amx_bf16 or avx512_bf16) and fp32 elsewhere, where bf16 is emulated and slower.
"""
from __future__ import annotations

import contextlib
import functools
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16")
CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)


def resolve_device(device: str = "auto", deterministic: bool = False) -> torch.device:
    """`auto` -> cuda when a GPU is visible, else cpu. On CUDA, `deterministic` trades speed for repeatable
    numbers: cudnn autotuning off, deterministic kernels only (an op without one then raises), TF32 off."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("the config asks for device 'cuda' but no GPU is visible; set `device: auto` or `cpu`")
        # TF32 matmuls/convs: safe for these losses, much faster; not bit-stable across GPU models
        torch.backends.cuda.matmul.allow_tf32 = not deterministic
        torch.backends.cudnn.allow_tf32 = not deterministic
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for repeatable sums
        torch.use_deterministic_algorithms(deterministic)
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (Linux /proc/cpuinfo flags amx_bf16 or avx512_bf16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """`fp32` or `bf16` for `device` (see the module docstring for `auto`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}; set `precision:` in the config")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


def _conv_stacks(module: nn.Module):
    """The outermost Sequentials that hold a conv layer directly: the units that run in bf16."""
    for child in module.children():
        if isinstance(child, nn.Sequential) and any(isinstance(c, CONV_TYPES) for c in child.children()):
            yield child
        else:
            yield from _conv_stacks(child)


def _bf16_forward(forward):
    @functools.wraps(forward)
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = forward(x)
        return out.to(x.dtype)
    return run


def set_precision(module: nn.Module, precision: str) -> nn.Module:
    """`module` with its conv stacks in `precision` (`fp32` or `bf16`, resolved), in place; returns it.

    bf16: each stack's forward runs under bf16 autocast and returns the input's dtype, and its weights
    take the channels_last layout the oneDNN/cuDNN bf16 kernels want. fp32 undoes both. Parameters stay
    float32 (checkpoints are unchanged); the instance's forward is wrapped, never its class.
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"set_precision takes a resolved precision, fp32 or bf16, got {precision!r}")
    for stack in _conv_stacks(module):
        stack.__dict__.pop("forward", None)
        if precision == "bf16":
            stack.forward = _bf16_forward(stack.forward)
        stack.to(memory_format=torch.channels_last if precision == "bf16" else torch.contiguous_format)
    return module


@contextlib.contextmanager
def precision_of(module: nn.Module, precision: str):
    """`module` in `precision` for the block, back to fp32 after (an attack's frozen target, a benchmark)."""
    set_precision(module, precision)
    try:
        yield module
    finally:
        set_precision(module, "fp32")


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads for this job (the rule's `threads:`); None keeps torch's default."""
    if threads is None:
        return
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(int(threads))


def seed_everything(seed: int) -> None:
    """One seed for Python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_tensors(views, device) -> list[torch.Tensor]:
    """Views (numpy arrays or tensors) as float32 tensors on `device`."""
    return [torch.as_tensor(v, dtype=torch.float32, device=device) for v in views]
