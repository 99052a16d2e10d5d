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
from robustmvc import config, data, registry, variants
from robustmvc.attack_settings import DEFAULTS as ATTACK_DEFAULTS
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
# each model's own settings, as the schema states them
MODEL_SETTINGS = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())["$defs"]["models"]
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


@pytest.mark.parametrize("name", registry.names())
def test_each_model_takes_its_settings_keyword_only_without_defaults(name):
    """A model's settings are its constructor's keyword-only parameters, none with a default: the schema
    ($defs.models.<name>) states each one's default, and states them all, so `registry.build` fills in every
    setting a caller leaves out and there is no second default to drift."""
    params = inspect.signature(registry.constructor(name)).parameters.values()
    settings = [p for p in params if p.name not in {"self", "view_shapes", "n_clusters", "backbone"}]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in settings), [p.name for p in settings]
    assert not [p.name for p in settings if p.default is not inspect.Parameter.empty]
    # a defense's block adds what `build` takes for its backbone: the backbone's name and settings
    backbone = {"backbone", "backbone_settings"} if registry.entry(name).defense else set()
    assert {p.name for p in settings} | backbone | {"encoder_width"} == set(MODEL_SETTINGS[name]) | {"encoder_width"}
    assert all("default" in spec for spec in MODEL_SETTINGS[name].values())


def test_a_built_model_carries_the_schemas_defaults():
    """What `build` fills in is the schema's, the ardmvc-am KL weight (once 0.1 in the registry beside the
    defense's own 0.0) included; a caller's setting still wins."""
    comvc = registry.build("comvc", [(1, 28, 28)] * 2, 3)
    assert comvc.tau == MODEL_SETTINGS["comvc"]["tau"]["default"]
    assert comvc.head.out.in_features == MODEL_SETTINGS["comvc"]["hidden"]["default"]
    shapes = [tuple(v.shape) for v in comvc.state_dict().values()]
    width = registry.build("comvc", [(1, 28, 28)] * 2, 3, encoder_width=MODEL_LEVEL["encoder_width"])
    assert shapes == [tuple(v.shape) for v in width.state_dict().values()]
    for name, kl in (("ardmvc", 0.0), ("ardmvc-am", 0.1)):
        assert MODEL_SETTINGS[name]["kl_weight"]["default"] == kl
        assert registry.build(name, [(1, 28, 28)] * 2, 3, encoder_width=4).kl_weight == kl
    assert registry.build("ardmvc-am", [(1, 28, 28)] * 2, 3, encoder_width=4, kl_weight=0.3).kl_weight == 0.3


def test_building_blocks_keep_no_default_the_schema_does_not_state():
    """The encoder width was 64 in a dozen places; a block may keep it only as the schema's."""
    different = [(where, key, value, MODEL_LEVEL[key]) for where, key, value in code_defaults()
                 if value != MODEL_LEVEL[key]]
    assert not different, f"defaults that differ from config/schema.yaml (where, key, code, schema): {different}"
    for name in registry.names():  # every model's constructor is covered
        assert registry.constructor(name).__module__.startswith(("robustmvc.models", "robustmvc.defenses"))


@pytest.mark.parametrize("section, defaults", [
    ("attack", ATTACK_DEFAULTS["gan"]), ("attack", ATTACK_DEFAULTS["pgd"]), ("blackbox", ATTACK_DEFAULTS["blackbox"]),
    ("embedding_attack", ATTACK_DEFAULTS["embedding"])], ids=["gan", "pgd", "blackbox", "embedding"])
def test_every_attack_default_is_the_schemas(section, defaults):
    """An attack's defaults are the schema's (`DEFAULTS` reads them there), and the schema states each one
    but the per-run keys."""
    schema = stated(section)
    missing = sorted(set(defaults) - PER_RUN - set(schema))
    assert not missing, f"{section}: keys with a code default and none in config/schema.yaml: {missing}"
    different = {k: (v, schema[k]) for k, v in defaults.items() if k not in PER_RUN and v != schema[k]}
    assert not different, f"{section}: code default != schema default: {different}"


def test_the_defaults_check_finds_a_planted_second_default(monkeypatch):
    """The checks above are not vacuous: a constructor with a second encoder width is caught."""
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
        test_building_blocks_keep_no_default_the_schema_does_not_state()
    with pytest.raises(AssertionError, match="encoder_width"):
        test_each_model_takes_its_settings_keyword_only_without_defaults("comvc")


def test_the_schemas_name_lists_are_the_codes():
    """config/schema.yaml spells out no list of models, datasets or attack variants: `full_schema` writes in the
    registry's, `data.DATASETS` and `variants`', so a name added there is accepted in a config at once."""
    schema = config.full_schema()["properties"]
    assert schema["models"]["propertyNames"]["enum"] == registry.names() == list(MODEL_SETTINGS)
    assert schema["datasets"]["propertyNames"]["enum"] == list(data.DATASETS)
    assert schema["attack"]["properties"]["objectives"]["items"]["enum"] == list(variants.OBJECTIVES)
    fitted = [v for v in variants.ORDER if variants.fits_attacker(v)]
    assert fitted == ["gan-both", "gan-com", "gan-con", "blackbox", "whitebox", "embedding"]
    config.validate({"detection": {"attacks": fitted}, "attack": {"objectives": ["com"]}}, complete=False)
    for bad in ({"detection": {"attacks": ["pgd"]}}, {"attack": {"objectives": ["all"]}},
                {"datasets": {"mnist": {}}}):
        with pytest.raises(ValueError, match="fix it"):
            config.validate(bad, complete=False)
