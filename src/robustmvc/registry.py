"""Every model by name: how it is built, its family and what it can do. The one list of models.

Tables, plots, claims, the config check and the CLI ask `names(...)`; training, checkpoints and
benchmarks call `build(...)`. A defense receives a backbone built here, so the refusals of a backbone
that cannot carry a defense are made here, once.

Families: `baseline` (the paper's Table 1), `defense` (the paper's AR-DMVC and AR-DMVC-AM), `related` (a
related system's defense: ALRDC); the report groups the training pages by them.

Capabilities (of a model with its default settings; a defense has those of its default backbone):
- `clustering_layer`: a layer maps the representation h to cluster probabilities (`probs_from_h`),
  which the embedding attack perturbs through and ALRDC aligns on;
- `own_optimisers`: the model steps its own optimisers (`train_step`), so terms added to its loss
  would never be optimised; otherwise it is trained through its loss.
- `stacks`: several seeds of it train as one module in one step (`stack.train_seeds`), tested against
  its lone runs; the others (EAMC, Multi-VAE and ALRDC step their own optimisers, SEM re-fits between
  epochs, AECoDDC and InfoDDC are not yet held to the stack's test) are trained once per seed in the
  same call. A defense stacks when its backbone does.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    family: str            # "baseline", "defense" or "related"
    clustering_layer: bool
    own_optimisers: bool
    stacks: bool           # seeds train side by side in one module (`stack.py`); else one after another

    @property
    def defense(self) -> bool:
        """Whether the model defends a backbone it is built around (the paper's defenses and related ones)."""
        return self.family != "baseline"

    @property
    def through_loss(self) -> bool:
        return not self.own_optimisers


# the paper's Table 1 order, then the defenses
MODELS: dict[str, Entry] = {
    "eamc": Entry("baseline", clustering_layer=False, own_optimisers=True, stacks=False),
    "simvc": Entry("baseline", clustering_layer=True, own_optimisers=False, stacks=True),
    "comvc": Entry("baseline", clustering_layer=True, own_optimisers=False, stacks=True),
    "multivae": Entry("baseline", clustering_layer=False, own_optimisers=True, stacks=False),
    "aecoddc": Entry("baseline", clustering_layer=False, own_optimisers=False, stacks=False),
    "infoddc": Entry("baseline", clustering_layer=False, own_optimisers=False, stacks=False),
    "sem": Entry("baseline", clustering_layer=False, own_optimisers=False, stacks=False),
    "ardmvc": Entry("defense", clustering_layer=True, own_optimisers=False, stacks=True),
    "ardmvc-am": Entry("defense", clustering_layer=True, own_optimisers=False, stacks=True),
    "alrdc": Entry("related", clustering_layer=True, own_optimisers=True, stacks=False),
}


def names(**wanted) -> list[str]:
    """Model names in table order, those whose entry has every `wanted` value, e.g.
    `names(family="baseline")`, `names(clustering_layer=True)`, `names(defense=True)`."""
    return [name for name, entry in MODELS.items() if all(getattr(entry, k) == v for k, v in wanted.items())]


def entry(name: str) -> Entry:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]


def _classes() -> dict:
    """Each model's class (a defense: the class wrapped around its backbone)."""
    # imported on first use, not at module level: the tables, the report and the Snakefile read
    # names and capabilities here without loading torch and every model (several seconds)
    from robustmvc.defenses.adversarial import AdversarialTraining
    from robustmvc.defenses.alrdc import ALRDC
    from robustmvc.models.aecoddc import AECoDDC
    from robustmvc.models.comvc import CoMVC
    from robustmvc.models.eamc import EAMC
    from robustmvc.models.infoddc import InfoDDC
    from robustmvc.models.multivae import MultiVAE
    from robustmvc.models.sem import SEM
    from robustmvc.models.simvc import SiMVC

    return {"eamc": EAMC, "simvc": SiMVC, "comvc": CoMVC, "multivae": MultiVAE, "aecoddc": AECoDDC,
            "infoddc": InfoDDC, "sem": SEM, "ardmvc": AdversarialTraining, "ardmvc-am": AdversarialTraining,
            "alrdc": ALRDC}


def constructor(name: str):
    """The class model `name` is built from (a defense: the class wrapped around its backbone)."""
    entry(name)
    return _classes()[name]


def build(name: str, view_shapes, n_clusters: int, **settings):
    """A fresh model `name` for views of `view_shapes` and `n_clusters` clusters; `settings` are its
    constructor's keywords (a defense's: its own plus `backbone`, `backbone_settings`, `encoder_width`), each
    left out taking config/schema.yaml's default (`schema.model_defaults`): the constructors have none."""
    from robustmvc.schema import model_defaults

    entry(name)
    cls = _classes()[name]
    settings = {**model_defaults(name), **settings}
    try:
        if not MODELS[name].defense:
            return cls(view_shapes, n_clusters, **settings)
        backbone_name, encoder_width = settings.pop("backbone"), settings.pop("encoder_width")
        backbone_settings = settings.pop("backbone_settings") or {}
        # AR-DMVC is AR-DMVC-AM without the mitigator (kl_weight 0)
        if name == "ardmvc" and settings["kl_weight"]:
            raise ValueError("ardmvc is AR-DMVC without the mitigator (kl_weight 0); use ardmvc-am for a KL term")
        backbone = _backbone(name, backbone_name, view_shapes, n_clusters, encoder_width, backbone_settings)
        return cls(backbone, **settings) if name in ("ardmvc", "ardmvc-am") else cls(backbone, view_shapes, **settings)
    except TypeError as err:
        raise ValueError(f"bad settings for model {name!r}: {err}") from err


def _backbone(defense: str, name: str, view_shapes, n_clusters: int, encoder_width: int, settings: dict):
    """The backbone a defense wears: a baseline, trained through its loss (the defense adds terms to
    that loss), and for ALRDC one with a clustering layer on h (the defense aligns its outputs there)."""
    if entry(name).defense:
        raise ValueError(f"the backbone of {defense} must be a baseline, e.g. comvc; got the defended model {name!r}")
    if defense == "alrdc" and not MODELS[name].clustering_layer:
        raise ValueError(f"ALRDC needs a backbone whose clustering layer maps h to probs: "
                         f"{', '.join(names(family='baseline', clustering_layer=True))}; {name} has none")
    if MODELS[name].own_optimisers:
        raise ValueError(f"backbone {name!r} steps its own optimisers, so the terms {defense} adds to its loss would "
                         f"never be optimised; use a backbone trained through its loss: "
                         f"{', '.join(names(family='baseline', own_optimisers=False))}")
    return build(name, view_shapes, n_clusters, **{"encoder_width": encoder_width, **settings})
