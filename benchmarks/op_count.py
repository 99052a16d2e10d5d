"""Torch operations per step of the three step kinds `make reproduce` spends its time in, for a GPU estimate
made without a GPU.

    python benchmarks/op_count.py [--width 64]

At the paper's sizes (batch 100, 28x28 views, encoder width 64) a step's arithmetic takes an H100 well
under a millisecond, while eager PyTorch pays a host-side dispatch and a kernel launch per operation:
the step time on a GPU is then about (operations per step) x (cost per operation). This counts the
operations that do work (leaf `aten::` calls, views and shape bookkeeping left out) in a profiled epoch
of four steps on the CPU, for a CoMVC training step, an AR-DMVC-AM step (10 PGD steps) and a step of the
paper's GAN attack (generators, discriminators and the frozen target). docs/gpu-estimate.md multiplies
them by the DAG's step counts.
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from robustmvc import registry, train
from robustmvc.attacks import gan
from robustmvc.device import set_threads
from side_by_side import MODELS  # the same two models and settings the throughput benchmark times

STEPS = 4
BOOKKEEPING = {"aten::empty", "aten::empty_strided", "aten::as_strided", "aten::view", "aten::t", "aten::transpose",
               "aten::expand", "aten::unsqueeze", "aten::squeeze", "aten::permute", "aten::slice", "aten::select",
               "aten::resize_", "aten::detach", "aten::alias", "aten::_reshape_alias", "aten::lift_fresh",
               "aten::result_type", "aten::is_nonzero", "aten::item", "aten::_local_scalar_dense", "aten::set_",
               "aten::unbind", "aten::split", "aten::narrow"}


def per_step(run) -> float:
    """Working operations per step of `run()` (one epoch of STEPS steps), after one unprofiled epoch."""
    run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    leaves = [e for e in prof.events() if e.name.startswith("aten::") and not e.cpu_children]
    return sum(e.name not in BOOKKEEPING for e in leaves) / STEPS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=64)
    args = p.parse_args()
    set_threads(1)
    cpu = torch.device("cpu")
    views = [torch.rand(100 * STEPS, 1, 28, 28) for _ in range(2)]
    cfg = {"epochs": 1, "batch_size": 100, "lr": 1e-3, "seed": 0}
    for name, settings in MODELS.items():
        torch.manual_seed(0)
        model = registry.build(name, [(1, 28, 28)] * 2, 10, encoder_width=args.width, **settings)
        ops = per_step(lambda: train.train(model, views, cfg, device=cpu, precision="fp32", progress=False))
        print(f"{name:10s} training step: {ops:7.0f} operations")
    torch.manual_seed(0)
    target = registry.build("comvc", [(1, 28, 28)] * 2, 10, encoder_width=args.width)
    attack = {"objective": "both", "eps": 0.3, "epochs": 1, "batch_size": 100, "protocol": "paper", "seed": 0}
    ops = per_step(lambda: gan.fit(target, views, attack, progress=False))
    print(f"{'gan':10s} attack step:   {ops:7.0f} operations")


if __name__ == "__main__":
    main()
