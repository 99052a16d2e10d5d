"""Attacks on deep multi-view clustering models, through the model interface only.

- `gan`: the AR-DMVC generator attack (per-view generators and LSGAN discriminators);
- `pgd`: L-infinity projected gradient ascent on any objective of the model's outputs;
- `blackbox`: the query-only GAN attack of Chhabra et al. (2022) and its white-box twin;
- `embedding`: ALRDC's attack, a bounded learned perturbation of the representation h;
- `run`: one attack on one model under one protocol, fitted and scored (not imported here, as a
  defense importing an attack need not load every attack);
- `transfer`: generators fitted against one model applied to others.

Reading and writing their files is `robustmvc.runs`.
"""
from robustmvc.attacks import blackbox, embedding, gan, pgd
from robustmvc.attacks.gan import Perturber, load_perturber, save_perturber

__all__ = ["Perturber", "blackbox", "embedding", "gan", "load_perturber", "pgd", "save_perturber"]
