"""Attacks on deep multi-view clustering models, through the model interface only.

- `gan`: the AR-DMVC generator attack (per-view generators and LSGAN discriminators);
- `pgd`: L-infinity projected gradient ascent on any objective of the model's outputs;
- `run`: one attack on one checkpoint, scored and written to a metrics JSON (`attack_files`).
"""
from robustmvc.attacks import gan, pgd, run
from robustmvc.attacks.gan import PAPER_EPS, Perturber, load_perturber, save_perturber
from robustmvc.attacks.run import ATTACKS, AttackResult, attack_files, resolve_settings

__all__ = ["ATTACKS", "PAPER_EPS", "AttackResult", "Perturber", "attack_files", "gan", "load_perturber",
           "pgd", "resolve_settings", "run", "save_perturber"]
