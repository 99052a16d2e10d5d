"""Attacks on deep multi-view clustering models, through the model interface only.

- `gan`: the AR-DMVC generator attack (per-view generators and LSGAN discriminators);
- `pgd`: L-infinity projected gradient ascent on any objective of the model's outputs;
- `blackbox`: the query-only GAN attack of Chhabra et al. (2022) and its white-box twin;
- `embedding`: ALRDC's attack, a bounded learned perturbation of the representation h;

Files in, files out (these read checkpoints and datasets, so they sit above training and are not
imported here: a defense importing an attack must not load the trainer):
- `run`: one attack on one checkpoint, scored and written to a metrics JSON (`attack_files`), and
  anomaly detectors against a saved attacker (`detect_files`);
- `transfer`: generators trained against one model applied to others (`transfer_files`).
"""
from robustmvc.attacks import blackbox, embedding, gan, pgd
from robustmvc.attacks.gan import PAPER_EPS, Perturber, load_perturber, save_perturber

__all__ = ["PAPER_EPS", "Perturber", "blackbox", "embedding", "gan", "load_perturber", "pgd", "save_perturber"]
