"""Every default in one place, config/schema.yaml: the DAG, the commands and the notebooks always pass the
schema's value (robustmvc.config.validate fills it in). A default that remains in the code, in a model's
constructor, a building block or an attack, must be the schema's; a second, different one would decide a run
that leaves the key out of its config only where the code is called without the config (the tests, a
library user), in silence."""
import inspect
import pkgutil

import pytest
import yaml

import robustmvc
from robustmvc import registry
from robustmvc.attacks import blackbox, embedding, gan, pgd
from conftest import ROOT

SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())["properties"]
PER_RUN = {"protocol", "eps", "objective", "gradient"}  # named per run, never a section's setting


def stated(section: str) -> dict:
    """The defaults the schema states for the keys of one section."""
    return {k: spec["default"] for k, spec in SCHEMA[section]["properties"].items() if "default" in spec}


# what a model takes from the config's model level: the encoder settings (every block that builds an encoder)
# and the training keys (a constructor taking one; a function's batch_size, e.g. an inference chunk, is another thing)
ARCHITECTURE, TRAINING = stated("architecture"), stated("training")
MODEL_LEVEL = {**ARCHITECTURE, **TRAINING}
# a building block names the encoder width `width`
ALIASES = {"width": "encoder_width"}


def code_defaults(packages=("models", "defenses")):
    """(where, key, default) for every keyword default of a class or function in the model packages whose name
    is a key the schema states a model-level default for."""
    found = []
    for package in packages:
        module_pkg = __import__(f"robustmvc.{package}", fromlist=["_"])
        for info in pkgutil.iter_modules(module_pkg.__path__):
            module = __import__(f"robustmvc.{package}.{info.name}", fromlist=["_"])
            for name, obj in vars(module).items():
                if getattr(obj, "__module__", None) != module.__name__ or not callable(obj):
                    continue
                for p in inspect.signature(obj).parameters.values():
                    key = ALIASES.get(p.name, p.name)
                    keys = MODEL_LEVEL if inspect.isclass(obj) else ARCHITECTURE
                    if key in keys and p.default is not inspect.Parameter.empty and p.default is not None:
                        found.append((f"{module.__name__}.{name}", key, p.default))
    return found


def test_the_schema_states_the_model_level_defaults():
    assert MODEL_LEVEL["encoder_width"] == 64 and MODEL_LEVEL["epochs"] >= 1


def test_model_constructors_and_blocks_keep_no_default_the_schema_does_not_state():
    """The encoder width was 64 in a dozen places; each model's constructor may keep it only as the schema's."""
    different = [(where, key, value, MODEL_LEVEL[key]) for where, key, value in code_defaults()
                 if value != MODEL_LEVEL[key]]
    assert not different, f"defaults that differ from config/schema.yaml (where, key, code, schema): {different}"
    for name in registry.names():  # every model's constructor is covered
        assert registry.constructor(name).__module__.startswith(("robustmvc.models", "robustmvc.defenses"))


@pytest.mark.parametrize("section, defaults", [
    ("attack", gan.DEFAULTS), ("attack", pgd.DEFAULTS), ("blackbox", blackbox.DEFAULTS),
    ("embedding_attack", embedding.DEFAULTS)], ids=["gan", "pgd", "blackbox", "embedding"])
def test_every_attack_default_is_the_schemas(section, defaults):
    """An attack's code defaults are the schema's, key by key, and the schema states each one."""
    schema = stated(section)
    missing = sorted(set(defaults) - PER_RUN - set(schema))
    assert not missing, f"{section}: keys with a code default and none in config/schema.yaml: {missing}"
    different = {k: (v, schema[k]) for k, v in defaults.items() if k not in PER_RUN and v != schema[k]}
    assert not different, f"{section}: code default != schema default: {different}"


def test_the_defaults_check_finds_a_planted_second_default(monkeypatch):
    """The check above is not vacuous: a block with a second encoder width is caught."""
    from robustmvc.models import comvc

    original = comvc.CoMVC.__init__
    signature = inspect.signature(original)
    planted = signature.replace(parameters=[p.replace(default=32) if p.name == "encoder_width" else p
                                            for p in signature.parameters.values()])

    def init(self, *args, **kwargs):
        return original(self, *args, **kwargs)

    init.__signature__ = planted
    monkeypatch.setattr(comvc.CoMVC, "__init__", init)
    assert ("robustmvc.models.comvc.CoMVC", "encoder_width", 32) in code_defaults()
    with pytest.raises(AssertionError, match="encoder_width"):
        test_model_constructors_and_blocks_keep_no_default_the_schema_does_not_state()
