"""The black-box GAN attack (Chhabra et al. 2022): query-only access, NES gradients, query counts."""
import numpy as np
import pytest
import torch
from torch import nn

from robustmvc import protocols
from robustmvc import registry, train
from robustmvc.device import seed_everything, to_tensors
from robustmvc.attacks import blackbox, gan
from robustmvc.models.blocks import ModelOutput
from conftest import blob_views

TOL = 1e-6  # float32 rounding of (x + delta) - x
SHAPES = [(1, 28, 28), (1, 28, 28)]  # the discriminators need >= 22x22


def blob_tensors(n, k=3, seed=0):
    return to_tensors(blob_views(n, k, seed)[0], "cpu")


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return registry.build("comvc", SHAPES, 3, encoder_width=4, hidden=16)


def record_forwards(model):
    """Wrap the model's forward to log, per call: batch size, grad mode, whether any input wanted grad."""
    calls, forward = [], model.forward

    def spy(views):
        calls.append((len(views[0]), torch.is_grad_enabled(), any(v.requires_grad for v in views)))
        return forward(views)

    model.forward = spy
    return calls


class LinearSoftmax(nn.Module):
    """A smooth stand-in target: softmax of a linear map of both views."""

    def __init__(self, dims, k=4):
        super().__init__()
        self.linear = nn.Linear(sum(dims), k)

    def forward(self, views):
        h = torch.cat([v.flatten(1) for v in views], dim=1)
        return ModelOutput(z=[v.flatten(1) for v in views], h=h, probs=torch.softmax(self.linear(h), dim=1))


def flatten(views):
    """All views of each sample as one row."""
    return torch.cat([v.flatten(1) for v in views], dim=1)


def expected_queries(n, s, epochs_done=None):
    """n clean queries, then 2 * nes_samples per sample of every full batch, every epoch."""
    bs, epochs = s["batch_size"], s["epochs"] if epochs_done is None else epochs_done
    batch_sizes = [bs] * (n // bs) if n >= bs else [n]
    return n + epochs * sum(batch_sizes) * 2 * s["nes_samples"]


# --- the threat model -------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["strict", "paper"])
def test_blackbox_fit_reaches_the_target_only_through_gradient_free_queries(protocol):
    model = tiny_model()
    model.train()  # the mode must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = record_forwards(model)
    views = blob_tensors(20)
    # no GAN or size terms: if the generators move, the NES surrogate alone moved them
    s = {"eps": 0.2, "epochs": 2, "batch_size": 10, "nes_samples": 2, "residual_blocks": 1,
         "gan_weight": 0.0, "perturb_weight": 0.0, "protocol": protocol}
    torch.manual_seed(0)
    fresh = gan.Perturber(SHAPES, 0.2, None, 1)
    perturber, history, queries = blackbox.fit(model, views, s, progress=False)
    assert all(not grad_on and not wants_grad for _, grad_on, wants_grad in calls)
    assert len(calls) == 2 + 2 * 2  # clean chunks, then one oracle call per step
    assert sum(size for size, _, _ in calls) == queries
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    moved = [not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), perturber.state_dict().values())]
    assert any(moved), "the NES surrogate must reach the generators"
    assert len(history) == 2 and {"g_total", "d_total", "perturbation", "g_gan", "adv", "seconds",
                                  "queries"} <= set(history[0])


def test_oracle_counts_samples_and_gives_no_gradients():
    model = tiny_model()
    oracle = blackbox.QueryOracle(model)
    x = [torch.rand(5, *sh, requires_grad=True) for sh in SHAPES]
    probs = oracle(x)
    oracle([v[:3] for v in x])
    assert oracle.queries == 8
    assert not probs.requires_grad and probs.shape == (5, 3)
    assert torch.allclose(probs.sum(1), torch.ones(5))
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


@pytest.mark.parametrize("n, batch_size, epochs, nes_samples", [(25, 10, 2, 2), (7, 10, 1, 3)])
def test_query_count_is_exact(n, batch_size, epochs, nes_samples):
    s = {"eps": 0.1, "epochs": epochs, "batch_size": batch_size, "nes_samples": nes_samples,
         "residual_blocks": 0}
    _, history, queries = blackbox.fit(tiny_model(), blob_tensors(n), s, progress=False)
    assert queries == expected_queries(n, s)
    assert [h["queries"] for h in history] == [expected_queries(n, s, e + 1) for e in range(epochs)]


# --- the gradient estimate ----------------------------------------------------------------------------------

def test_nes_estimate_points_along_the_true_gradient():
    torch.manual_seed(0)
    shapes = [(1, 4, 4), (2, 3, 3)]
    model = LinearSoftmax([int(np.prod(sh)) for sh in shapes])
    with torch.no_grad():
        model.linear.weight.mul_(20)  # assignments that react to the input
    clean = torch.softmax(torch.randn(6, 4), dim=1)
    adv = [0.2 + 0.6 * torch.rand(6, *sh) for sh in shapes]  # inside the box: no probe is clipped
    oracle = blackbox.QueryOracle(model)
    grads, distances = blackbox.nes_gradient(oracle, clean, adv, samples=500, sigma=0.01,
                                             generator=torch.Generator().manual_seed(1))
    assert oracle.queries == 2 * 500 * 6  # one query per probe, all in one call
    x = [a.clone().requires_grad_(True) for a in adv]
    true_a = blackbox.sample_distances(clean, model(x).probs)
    true = torch.autograd.grad(true_a.sum(), x)  # samples are independent: per-sample gradients
    cosine = torch.cosine_similarity(flatten(grads), flatten(true), dim=1)
    assert cosine.min() > 0.8, cosine
    assert torch.allclose(distances, true_a.detach(), atol=5e-3)  # probe mean: a + O(sigma^2)


