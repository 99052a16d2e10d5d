"""Training throughput of CoMVC (samples per second) at batch 100 on the current device.

    python benchmarks/train_throughput.py [--width 64] [--views 2] [--batches 30] [--device auto]

Random 1x28x28 views (throughput does not depend on pixel values); a few warm-up batches are
excluded; on CUDA the clock waits for the device before reading.
"""
from __future__ import annotations

import argparse
import time

import torch

from robustmvc import models
from robustmvc.train import resolve_device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = models.build("comvc", [(1, 28, 28)] * args.views, 10, encoder_width=args.width).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    views = [torch.rand(args.batch_size, 1, 28, 28, device=device) for _ in range(args.views)]

    def step():
        out = model(views)
        loss = sum(model.loss(views, out).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
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
    print(f"device: {name}")
    print(f"comvc width {args.width}, {args.views} views, batch {args.batch_size}: "
          f"{args.batches * args.batch_size / seconds:.0f} samples/s ({seconds / args.batches * 1000:.1f} ms/batch)")


if __name__ == "__main__":
    main()
