"""The black-box GAN attack (Chhabra et al. 2022): query-only access, NES gradients, query counts."""
import numpy as np
import pytest
import torch

from robustmvc import attack_settings, registry
from robustmvc.attacks import blackbox, gan
from robustmvc.device import to_tensors
from conftest import blob_views
from outcomes import OUTCOMES, LinearSoftmax, decide

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


def tile_sums(g, tile):
    """P P^T g for P the tile x tile block-replication: each block's sum of g, over the block (edges cropped)."""
    out = torch.empty_like(g)
    for i in range(0, g.shape[-2], tile):
        for j in range(0, g.shape[-1], tile):
            block = g[..., i:i + tile, j:j + tile]
            out[..., i:i + tile, j:j + tile] = block.sum(dim=(-2, -1), keepdim=True)
    return out


def test_tiled_directions_are_constant_per_tile_and_estimate_the_tiled_gradient():
    x = torch.zeros(3, 2, 10, 7)
    u = blackbox.probe_directions(4, x, 4, torch.Generator().manual_seed(0))
    assert u.shape == (4, 3, 2, 10, 7)
    assert torch.equal(tile_sums(u, 4), u * tile_sums(torch.ones_like(u), 4))  # one value per (cropped) tile
    assert len(u[0, 0, 0].unique()) == 6  # 3 x 2 tiles, each its own draw
    # tile 1 is the per-pixel N(0, I) draw
    assert torch.equal(blackbox.probe_directions(4, x, 1, torch.Generator().manual_seed(0)),
                       torch.randn((4, *x.shape), generator=torch.Generator().manual_seed(0)))
    # E[u u^T] g = P P^T g: with tiles the estimate follows the block sums of the true gradient
    torch.manual_seed(0)
    shapes = [(1, 4, 4), (2, 3, 3)]
    model = LinearSoftmax([int(np.prod(sh)) for sh in shapes])
    with torch.no_grad():
        model.linear.weight.mul_(20)
    clean = torch.softmax(torch.randn(6, 4), dim=1)
    adv = [0.2 + 0.6 * torch.rand(6, *sh) for sh in shapes]
    grads, _ = blackbox.nes_gradient(blackbox.QueryOracle(model), clean, adv, samples=500, sigma=0.01,
                                     generator=torch.Generator().manual_seed(1), tile=2)
    x = [a.clone().requires_grad_(True) for a in adv]
    true = torch.autograd.grad(blackbox.sample_distances(clean, model(x).probs).sum(), x)
    cosine = torch.cosine_similarity(flatten(grads), flatten([tile_sums(t, 2) for t in true]), dim=1)
    assert cosine.min() > 0.9, cosine


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
    """Behaviour: the trained generators change f more than an untrained one, and never leave the budget.
    The ratio's bound 1.5 (tests/outcomes.py, linear-gain-*) sits below every seed of 0-4: exact 91-312, NES
    2.9-12.4 (benchmarks/outcome_margins.py, AMD EPYC); this is seed 0 of that measurement."""
    torch.manual_seed(1)
    model = LinearSoftmax([28 * 28, 28 * 28], k=3)  # an untrained CoMVC's assignments hardly move at all
    views = blob_tensors(40)
    s = attack_settings.check_blackbox({"eps": 0.2, "epochs": 4, "batch_size": 20, "gradient": gradient,
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
    assert attacked > OUTCOMES[f"linear-gain-{gradient}"].bound * untrained, (float(untrained), float(attacked))
    for x, a in zip(views, adv):
        assert (a - x).abs().max() <= 0.2 + TOL and a.min() >= 0 and a.max() <= 1


@pytest.mark.slow
def test_blackbox_attack_on_a_trained_comvc():
    """The attack works on a real target (the demo CoMVC, width 16): the white-box twin breaks it, and the NES
    attack's direction beats that of untrained generators rescaled to its perturbations' per-sample norm, on
    the mean of attack seeds 0-2 against one trained target (tests/outcomes.py: whitebox-drop > 0.3,
    nes-over-noise > 0.05). benchmarks/outcome_margins.py on an AMD EPYC, seeds 0-4: white-box drop 0.58-0.67
    (AVX2 kernels, seeds 0-2: 0.59-0.76); NES over noise 0.11-0.31 (AVX2: 0.14-0.23). The bounds sit below the
    worst single seed on both, so the mean of three has room for another CPU's rounding
    (benchmarks/blackbox_nes.md: why the attack is fitted and scored on running statistics, and why NES
    once lost to its untrained generators)."""
    decide(OUTCOMES["whitebox-drop"])
    decide(OUTCOMES["nes-over-noise"])


# --- settings ----------------------------------------------------------------------------------------------

def test_settings_are_checked():
    s = attack_settings.check_blackbox({"eps": 0.15})
    assert s["gradient"] == "nes" and s["eps"] == 0.15 and set(s) == set(attack_settings.DEFAULTS["blackbox"])
    with pytest.raises(ValueError, match="unknown black-box attack settings.*nes_sample"):
        attack_settings.check_blackbox({"eps": 0.1, "nes_sample": 5})
    with pytest.raises(ValueError, match="gradient 'spsa'"):
        attack_settings.check_blackbox({"eps": 0.1, "gradient": "spsa"})
    with pytest.raises(ValueError, match="eps"):
        attack_settings.check_blackbox({})
    with pytest.raises(ValueError, match="nes_sigma"):
        attack_settings.check_blackbox({"eps": 0.1, "nes_sigma": 0.0})
    with pytest.raises(ValueError, match="nes_tile >= 1"):
        attack_settings.check_blackbox({"eps": 0.1, "nes_tile": 0})
