"""Every attack's settings without torch: their defaults, how a config resolves them for one run, and their checks.

The Snakefile resolves and hashes the settings of every attack job each time Snakemake starts (a dry run, a
run, each cluster job), and the attacks' own modules import torch, ~3.5 s of CPU on a 2-core AMD EPYC without
AVX-512. Kept here, apart from the computation, they cost Snakemake nothing of it.

The defaults are config/schema.yaml's sections (`attack`, `blackbox`, `embedding_attack`), read from there
(the paper's values, its public code's where the paper is silent); eps and the protocol are per run.
"""
from __future__ import annotations

from robustmvc.schema import stated_defaults
from robustmvc.variants import ATTACKS, OBJECTIVES

# The two evaluation protocols every attack runs under (docs/ARCHITECTURE.md, section 5). Each fixes how the
# attacked model normalises (its BatchNorm mode, robustmvc.protocols.frozen_target) and which samples fit and
# score the attacker.
PROTOCOLS: dict[str, dict[str, str]] = {
    # what produced the published numbers: the public code never calls eval() on the attacked model, so
    # BatchNorm normalises with the statistics of each shuffled batch of `batch_size`; the attacker is
    # fitted and scored on the same samples (the whole eval half)
    "paper": {"batchnorm": "batch", "samples": "same"},
    # the sound reading: BatchNorm on its running statistics; the attacker is fitted on one part of the
    # eval half (`heldout_fraction`) and scored on the rest
    "strict": {"batchnorm": "eval", "samples": "heldout"},
}
PGD_OBJECTIVES = ("kl", "sq")   # what PGD maximises (robustmvc.attacks.pgd.OBJECTIVES)
GRADIENTS = ("nes", "exact")    # the black-box attack's dA/dx~: from queries only, or autograd (its white-box twin)

DEFAULTS: dict[str, dict] = {
    "gan": {
        "objective": "both",        # both = L_a-com + L_a-con (the paper's attack); com / con = one term alone
        "eps": None,                # L-infinity budget; per dataset (datasets.<name>.eps), required
        "protocol": "paper",        # paper or strict: the target's BatchNorm mode and the samples used
        **{key: stated_defaults("attack")[key] for key in (
            "epochs", "batch_size", "lr", "lr_late", "lr_step_epoch", "beta", "perturb_weight", "gan_weight",
            "init_std", "heldout_fraction", "eval_every", "seed")},
    },
    "pgd": {                        # PGD as an evaluation attack
        "eps": None,
        "protocol": "paper",
        **{key: stated_defaults("attack")[key] for key in (
            "pgd_steps", "pgd_step", "pgd_objective", "random_start", "batch_size", "heldout_fraction", "seed")},
    },
    "blackbox": {                   # tuned on the demo (tests/test_blackbox.py) where the reference is silent
        "eps": None,
        "gradient": "nes",          # nes: black-box; exact: the white-box twin
        "protocol": "paper",
        **stated_defaults("blackbox"),
    },
    "embedding": {                  # bounded in h relative to its norm, so no eps
        "protocol": "paper",
        **stated_defaults("embedding_attack"),
    },
}


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"evaluation protocol {protocol!r} is not one of {', '.join(PROTOCOLS)} "
                         "(`heldout` is now `strict`)")
    return protocol


def _filled(attack: str, label: str, settings: dict) -> dict:
    """DEFAULTS[attack] overridden by `settings`; unknown keys are an error (typos stop early)."""
    unknown = sorted(set(settings) - set(DEFAULTS[attack]))
    if unknown:
        raise ValueError(f"unknown {label} settings {unknown}; known: {', '.join(DEFAULTS[attack])}")
    return {**DEFAULTS[attack], **{k: v for k, v in settings.items() if v is not None}}


def check_common(s: dict, budget: bool = True) -> dict:
    """The checks every fitted attack shares: its budget eps (when it has one), how the target and
    the samples are used, and the length of training. Returns `s` with eps as a float."""
    if budget:
        if s["eps"] is None or not 0 < float(s["eps"]) <= 1:
            raise ValueError(f"the attack needs an L-infinity budget 0 < eps <= 1, got {s['eps']!r}; "
                             "set `datasets.<name>.eps` in the config or pass --eps")
        s["eps"] = float(s["eps"])
    check_protocol(s["protocol"])
    if not 0 < float(s["heldout_fraction"]) < 1:
        raise ValueError(f"heldout_fraction must lie in (0, 1), got {s['heldout_fraction']}")
    if int(s["epochs"]) < 1 or int(s["batch_size"]) < 2:
        raise ValueError("the attack needs epochs >= 1 and batch_size >= 2")
    return s


def check_gan(settings: dict) -> dict:
    s = _filled("gan", "GAN attack", settings)
    if s["objective"] not in OBJECTIVES:
        raise ValueError(f"attack objective {s['objective']!r} is not one of {', '.join(OBJECTIVES)}")
    return check_common(s)


def default_step(eps: float, steps: int) -> float:
    """PGD's step size when none is given: 2.5 eps / steps (Madry et al.'s rule of thumb)."""
    return 2.5 * eps / max(int(steps), 1)


