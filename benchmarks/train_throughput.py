"""Training throughput (samples per second) of one model at batch 100 on the current device.

    python benchmarks/train_throughput.py [--model comvc] [--width 64] [--set pgd_steps=3] [--device auto]
                                          [--precision fp32|bf16|auto] [--threads N]

Random 1x28x28 views (throughput does not depend on pixel values); a few warm-up batches are
excluded; on CUDA the clock waits for the device before reading. One optimiser step per batch,
as the trainer takes it (the model's own `train_step` where it has one), so `--model ardmvc`
against `--model comvc` is the cost of adversarial training. `--precision` is that of the conv stacks
(`robustmvc.device.set_precision`); the side-by-side comparison with a public-code-style loop is
benchmarks/side_by_side.py.
"""
from __future__ import annotations

import argparse
import time

import torch
import yaml

from robustmvc import registry
from robustmvc.adam import Adam
from robustmvc.device import resolve_device, resolve_precision, set_precision, set_threads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="comvc")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a model setting")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"])
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = p.parse_args()

    set_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    settings = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    model = registry.build(args.model, [(1, 28, 28)] * args.views, 10, encoder_width=args.width, **settings)
    model = set_precision(model.to(device).train(), precision)
    opts = (model.make_optimizers(1e-3) if hasattr(model, "make_optimizers")
            else {"adam": Adam(model.parameters(), lr=1e-3)})
    views = [torch.rand(args.batch_size, 1, 28, 28, device=device) for _ in range(args.views)]

    def step():
        if hasattr(model, "train_step"):
            return model.train_step(views, opts, "main")
        loss = sum(model.loss(views, model(views)).values())
        for opt in opts.values():
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in opts.values():
            opt.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.batches):
        step()
    sync()
    seconds = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    extra = "".join(f", {item}" for item in args.set) + f", {precision}"
    print(f"device: {name}")
    print(f"{args.model} width {args.width}, {args.views} views, batch {args.batch_size}{extra}: "
          f"{args.batches * args.batch_size / seconds:.0f} samples/s ({seconds / args.batches * 1000:.1f} ms/batch)")


if __name__ == "__main__":
    main()
