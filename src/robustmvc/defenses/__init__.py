"""Defenses: models trained to keep their clustering under attack.

- `adversarial`: AR-DMVC (PGD adversarial training on the contrastive loss) and AR-DMVC-AM (plus the
  attack mitigator, a KL term between adversarial and clean cluster assignments), as a wrapper
  around a baseline trained through its loss.
- `alrdc`: ALRDC, a backbone trained in a game against a learned perturbation of its representation h,
  aligning clean and perturbed assignments by their mutual information.
"""
