"""Attacks on deep multi-view clustering models, through the model interface only.

- `gan`: the AR-DMVC generator attack (per-view generators and LSGAN discriminators);
- `pgd`: L-infinity projected gradient ascent on any objective of the model's outputs;
- `blackbox`: the query-only GAN attack of Chhabra et al. (2022) and its white-box twin;
- `embedding`: ALRDC's attack, a bounded learned perturbation of the representation h;
- `transfer`: generators trained against one model applied to others;
- `run`: one attack on one checkpoint, scored and written to a metrics JSON (`attack_files`), and
  anomaly detectors against a saved attacker (`detect_files`).
"""
from robustmvc.attacks import blackbox, embedding, gan, pgd, run, transfer
from robustmvc.attacks.gan import PAPER_EPS, Perturber, load_perturber, save_perturber
from robustmvc.attacks.run import ATTACKS, AttackResult, attack_files, detect_files, load_attacker, resolve_settings

__all__ = ["ATTACKS", "PAPER_EPS", "AttackResult", "Perturber", "attack_files", "blackbox", "detect_files",
           "embedding", "gan", "load_attacker", "load_perturber", "pgd", "resolve_settings", "run",
           "save_perturber", "transfer"]
