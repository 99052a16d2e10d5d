"""Our trainer against a loop written the way the paper's public code trains, side by side.

    python benchmarks/side_by_side.py [--width 64] [--threads 2] [--precision auto] [--batches 5]

Both sides train the same model (same class, width, settings, seed) on the same random 1x28x28
views (throughput does not depend on pixel values), batch 100, on the same threads and device:
- ours: `robustmvc.train.train` itself, every per-step cost included (device-resident data, loss
  terms summed on the device and read once per epoch), conv stacks in the chosen precision;
- public-style: fp32, a torch DataLoader over CPU tensors (shuffled, full batches), each batch moved
  to the device, and every loss term read back as a float after each step for logging; AR-DMVC-AM's
  PGD as the public code runs it (`public_pgd`: every loss term at each step, the contrastive one
  back-propagated into the parameters as well as the perturbation).
Each side first trains one short warm-up epoch (kernel selection, allocator), then one timed epoch of
`--batches` batches; the sides alternate `--repeats` times and each keeps its best epoch, so a machine
shared with other jobs slows both sides alike and a burst of load does not decide the ratio. Models: CoMVC and AR-DMVC-AM with 10 PGD steps of 0.02 in eps 0.2 (the paper's).
Prints samples/s of each side, our speed-up over the public-style loop, and the cost of AR-DMVC-AM
relative to CoMVC on each side.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from robustmvc import registry, train
from robustmvc.device import resolve_device, resolve_precision, set_threads
from robustmvc.models.losses import kl_term

MODELS = {"comvc": {}, "ardmvc-am": {"pgd_steps": 10, "pgd_step": 0.02, "pgd_eps": 0.2, "kl_weight": 0.1}}


def build(name: str, width: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return registry.build(name, [(1, 28, 28)] * 2, 10, encoder_width=width, **MODELS[name]).to(device)


def ours(name, views, width, batch_size, device, precision) -> float:
    """Samples/s of one epoch of the real trainer."""
    cfg = {"epochs": 1, "batch_size": batch_size, "lr": 1e-3, "seed": 0}
    model = build(name, width, device)
    train.train(model, [v[:2 * batch_size] for v in views], cfg, device=device, precision=precision, progress=False)
    sync(device)
    start = time.perf_counter()
    train.train(model, views, cfg, device=device, precision=precision, progress=False)
    sync(device)
    return len(views[0]) // batch_size * batch_size / (time.perf_counter() - start)


def public_pgd(backbone, views, eps: float, step: float, steps: int) -> list[torch.Tensor]:
    """PGD as the public AR-DMVC code runs it during training: the model in train mode, the perturbations
    leaf tensors, every loss term of the backbone computed at each step and only the contrastive one
    back-propagated, with `.backward()`, so the parameters' gradients are computed too (zeroed before
    each step); then a signed step, clipped to the ball and to [0, 1]."""
    deltas = [((2 * torch.rand_like(x) - 1) * eps).requires_grad_(True) for x in views]
    for _ in range(steps):
        backbone.zero_grad()
        adv = [x + d for x, d in zip(views, deltas)]
        backbone.loss(adv, backbone(adv))["contrast"].backward()
        with torch.no_grad():
            for x, d in zip(views, deltas):
                d += step * d.grad.sign()
                d.clamp_(-eps, eps)
                d.copy_((x + d).clamp(0, 1) - x)
                d.grad = None
    return [(x + d).detach() for x, d in zip(views, deltas)]


def public_terms(backbone, views, log: list) -> tuple[torch.Tensor, torch.Tensor]:
    """One of the public code's training-step calls: forward, every loss term, each logged as a float."""
    out = backbone(views)
    terms = backbone.loss(views, out)
    total = sum(terms.values())
    log.append({k: v.item() for k, v in terms.items()} | {"tot": total.item()})
    return total, out.probs


def public_loss(model, batch, log: list) -> torch.Tensor:
    """The loss of one batch as the public code computes it: CoMVC's step, or AR-DMVC-AM's (PGD the public
    way, then the clean and the adversarial steps and the KL term)."""
    if not hasattr(model, "backbone"):
        return public_terms(model, batch, log)[0]
    adv = public_pgd(model.backbone, batch, model.pgd_eps, model.pgd_step, model.pgd_steps)
    clean, p_clean = public_terms(model.backbone, batch, log)
    attacked, p_adv = public_terms(model.backbone, adv, log)
    return clean + model.adv_weight * attacked + model.kl_weight * kl_term(p_clean, p_adv, model.kl_direction)


def public_style(name, views, width, batch_size, device) -> float:
    """Samples/s of one epoch of a public-code-style loop: fp32, DataLoader, per-batch float logging."""
    model = build(name, width, device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.utils.data.TensorDataset(*(torch.as_tensor(v) for v in views))

    def epoch(n_batches):
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True)
        log = []
        for i, batch in enumerate(loader):
            if i == n_batches:
                break
            batch = [x.to(device) for x in batch]
            loss = public_loss(model, batch, log)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return log

    epoch(2)
    sync(device)
    start = time.perf_counter()
    epoch(len(views[0]) // batch_size)
    sync(device)
    return len(views[0]) // batch_size * batch_size / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--batches", type=int, default=5, help="timed batches per side and model")
    p.add_argument("--repeats", type=int, default=3, help="alternating measurements per side; the best counts")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="ours (public-style: fp32)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    set_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    rng = np.random.default_rng(0)
    views = [rng.random((args.batches * args.batch_size, 1, 28, 28), dtype=np.float32) for _ in range(2)]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; width {args.width}, batch {args.batch_size}, {args.batches} timed batches, "
          f"best of {args.repeats}; "
          f"ours in {precision}, public-style in fp32")
    speed = {}
    for model in MODELS:
        runs = [(ours(model, views, args.width, args.batch_size, device, precision),
                 public_style(model, views, args.width, args.batch_size, device)) for _ in range(args.repeats)]
        speed[model] = (max(r[0] for r in runs), max(r[1] for r in runs))
        print(f"{model:10s} ours {speed[model][0]:8.1f} samples/s   public-style {speed[model][1]:8.1f} samples/s   "
              f"ours / public-style {speed[model][0] / speed[model][1]:.2f}x", flush=True)
    for side, i in (("ours", 0), ("public-style", 1)):
        print(f"cost of ardmvc-am (10 PGD steps) / comvc, {side}: {speed['comvc'][i] / speed['ardmvc-am'][i]:.1f}x")


if __name__ == "__main__":
    main()