# --- the generators ------------------------------------------------------------------------------------------

def test_residual_generator_keeps_shape_budget_and_survives_a_round_trip(tmp_path):
    torch.manual_seed(0)
    perturber = gan.Perturber([(1, 28, 28), (3, 29, 33)], 0.15, None, residual_blocks=2)
    views = [torch.rand(3, 1, 28, 28), torch.rand(3, 3, 29, 33).round()]
    adv, deltas = perturber(views)
    for x, a, d in zip(views, adv, deltas):
        assert a.shape == x.shape and d.abs().max() <= 0.15
        assert (a - x).abs().max() <= 0.15 + TOL and a.min() >= 0 and a.max() <= 1
    gan.save_perturber(tmp_path / "g.pt", perturber, {"attack": "blackbox"})
    loaded, meta = gan.load_perturber(tmp_path / "g.pt")
    assert meta["residual_blocks"] == 2 and loaded.residual_blocks == 2
    perturber.eval()
    assert all(torch.equal(a, b) for a, b in zip(perturber.perturb(views), loaded.perturb(views)))
    # files from before residual blocks (and before the public decoder) hold the earlier decoder: refit them
    plain = gan.Perturber([(1, 28, 28)], 0.1, None)
    torch.save({"state_dict": plain.state_dict(), "meta": {"view_shapes": [[1, 28, 28]], "eps": 0.1}}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="refit"):
        gan.load_perturber(tmp_path / "old.pt")


@pytest.mark.parametrize("gradient", ["exact", "nes"])
def test_fitted_generators_move_the_assignments_within_ball_and_box(gradient):
    """Behaviour: the trained generators change f more than an untrained one, and never leave the budget."""
    torch.manual_seed(1)
    model = LinearSoftmax([28 * 28, 28 * 28], k=3)  # an untrained CoMVC's assignments hardly move at all
    views = blob_tensors(40)
    s = blackbox.check_settings({"eps": 0.2, "epochs": 4, "batch_size": 20, "gradient": gradient,
                                 "residual_blocks": 1})
    torch.manual_seed(s["seed"])
    fresh = gan.Perturber(SHAPES, 0.2, s["init_std"], 1).eval()
    perturber, _, queries = blackbox.fit(model, views, s, progress=False)
    assert (queries is None) == (gradient == "exact")
    oracle = blackbox.QueryOracle(model)
    clean = oracle(views)
    untrained = blackbox.sample_distances(clean, oracle(fresh.perturb(views))).mean()
    adv = perturber.perturb(views)
    attacked = blackbox.sample_distances(clean, oracle(adv)).mean()
    assert attacked > 1.5 * untrained, (float(untrained), float(attacked))
    for x, a in zip(views, adv):
        assert (a - x).abs().max() <= 0.2 + TOL and a.min() >= 0 and a.max() <= 1


@pytest.mark.slow
def test_blackbox_attack_lowers_the_accuracy_of_a_trained_comvc_on_demo(demo_data):
    """The attack works on a real target: the white-box twin breaks it and queries alone still hurt it.
    Whether one epoch of queries beats the untrained generators' structured noise depends on the CPU's
    rounding (an Intel Xeon: yes; an AMD EPYC: 0.69 fitted against 0.68 untrained), so the NES attack is
    held to the clean accuracy and the noise is only bounded from above by it."""
    from robustmvc.metrics import clustering_scores

    seed_everything(0)
    model = registry.build("comvc", demo_data.view_shapes, demo_data.n_clusters, encoder_width=16)
    views, _ = demo_data.part("train")
    train.train(model, views, {"epochs": 10, "batch_size": 100, "lr": 1e-3, "seed": 0}, progress=False)
    views, labels = demo_data.part("eval")
    x = to_tensors(views, "cpu")

    def acc(adv):
        with protocols.frozen_target(model), torch.no_grad():
            return clustering_scores(labels, protocols.predict(model, adv).numpy())["acc"]

    s = {"eps": 0.3, "epochs": 1}
    torch.manual_seed(blackbox.DEFAULTS["seed"])
    untrained = acc(gan.Perturber(demo_data.view_shapes, 0.3, None, blackbox.DEFAULTS["residual_blocks"]).perturb(x))
    exact = acc(blackbox.fit(model, x, dict(s, gradient="exact"), progress=False)[0].perturb(x))
    nes = acc(blackbox.fit(model, x, dict(s, gradient="nes"), progress=False)[0].perturb(x))
    clean = acc(x)
    assert clean > 0.6, f"the target did not train (ACC {clean:.2f})"
    assert exact < clean - 0.3, f"white-box twin too weak: ACC {clean:.2f} -> {exact:.2f}"
    assert nes < clean - 0.1, f"NES attack too weak: ACC {clean:.2f} -> {nes:.2f}"
    assert untrained < clean, f"the untrained generators' noise should cost some accuracy: {untrained:.2f}"


# --- settings ----------------------------------------------------------------------------------------------

def test_settings_are_checked():
    s = blackbox.check_settings({"eps": 0.15})
    assert s["gradient"] == "nes" and s["eps"] == 0.15 and set(s) == set(blackbox.DEFAULTS)
    with pytest.raises(ValueError, match="unknown black-box attack settings.*nes_sample"):
        blackbox.check_settings({"eps": 0.1, "nes_sample": 5})
    with pytest.raises(ValueError, match="gradient 'spsa'"):
        blackbox.check_settings({"eps": 0.1, "gradient": "spsa"})
    with pytest.raises(ValueError, match="eps"):
        blackbox.check_settings({})
    with pytest.raises(ValueError, match="nes_sigma"):
        blackbox.check_settings({"eps": 0.1, "nes_sigma": 0.0})
