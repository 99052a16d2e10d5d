"""Seeds side by side against seeds one after another: training samples per second per seed.

    python benchmarks/seeds.py [--models comvc ardmvc-am] [--seeds 1 5 10] [--width 64] [--threads N]
                               [--device auto] [--precision fp32|bf16|auto] [--samples 1000] [--epochs 2]

For each model and each S: S seeds trained as one stack (`stack.train_seeds`), and one lone run
(`train.train`) standing for each of S lone runs in a row. Per seed, a stack advances every seed by n
samples in one stack epoch; S lone runs in a row advance each seed by n samples in S lone epochs; the
ratio (S x lone epoch / stack epoch) is the speed-up of stacking. Both clocks are read around whole
calls, after one untimed lone run (first-call costs): wall seconds, and on the CPU also the process's CPU seconds, which a machine
shared with other jobs disturbs far less than the wall clock (the ratios are given for both; with more
than one thread, idle threads spinning count as CPU time). On CUDA the loop reads its terms once per
epoch, so the wall clock waits for the device. Random 1x28x28 views of two views (throughput does not
depend on pixel values), batch 100. AR-DMVC-AM runs the paper's 10 PGD steps of 0.02.
"""
from __future__ import annotations

import argparse
import time

import torch

from robustmvc import registry, stack
from robustmvc.device import resolve_device, resolve_precision, seed_everything, set_threads
from robustmvc.train import train


def clocked(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["comvc", "ardmvc-am"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 5, 10], help="stack sizes S")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--samples", type=int, default=1000, help="samples per epoch (10 batches of 100)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per timed call")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = p.parse_args()

    set_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    gen = torch.Generator().manual_seed(0)
    views = [torch.rand(args.samples, 1, 28, 28, generator=gen).to(device) for _ in range(2)]
    cfg = {"batch_size": 100, "lr": 1e-3, "epochs": args.epochs}
    shapes = [(1, 28, 28)] * 2
    print(f"device {device}, precision {precision}, threads {torch.get_num_threads()}, width {args.width}, "
          f"{args.samples} samples x {args.epochs} epochs; seconds per epoch; samples/s per seed")
    print(f"{'model':<10} {'S':>3} {'clock':<5} {'stack s':>9} {'lone s':>8} {'stack':>8} {'S lone':>8} {'ratio':>6}")
    for name in args.models:
        settings = {"encoder_width": args.width}
        if name.startswith("ardmvc"):
            settings.update(pgd_steps=10, pgd_step=0.02)

        def lone_run():
            seed_everything(0)
            model = registry.build(name, shapes, 10, **settings)
            train(model, views, {**cfg, "seed": 0}, device=device, progress=False, precision=precision)

        lone_run()  # warm-up: the process's first kernels, allocations and imports
        lone = clocked(lone_run)
        for size in args.seeds:
            stacked = clocked(lambda: stack.train_seeds(name, shapes, 10, settings, views, cfg, list(range(size)),
                                                        device=device, progress=False, precision=precision,
                                                        mechanism="stack"))
            for clock, t_stack, t_lone in zip(("wall", "cpu"), stacked, lone):
                if clock == "cpu" and device.type != "cpu":
                    continue
                t_stack, t_lone = t_stack / args.epochs, t_lone / args.epochs
                per_seed, per_seed_lone = args.samples / t_stack, args.samples / (size * t_lone)
                print(f"{name:<10} {size:>3} {clock:<5} {t_stack:>9.3f} {t_lone:>8.3f} {per_seed:>8.1f} "
                      f"{per_seed_lone:>8.1f} {per_seed / per_seed_lone:>6.2f}", flush=True)

if __name__ == "__main__":
    main()
