"""Every training and attack outcome the tests assert, measured over seeds: the statistic per seed, the bound the
test holds it to, the margin (how far the worst seed and the seeds' mean clear it; negative: fails) and the
seeds' standard deviation. Run it on a new CPU before trusting the suite there; a margin that shrinks towards 0
names the test that will flip.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/outcome_margins.py [--seeds 0,1,2,3,4] [--only NAME ...]

The outcomes and their bounds live in tests/outcomes.py (one source for this script and the tests). The whole
list over 5 seeds took ~260 CPU s on one thread of a shared AMD EPYC, the mitigator's retraining half of it;
--only picks some (names: --list).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import outcomes  # noqa: E402  (tests/ is not a package)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0-4)")
    parser.add_argument("--only", nargs="*", default=None, help="outcome names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the outcomes and exit")
    args = parser.parse_args(argv)
    if args.list:
        for o in outcomes.OUTCOMES.values():
            print(f"{o.name:18s} {o.test}")
        return
    unknown = sorted(set(args.only or ()) - set(outcomes.OUTCOMES))
    if unknown:
        parser.error(f"unknown outcomes {unknown}; known: {', '.join(outcomes.OUTCOMES)}")
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, seeds {seeds}")
    print(f"{'outcome':18s} {'statistic':34s} {'per seed':44s} {'bound':>8s} {'margin: worst':>14s} {'of mean':>9s} {'sd':>9s}")
    for o in outcomes.OUTCOMES.values():
        if args.only and o.name not in args.only:
            continue
        start = time.process_time()
        values = [o.measure(s) for s in seeds]
        margins = [o.margin(v) for v in values]
        bound = f"{'>' if o.above else '<'} {o.bound:g}"
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        print(f"{o.name:18s} {o.statistic:34s} {' '.join(f'{v:.3g}' for v in values):44s} {bound:>8s} "
              f"{min(margins):14.3g} {o.margin(float(np.mean(values))):9.3g} {sd:9.3g}"
              f"  ({time.process_time() - start:.0f} CPU s)", flush=True)


if __name__ == "__main__":
    main()
