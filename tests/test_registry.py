"""The registry's family and capabilities of each model agree with the model it builds."""
import pytest

from robustmvc import registry, tables
from robustmvc.attacks.embedding import embedding_head
from robustmvc.cli import main

SHAPES = [(1, 28, 28)] * 2


@pytest.mark.parametrize("name", registry.names())
def test_declared_capabilities_are_those_of_the_built_model(name):
    entry = registry.entry(name)
    model = registry.build(name, SHAPES, 3, encoder_width=4)
    assert hasattr(model, "backbone") == entry.defense
    assert hasattr(model, "train_step") == entry.own_optimisers != entry.through_loss
    try:
        embedding_head(model)
        has_layer = True
    except ValueError:
        has_layer = False
    assert has_layer == entry.clustering_layer
    if entry.stacks:  # seeds stacked under vmap: trained through the loss, no per-epoch re-fit
        assert entry.through_loss and not hasattr(model, "start_epoch")


def test_queries_select_by_family_and_capability():
    assert registry.names(family="baseline") + registry.names(defense=True) == registry.names()
    assert registry.names(defense=True) == ["ardmvc", "ardmvc-am", "alrdc"]
    assert registry.names(family="defense") + registry.names(family="related") == registry.names(defense=True)
    assert registry.names(clustering_layer=True) == ["simvc", "comvc", "ardmvc", "ardmvc-am", "alrdc"]
    assert tables.MODEL_ORDER == registry.names()
    assert registry.names(stacks=True) == ["simvc", "comvc", "ardmvc", "ardmvc-am"]
    with pytest.raises(ValueError, match="unknown model 'comvcc'; known models: eamc, simvc, comvc"):
        registry.entry("comvcc")


@pytest.mark.parametrize("backbone", ["ardmvc-am", "alrdc"])
def test_a_defense_is_never_a_backbone(backbone):
    for defense in ("ardmvc", "alrdc"):
        with pytest.raises(ValueError, match=f"backbone of {defense} must be a baseline.*{backbone!r}"):
            registry.build(defense, SHAPES, 3, encoder_width=4, backbone=backbone)


def test_the_refusal_lists_the_baselines_trained_through_their_loss():
    with pytest.raises(ValueError, match="steps its own optimisers.*: simvc, comvc, aecoddc, infoddc, sem$"):
        registry.build("ardmvc-am", SHAPES, 3, encoder_width=4, backbone="multivae")


def test_cli_lists_each_model_with_family_and_capabilities(capsys):
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert list(lines) == registry.names()
    assert "baseline" in lines["eamc"] and "steps its own optimisers" in lines["eamc"]
    assert "defense" in lines["ardmvc-am"] and "trained through its loss" in lines["ardmvc-am"]
    assert "related" in lines["alrdc"] and "clustering layer h -> probs" in lines["alrdc"]
