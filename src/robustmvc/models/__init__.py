"""The model registry: every model is built by name from its view shapes, cluster count and settings."""
from __future__ import annotations

from typing import Callable

from torch import nn

from robustmvc.models.aecoddc import AECoDDC
from robustmvc.models.blocks import ModelOutput
from robustmvc.models.comvc import CoMVC
from robustmvc.models.eamc import EAMC
from robustmvc.models.infoddc import InfoDDC
from robustmvc.models.multivae import MultiVAE
from robustmvc.models.sem import SEM
from robustmvc.models.simvc import SiMVC

# the paper's Table 1 order
REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "eamc": EAMC,
    "simvc": SiMVC,
    "comvc": CoMVC,
    "multivae": MultiVAE,
    "aecoddc": AECoDDC,
    "infoddc": InfoDDC,
    "sem": SEM,
}


def _defended(mitigator: bool):
    """AR-DMVC (no mitigator: kl_weight 0) or AR-DMVC-AM: a backbone trained with the adversarial defense."""
    def factory(view_shapes, n_clusters, **settings):
        from robustmvc.defenses.adversarial import AdversarialTraining

        if not mitigator and settings.get("kl_weight", 0):
            raise ValueError("ardmvc is AR-DMVC without the mitigator (kl_weight 0); use ardmvc-am for a KL term")
        settings.setdefault("kl_weight", 0.1 if mitigator else 0.0)
        return AdversarialTraining(view_shapes, n_clusters, **settings)
    return factory


REGISTRY["ardmvc"] = _defended(mitigator=False)
REGISTRY["ardmvc-am"] = _defended(mitigator=True)


def _alrdc(view_shapes, n_clusters, **settings):
    """ALRDC, imported on first build: the defense module imports this registry itself."""
    from robustmvc.defenses.alrdc import ALRDC

    return ALRDC(view_shapes, n_clusters, **settings)


REGISTRY["alrdc"] = _alrdc


def names() -> list[str]:
    return list(REGISTRY)


def build(name: str, view_shapes, n_clusters: int, **settings) -> nn.Module:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(REGISTRY)}")
    try:
        return REGISTRY[name](view_shapes, n_clusters, **settings)
    except TypeError as err:
        raise ValueError(f"bad settings for model {name!r}: {err}") from err


__all__ = ["REGISTRY", "ModelOutput", "build", "names"]
