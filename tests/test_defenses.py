"""AR-DMVC and AR-DMVC-AM: the adversarial views, the KL term, equivalence with the plain backbone."""
import math

import numpy as np
import pytest
import torch

from robustmvc import registry, train
from robustmvc.device import seed_everything
from robustmvc.models.losses import kl_term
from outcomes import OUTCOMES, mitigator_ratio

FAST = dict(encoder_width=4, pgd_steps=3, pgd_step=0.05)


def _views(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, 1, 28, 28, generator=g) for _ in range(2)]


@pytest.mark.parametrize("eps", [0.05, 0.2, 0.5])
def test_adversarial_views_stay_in_ball_and_box(eps):
    model = registry.build("ardmvc", [(1, 28, 28)] * 2, 3, **{**FAST, "pgd_eps": eps})
    views = _views()
    adv = model.adversarial_views(views)
    for x, a in zip(views, adv):
        assert (a - x).abs().max() <= eps + 1e-6
        assert a.min() >= 0 and a.max() <= 1
        assert (a - x).abs().max() > eps / 2  # it did move


def test_kl_term_against_direct_computation_both_directions():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(5, 4, generator=g), 1)
    q = torch.softmax(torch.randn(5, 4, generator=g), 1)
    pe, qe = p.numpy() + 1e-4, q.numpy() + 1e-4
    paper = np.mean([sum(qe[i, k] * math.log(qe[i, k] / pe[i, k]) for k in range(4)) for i in range(5)])
    code = np.mean([sum(pe[i, k] * math.log(pe[i, k] / qe[i, k]) for k in range(4)) for i in range(5)])
    assert math.isclose(kl_term(p, q, "paper").item(), paper, rel_tol=1e-5)
    assert math.isclose(kl_term(p, q, "code").item(), code, rel_tol=1e-5)
    assert abs(paper - code) > 1e-3  # the two directions really differ here
    assert kl_term(p, p, "paper").item() == pytest.approx(0, abs=1e-7)
    # the public code's expression: F.kl_div(log q, p, batchmean) = KL(p || q)
    ref = torch.nn.functional.kl_div((q + 1e-4).log(), p + 1e-4, reduction="batchmean")
    assert math.isclose(kl_term(p, q, "code").item(), ref.item(), rel_tol=1e-5)
    with pytest.raises(ValueError, match="kl_direction"):
        kl_term(p, q, "sideways")


@pytest.mark.parametrize("backbone", ["comvc", "aecoddc", "sem"])
def test_zero_weights_train_exactly_like_the_backbone(demo_data, backbone):
    """Same seed, lambda = 0: the backbone's own loss sequence, its pretraining and per-epoch hooks included."""
    views = [v[:300] for v in demo_data.part("train")[0]]
    cfg = {"epochs": 2, "pretrain_epochs": 1, "batch_size": 100, "lr": 1e-3, "seed": 3}
    histories = []
    for name, extra in ((backbone, {}), ("ardmvc", {"adv_weight": 0.0, "pgd_steps": 2, "backbone": backbone,
                                                    "backbone_settings": {}})):
        seed_everything(3)
        model = registry.build(name, demo_data.view_shapes, 10, encoder_width=4, **extra)
        histories.append(train.train(model, views, cfg, progress=False))
    assert [r["phase"] for r in histories[1]] == [r["phase"] for r in histories[0]]
    for plain, defended in zip(*histories):
        own = set(plain) - {"total", "epoch", "phase", "seconds"}
        assert own and own <= set(defended)
        for term in own:
            assert plain[term] == pytest.approx(defended[term], rel=1e-6, abs=1e-9), (plain["phase"], term)
        if plain["phase"] == "main":
            assert all(defended[f"adv_{t}"] == 0.0 for t in own)


@pytest.mark.parametrize("backbone", ["eamc", "multivae"])
def test_backbones_that_step_their_own_optimisers_are_refused(backbone):
    with pytest.raises(ValueError, match="steps its own optimisers.*comvc"):
        registry.build("ardmvc", [(1, 28, 28)] * 2, 3, encoder_width=4, backbone=backbone, backbone_settings={})


def test_pgd_search_updates_batchnorm_statistics_by_default_as_the_public_code():
    model = registry.build("ardmvc", [(1, 28, 28)] * 2, 3, **FAST).train()
    views = _views()

    def bn_state(net):
        return {k: v.clone() for k, v in net.state_dict().items() if "running_mean" in k}

    before = bn_state(model)
    # the public code searches in train mode: every step updates the running statistics
    model.adversarial_views(views)
    assert model.training
    assert any(not torch.equal(before[k], v) for k, v in bn_state(model).items())
    # the option `eval` searches on the running statistics and leaves them alone
    sound = registry.build("ardmvc", [(1, 28, 28)] * 2, 3, **FAST, pgd_batchnorm="eval").train()
    sound.load_state_dict(model.state_dict())
    kept = bn_state(sound)
    sound.adversarial_views(views)
    assert sound.training
    assert all(torch.equal(kept[k], v) for k, v in bn_state(sound).items())


def test_first_pair_option_and_bad_settings():
    three = [(1, 28, 28)] * 3
    model = registry.build("ardmvc", three, 3, **FAST, pgd_pairs="first")
    assert len(model.adversarial_views(_views() + _views(seed=1)[:1])) == 3
    with pytest.raises(ValueError, match="pgd_pairs"):
        registry.build("ardmvc", three, 3, pgd_pairs="some")
    with pytest.raises(ValueError, match="ardmvc-am"):
        registry.build("ardmvc", three, 3, kl_weight=0.5)


def test_mitigator_adds_a_kl_term():
    model = registry.build("ardmvc-am", [(1, 28, 28)] * 2, 3, **FAST, kl_weight=0.7)
    views = _views()
    terms = model.loss(views, model(views))
    assert {"ddc1", "contrast", "adv_ddc1", "adv_contrast", "kl"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())


@pytest.mark.slow
def test_mitigator_keeps_assignments_closer_under_pgd_than_comvc():
    """What AR-DMVC-AM trains for, measured on held-out samples: the KL between its clean and PGD-attacked
    soft assignments (the divergence PGD maximises) stays below CoMVC's (width 8, training seed 0: 0.48 of it).
    Over training seeds 0-4 the ratio was 0.48-0.78 (benchmarks/outcome_margins.py, AMD EPYC; the earlier bound
    0.75 failed seed 1), so the bound 0.9 (tests/outcomes.py, mitigator-ratio) clears the worst seed by 0.12. Its ACC under this PGD is not asserted: on the demo at width 8 with the public
    code's contrastive scale, CoMVC itself keeps about 0.47 and the defended model does not do better by
    more than seed noise."""
    ratio = mitigator_ratio(0)
    assert ratio < OUTCOMES["mitigator-ratio"].bound, ratio
