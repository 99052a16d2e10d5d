"""ALRDC: the embedding-space attack on h, the mutual-information alignment, the defended model."""
import math

import pytest
import torch

from robustmvc import attack_settings, registry, train
from robustmvc.attacks import embedding
from robustmvc.defenses.alrdc import mutual_information
from robustmvc.device import seed_everything
from robustmvc.metrics import accuracy
from outcomes import OUTCOMES, decide, trained

SHAPES = [(1, 28, 28)] * 2
CFG = {"epochs": 10, "batch_size": 100, "lr": 1e-3, "seed": 0}


def _views(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, *shape, generator=g) for shape in SHAPES]


@pytest.fixture(scope="module")
def comvc_demo():
    return trained("comvc", 8, 0)


@pytest.fixture(scope="module")
def eval_half(demo_data):
    views, labels = demo_data.part("eval")
    return [torch.as_tensor(v) for v in views], labels


@pytest.mark.parametrize("name", ["comvc", "simvc", "ardmvc", "alrdc"])
def test_probs_from_h_reproduces_forward(name):
    torch.manual_seed(0)
    model = registry.build(name, SHAPES, 3, encoder_width=4).eval()
    views = _views()
    with torch.no_grad():
        out = model(views)
        assert torch.equal(model.probs_from_h(out.h), out.probs)
    assert embedding.embedding_head(model) == model.probs_from_h


def test_embedding_head_refuses_a_model_without_a_clustering_layer_and_says_where_to_look():
    model = registry.build("eamc", SHAPES, 3, encoder_width=4)
    with pytest.raises(ValueError, match="EAMC has none.*robustmvc models"):
        embedding.embedding_head(model)
    with pytest.raises(ValueError, match="AECoDDC has none"):  # a wrapper is as good as its backbone
        embedding.embedding_head(registry.build("ardmvc", SHAPES, 3, encoder_width=4, backbone="aecoddc"))


@pytest.mark.parametrize("bound", [0.01, 0.2, 1.0])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e6])
def test_embedding_perturbation_stays_in_its_relative_ball(bound, scale):
    torch.manual_seed(0)
    perturber = embedding.EmbeddingPerturber(16, bound, hidden=8)
    with torch.no_grad():
        perturber.net[-1].weight.mul_(scale)  # raw outputs from tiny to huge
        h = torch.randn(50, 16) * torch.logspace(-2, 2, 50)[:, None]
        h[0] = 0.0  # a zero representation allows no move at all
        delta = perturber(h)
    # norms up to ~300 in float32: the ball's edge holds to rounding, relative 1e-6
    assert (delta.norm(dim=1) <= bound * h.norm(dim=1) * (1 + 1e-6) + 1e-6).all()
    assert delta[0].abs().max() == 0
    if scale == 1e6:  # a huge raw delta is scaled onto the sphere, not cut to zero
        torch.testing.assert_close(delta[1:].norm(dim=1), bound * h[1:].norm(dim=1))


def test_mutual_information_against_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(7, 4, generator=g, dtype=torch.float64), 1)
    q = torch.softmax(torch.randn(7, 4, generator=g, dtype=torch.float64), 1)
    joint = (p.numpy().T @ q.numpy()) / 7
    joint = (joint + joint.T) / 2
    rows, cols = joint.sum(1), joint.sum(0)
    direct = sum(joint[i, j] * math.log(joint[i, j] / (rows[i] * cols[j])) for i in range(4) for j in range(4))
    assert mutual_information(p, q).item() == pytest.approx(direct, rel=1e-9)
    # identical, balanced one-hot assignments over k clusters: I = H(a) = log k
    k = 5
    onehot = torch.eye(k).repeat(3, 1)
    assert mutual_information(onehot, onehot).item() == pytest.approx(math.log(k), rel=1e-6)
    # every pair of clusters equally often: independent assignments, I = 0
    a = torch.eye(k).repeat_interleave(k, 0)
    b = torch.eye(k).repeat(k, 1)
    assert mutual_information(a, b).item() == pytest.approx(0.0, abs=1e-6)


def test_settings_are_checked():
    assert attack_settings.check_embedding({})["bound"] == attack_settings.DEFAULTS["embedding"]["bound"]
    with pytest.raises(ValueError, match="unknown embedding attack settings"):
        attack_settings.check_embedding({"eps": 0.3})
    with pytest.raises(ValueError, match="bound"):
        attack_settings.check_embedding({"bound": 0})
    with pytest.raises(ValueError, match="protocol 'train' is not one of paper, strict"):
        attack_settings.check_embedding({"protocol": "train"})


