"""Attack variant names, the one place that reads them.

The attack stage names each run's folder by its variant: an attack (`gan`, `pgd`, `blackbox`, `whitebox`,
`embedding`), for the paper's attack the objective it optimises (`gan-both`, `gan-com`, `gan-con`), and for
a point of the budget sweep a suffix (`gan-both-eps0.1`). These folder names are what results and reports
keep; the Snakefile, the tables and the figures split them here rather than each on its own.
"""
from __future__ import annotations

import re
from typing import NamedTuple

# the attacks, the one list of their names (`attack --attack`, robustmvc.attacks.run), in the reports' order
ATTACKS = ("gan", "pgd", "blackbox", "whitebox", "embedding")
OBJECTIVES = ("both", "com", "con")
# variants that fit an attacker (a generator or an embedding perturber) and save it; PGD fits nothing
UNFITTED = r"pgd"
FITTED = "|".join([f"gan-({'|'.join(OBJECTIVES)})"] + [a for a in ATTACKS if a not in ("gan", UNFITTED)])
# every variant without a budget suffix, in the reports' order
ORDER = [f"gan-{o}" for o in OBJECTIVES] + [a for a in ATTACKS if a != "gan"]
BUDGET = r"-eps[0-9.]+"
# wildcard constraints of the rules: every variant, those that save an attacker, and PGD's
PATTERN = rf"({FITTED}|{UNFITTED})({BUDGET})?"
FITTED_PATTERN = rf"({FITTED})({BUDGET})?"
UNFITTED_PATTERN = rf"({UNFITTED})({BUDGET})?"


class Variant(NamedTuple):
    attack: str            # what `attack --attack` runs: gan, pgd, blackbox, whitebox, embedding
    objective: str         # the GAN attack's objective; `both` for the attacks that have none
    eps: float | None      # the budget of a sweep point; None: the dataset's budget


def parse(name: str) -> Variant:
    """`gan-com-eps0.1` -> Variant("gan", "com", 0.1); `pgd` -> Variant("pgd", "both", None)."""
    if not re.fullmatch(PATTERN, name):
        raise ValueError(f"{name!r} is not an attack variant; write one of gan-both, gan-com, gan-con, pgd, blackbox, "
                         "whitebox, embedding, optionally with a budget suffix such as -eps0.1")
    base, _, eps = name.partition("-eps")
    attack, _, objective = base.partition("-")
    return Variant(attack, objective or "both", float(eps) if eps else None)


def name(attack: str, objective: str = "both", eps: float | None = None) -> str:
    """The folder name of a variant, the inverse of `parse`: ("gan", "both", 0.1) -> `gan-both-eps0.1`."""
    base = f"gan-{objective}" if attack == "gan" else attack
    out = base if eps is None else f"{base}-eps{eps}"
    parse(out)  # refuses what no rule could run
    return out


def base(name: str) -> str:
    """The variant without its budget suffix (`gan-both-eps0.1` -> `gan-both`); other names (`none`,
    `transfer-from-comvc`) unchanged."""
    return re.sub(rf"{BUDGET}$", "", name)


def is_budget_point(name: str) -> bool:
    """Whether a variant is a point of the budget sweep (it carries an `-eps` suffix)."""
    return re.search(rf"{BUDGET}$", name) is not None


def fits_attacker(name: str) -> bool:
    """Whether the variant's run saves a fitted attacker (a generator or embedding perturber) beside its metrics."""
    return re.fullmatch(FITTED_PATTERN, name) is not None