def check_pgd(settings: dict) -> dict:
    s = _filled("pgd", "PGD", settings)
    if s["eps"] is None or not 0 < float(s["eps"]) <= 1:
        raise ValueError(f"PGD needs 0 < eps <= 1, got {s['eps']}")
    if s["pgd_objective"] not in PGD_OBJECTIVES:
        raise ValueError(f"pgd_objective {s['pgd_objective']!r} is not one of {', '.join(PGD_OBJECTIVES)}")
    check_protocol(s["protocol"])
    s["eps"] = float(s["eps"])
    if s["pgd_step"] is None:
        s["pgd_step"] = default_step(s["eps"], s["pgd_steps"])
    return s


def check_blackbox(settings: dict) -> dict:
    s = _filled("blackbox", "black-box attack", settings)
    if s["gradient"] not in GRADIENTS:
        raise ValueError(f"gradient {s['gradient']!r} is not one of {', '.join(GRADIENTS)}")
    check_common(s)
    if int(s["query_chunk"]) < 1:
        raise ValueError(f"query_chunk must be >= 1 probe per forward, got {s['query_chunk']}")
    if int(s["nes_samples"]) < 1 or not float(s["nes_sigma"]) > 0 or int(s["nes_tile"]) < 1:
        raise ValueError(f"NES needs nes_samples >= 1, nes_sigma > 0 and nes_tile >= 1, got {s['nes_samples']}, "
                         f"{s['nes_sigma']}, {s['nes_tile']}")
    if int(s["residual_blocks"]) < 0:
        raise ValueError(f"residual_blocks must be >= 0, got {s['residual_blocks']}")
    return s


def check_embedding(settings: dict) -> dict:
    s = _filled("embedding", "embedding attack", settings)
    if not float(s["bound"]) > 0:
        raise ValueError(f"the embedding attack needs a relative bound > 0, got {s['bound']!r}")
    check_common(s, budget=False)
    if int(s["hidden"]) < 1:
        raise ValueError(f"the embedding perturber needs hidden >= 1, got {s['hidden']}")
    s["bound"] = float(s["bound"])
    return s


# per attack: its defaults, the config section that may override them, and its validation
SETTINGS = {"gan": (DEFAULTS["gan"], "attack", check_gan), "pgd": (DEFAULTS["pgd"], "attack", check_pgd),
            "blackbox": (DEFAULTS["blackbox"], "blackbox", check_blackbox),
            "whitebox": (DEFAULTS["blackbox"], "blackbox", check_blackbox),
            "embedding": (DEFAULTS["embedding"], "embedding_attack", check_embedding)}


def resolve_settings(attack: str = "gan", cfg: dict | None = None, dataset: str | None = None,
                     **overrides) -> dict:
    """The attack's settings: code defaults < its config section (`attack:` for gan and pgd,
    `blackbox:` for blackbox and whitebox, `embedding_attack:`) < `datasets.<dataset>.eps` (not for the
    embedding attack, bounded in h) < explicit overrides
    (None = not given). The protocol is not a section setting: it is named per run (the DAG runs every
    protocol of `evaluation.protocols`), so a section that sets it, or the BatchNorm mode it implies,
    is an error."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    defaults, section_name, check = SETTINGS[attack]
    cfg = cfg or {}
    section = cfg.get(section_name) or {}
    retired = sorted({"protocol", "target_batchnorm"} & set(section))
    if retired:
        raise ValueError(f"`{section_name}.{retired[0]}` is no longer a setting: an attack runs under a named "
                         f"protocol ({', '.join(PROTOCOLS)}; paper = batch-statistics BatchNorm on the same "
                         "samples, strict = running statistics on held-out samples); list them in "
                         "`evaluation.protocols` or pass --protocol")
    settings = dict(defaults)
    settings.update({k: v for k, v in section.items() if k in defaults and v is not None})
    if "eps" in defaults:
        settings["eps"] = ((cfg.get("datasets") or {}).get(dataset) or {}).get("eps") if dataset else None
    unknown = sorted(k for k, v in overrides.items() if v is not None and k not in defaults)
    if unknown:
        raise ValueError(f"settings {unknown} do not apply to the {attack} attack")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if attack in ("blackbox", "whitebox"):
        settings["gradient"] = "nes" if attack == "blackbox" else "exact"
    if "eps" in defaults and settings["eps"] is None:
        raise ValueError(f"no attack budget for dataset {dataset!r}: set `datasets.{dataset}.eps` in the "
                         "config or pass --eps")
    return check(settings)


def check_attack_settings(attack: str, settings: dict) -> dict:
    """Settings a job was given (`resolve_settings`' result, passed on by the DAG or by hand): every key of
    the attack's present and none other, then validated. A missing key is an error, not a default."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    defaults, section, check = SETTINGS[attack]
    missing, unknown = sorted(set(defaults) - set(settings)), sorted(set(settings) - set(defaults))
    if missing or unknown:
        raise ValueError(f"the {attack} attack's settings " + "; ".join(
            part for part in (f"lack {', '.join(missing)}" if missing else "",
                              f"hold unknown {', '.join(unknown)}" if unknown else "") if part)
            + f"; pass every setting of the `{section}` section (robustmvc.config.attack_job resolves them)")
    return check(dict(settings))