def test_attack_leaves_the_target_alone_and_lowers_its_acc(comvc_demo, eval_half, tmp_path):
    views, labels = eval_half
    state = {k: v.clone() for k, v in comvc_demo.state_dict().items()}
    flags = [p.requires_grad for p in comvc_demo.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in comvc_demo.parameters()]  # left by training
    perturber, history = embedding.fit(comvc_demo, views, {"epochs": 5}, progress=False)
    assert all(torch.equal(state[k], v) for k, v in comvc_demo.state_dict().items())
    assert [p.requires_grad for p in comvc_demo.parameters()] == flags
    for p, g in zip(comvc_demo.parameters(), grads):
        assert (p.grad is None) if g is None else torch.equal(p.grad, g)
    assert history[-1]["kl"] > history[0]["kl"] > 0
    pred_clean, pred_adv, h, h_adv = embedding.attacked_predictions(comvc_demo, perturber, views)
    assert torch.equal(pred_clean, comvc_demo.predict(views))
    bound = attack_settings.DEFAULTS["embedding"]["bound"]
    assert ((h_adv - h).norm(dim=1) <= bound * h.norm(dim=1) + 1e-5).all()
    assert accuracy(labels, pred_adv.numpy()) < accuracy(labels, pred_clean.numpy())
    # the drop over attack seeds 0-4 was 0.04-0.11 (benchmarks/outcome_margins.py, AMD EPYC; seed 4 alone misses
    # the bound 0.05): decided on the mean of seeds 0-2 (tests/outcomes.py, embedding-drop)
    decide(OUTCOMES["embedding-drop"])
    # the saved perturber gives the same attack
    embedding.save_perturber(tmp_path / "emb.pt", perturber, {"model": "comvc"})
    loaded, meta = embedding.load_perturber(tmp_path / "emb.pt")
    assert meta["kind"] == "embedding" and meta["bound"] == bound and meta["model"] == "comvc"
    with torch.no_grad():
        torch.testing.assert_close(loaded(h), perturber(h))


def test_registry_lists_alrdc_after_the_adversarial_defenses():
    assert registry.names()[-3:] == ["ardmvc", "ardmvc-am", "alrdc"]
    with pytest.raises(ValueError, match="baseline"):
        registry.build("alrdc", SHAPES, 3, backbone="ardmvc")
    with pytest.raises(ValueError, match="probs"):
        registry.build("alrdc", SHAPES, 3, encoder_width=4, backbone="eamc")


def test_zero_mi_weight_trains_exactly_like_the_backbone(demo_data):
    views = [v[:300] for v in demo_data.part("train")[0]]
    cfg = {**CFG, "epochs": 2}
    states = []
    for name, extra in (("comvc", {}), ("alrdc", {"mi_weight": 0.0})):
        seed_everything(3)
        model = registry.build(name, demo_data.view_shapes, 10, encoder_width=4, **extra)
        history = train.train(model, views, cfg, progress=False)
        states.append(model.state_dict())
    assert history[-1]["mi_align"] == 0.0 and history[-1]["perturber_kl"] > 0
    for key, value in states[0].items():
        assert torch.equal(value, states[1][f"backbone.{key}"]), key


def test_training_steps_both_players_and_the_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    settings = {"encoder_width": 4, "mi_weight": 0.5, "seed": 1}
    model = registry.build("alrdc", SHAPES, 3, **settings)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = train.train(model, _views(), {"epochs": 1, "batch_size": 6, "lr": 1e-3, "seed": 0}, progress=False)
    assert {"ddc1", "contrast", "mi_align", "perturber_kl"} <= set(history[0])
    changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    assert any(k.startswith("perturber.") for k in changed) and any(k.startswith("backbone.head") for k in changed)
    model.eval()
    path = tmp_path / "alrdc.pt"
    train.save_checkpoint(path, model, {"model": "alrdc", "settings": settings,
                                        "view_shapes": [list(s) for s in SHAPES], "n_clusters": 3})
    loaded, _ = train.load_checkpoint(path)
    assert torch.equal(loaded.predict(_views()), model.predict(_views()))
    with torch.no_grad():
        h = model(_views()).h
        torch.testing.assert_close(loaded.perturber(h), model.perturber(h))



@pytest.fixture(scope="module")
def alrdc_demo():
    return trained("alrdc", 8, 0)


def test_alrdc_trains_with_the_trainer_and_clusters(alrdc_demo, eval_half):
    views, labels = eval_half
    # chance is 0.1; over training seeds 0-4 ALRDC got 0.73-0.88 (benchmarks/outcome_margins.py, AMD EPYC), so
    # the bound 0.6 (tests/outcomes.py, alrdc-acc) clears the worst seed by 0.13
    assert accuracy(labels, alrdc_demo.predict(views).numpy()) > OUTCOMES["alrdc-acc"].bound
