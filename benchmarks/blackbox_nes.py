"""The black-box attack against its untrained generators and its white-box twin, per attack seed and epoch,
on the demo CoMVC (width 16, training seed 0): the numbers behind benchmarks/blackbox_nes.md.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/blackbox_nes.py '{"protocol": "strict", "epochs": 2}' \
        --seeds 0,1,2 [--gradients exact,nes]

The JSON overrides the black-box attack's defaults (robustmvc.attack_settings; eps is 0.3). Per epoch it prints the
ACC under the fitted generators, under untrained generators rescaled per sample and view to the fitted perturbations'
L2 norm (same size, untrained direction), that norm (view 1) and the epoch's mean A. The target is scored as the
protocol fits it: BatchNorm on running statistics (strict) or on the statistics of shuffled batches of 100 (paper).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import outcomes  # noqa: E402  (tests/ is not a package)
from robustmvc import attack_settings, protocols  # noqa: E402
from robustmvc.attacks import blackbox, gan  # noqa: E402
from robustmvc.loop import run_epochs  # noqa: E402
from robustmvc.metrics import clustering_scores  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="?", default="{}",
                        help="JSON overrides of the black-box attack's defaults (robustmvc.attack_settings)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--gradients", default="exact,nes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    s = attack_settings.check_blackbox({"eps": 0.3, **json.loads(args.settings)})
    model = outcomes.trained("comvc", 16, 0)
    x, labels = outcomes.eval_half()
    batchnorm = protocols.batchnorm_of(s)

    def acc(views):
        with protocols.frozen_target(model, batchnorm), torch.no_grad():
            pred = protocols.predict(model, views, 100 if batchnorm == "batch" else None)
        return clustering_scores(labels, pred.numpy())["acc"]

    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}; {json.dumps(json.loads(args.settings))}; "
          f"clean ACC {acc(x):.3f}")
    for seed in (int(v) for v in args.seeds.split(",")):
        torch.manual_seed(seed)
        noise = gan.Perturber(outcomes.demo().view_shapes, s["eps"], s["init_std"], s["residual_blocks"]).eval()
        noise = noise.perturb(x)
        print(f"seed {seed}: untrained generators {acc(noise):.3f}", flush=True)
        for gradient in args.gradients.split(","):
            rows, fitted = [], {}
            networks = gan.networks

            def keep(*a, **k):  # the generators being fitted, to score them after every epoch
                out = networks(*a, **k)
                fitted["perturber"] = out[0]
                return out

            def epochs(step, *a, end=None, **k):
                def scored(epoch, record):
                    end(epoch, record)
                    adv = fitted["perturber"].perturb(x)
                    rows.append(f"e{epoch + 1} {acc(adv):.3f} (noise {acc(outcomes.norm_matched(noise, adv, x, s['eps'])):.3f}, "
                                f"norm {float((adv[0] - x[0]).flatten(1).norm(dim=1).mean()):.2f}, A {float(record['adv']):.3f})")
                return run_epochs(step, *a, end=scored, **k)

            gan.networks, blackbox.run_epochs = keep, epochs
            start = time.process_time()
            try:
                blackbox.fit(model, x, dict(s, gradient=gradient, seed=seed), progress=False)
            finally:
                gan.networks, blackbox.run_epochs = networks, run_epochs
            print(f"  {gradient:5s} [{time.process_time() - start:.0f} CPU s] " + "; ".join(rows), flush=True)


if __name__ == "__main__":
    main()
