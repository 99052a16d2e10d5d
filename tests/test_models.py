"""The model zoo behind the one interface: shapes, training steps, checkpoints, and each model's own term."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from robustmvc import registry, train
from robustmvc.adam import Adam
from robustmvc.models import blocks, eamc, infoddc, multivae, sem

N, K, SHAPE = 12, 3, (1, 28, 28)
EXPECTED = ["eamc", "simvc", "comvc", "multivae", "aecoddc", "infoddc", "sem"]
# small enough for 2 CPU cores; every model takes encoder_width
SETTINGS = {
    "eamc": {}, "simvc": {}, "comvc": {}, "aecoddc": {}, "infoddc": {},
    "multivae": {"hidden_dim": 32, "capacity_iterations": 4},
    "sem": {"head_hidden": 32, "feature_dim": 32, "high_feature_dim": 16, "kmeans_n_init": 2, "reweight_every": 1},
}


def build(name: str, n_views: int = 2, **over):
    torch.manual_seed(0)
    return registry.build(name, [SHAPE] * n_views, K, **{"encoder_width": 8, **SETTINGS[name], **over})


@pytest.fixture
def views():
    gen = torch.Generator().manual_seed(1)
    return [torch.rand(N, *SHAPE, generator=gen) for _ in range(2)]


def fit(model, views, epochs: int = 1, pretrain_epochs: int = 1):
    """Two batches per epoch; one pre-training epoch for the models that pre-train."""
    cfg = {"epochs": epochs, "batch_size": N // 2, "lr": 1e-3, "pretrain_epochs": pretrain_epochs, "seed": 0}
    return train.train(model, views, cfg, progress=False)


def test_registry_lists_the_baselines_first_in_table_order():
    # the paper's Table 1 rows; the defended models (AR-DMVC) may follow them
    assert registry.names()[:len(EXPECTED)] == EXPECTED


def test_unknown_model_is_a_value_error_listing_the_known_ones():
    with pytest.raises(ValueError) as err:
        registry.build("nope", [SHAPE] * 2, K)
    for name in EXPECTED:
        assert name in str(err.value)


@pytest.mark.parametrize("name", EXPECTED)
def test_one_training_step_and_output_shapes(name, views):
    model = build(name)
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    model.train()
    batch = [v[: N // 2] for v in views]
    if hasattr(model, "train_step"):
        opts = model.make_optimizers(1e-3) if hasattr(model, "make_optimizers") else \
            {"adam": Adam(model.parameters(), lr=1e-3)}
        terms = model.train_step(batch, opts, "main")
    else:
        terms = train._default_step(model, batch, {"adam": Adam(model.parameters(), lr=1e-3)},
                                    "main", None)
    assert terms and all(isinstance(k, str) for k in terms)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in terms.values()), terms
    changed = [k for k, v in model.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert any(".weight" in k for k in changed), "the step did not update any weights"

    for mode in (True, False):
        model.train(mode)
        with torch.no_grad():
            out = model(views)
        assert len(out.z) == 2 and all(z.ndim == 2 and len(z) == N for z in out.z)
        assert out.h.ndim == 2 and len(out.h) == N
        assert out.probs.shape == (N, K)
        assert (out.probs >= 0).all()
        torch.testing.assert_close(out.probs.sum(1), torch.ones(N))
        assert all(len(t) == N for t in out.extra.values())  # per-sample extras (batched_forward concatenates)


@pytest.mark.parametrize("name", EXPECTED)
def test_trainer_runs_both_phases_with_finite_terms(name, views):
    model = build(name)
    history = fit(model, views, epochs=2)
    phases = [h["phase"] for h in history]
    assert phases == (["pretrain", "main", "main"] if hasattr(model, "pretrain_loss") else ["main", "main"])
    for record in history:
        assert all(math.isfinite(v) for k, v in record.items() if k not in ("phase",))


@pytest.mark.parametrize("name", EXPECTED)
def test_checkpoint_round_trip_gives_identical_predictions(name, views, tmp_path):
    model = build(name)
    fit(model, views)
    model.eval()
    pred = model.predict(views)
    assert pred.dtype == torch.long and pred.shape == (N,)
    settings = {"encoder_width": 8, **SETTINGS[name]}
    path = tmp_path / f"{name}.pt"
    train.save_checkpoint(path, model, {"model": name, "settings": settings, "view_shapes": [list(SHAPE)] * 2,
                                        "n_clusters": K})
    loaded, meta = train.load_checkpoint(path)
    assert meta["model"] == name
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert torch.equal(loaded.predict(views), pred)
    with torch.no_grad():
        torch.testing.assert_close(loaded(views).probs, model(views).probs)


# ---------------------------------------------------------------- decoders


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 128, 64), (1, 29, 31)])
def test_decoder_mirrors_encoder_to_the_exact_view_shape(shape):
    enc, _ = blocks.encoders([shape], 4)
    dec = blocks.decoders([shape], 4)
    x = torch.rand(2, *shape)
    out = dec[0](enc[0](x))
    assert out.shape == x.shape
    assert ((out >= 0) & (out <= 1)).all()


# ---------------------------------------------------------------- SiMVC


def test_simvc_is_comvc_without_the_contrastive_term(views):
    model = build("simvc")
    assert set(model.loss(views, model(views))) == {"ddc1", "ddc2", "ddc3"}
    with pytest.raises(ValueError):
        registry.build("simvc", [SHAPE] * 2, K, contrast_weight=0.1)


# ---------------------------------------------------------------- EAMC


def test_eamc_attention_weights_sum_to_one_and_stay_near_uniform(views):
    model = build("eamc", n_views=3)
    model.train()
    out = model(views + [views[0].flip(-1)])
    att = out.extra["attention"]
    assert att.shape == (N, 3)
    torch.testing.assert_close(att.sum(1), torch.ones(N))
    weights = model.fusion_weights(att)
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))
    # softmax(sigmoid(a) / 10): logits within (0, 0.1), so each weight lies in (1/(1 + 2e^0.1), e^0.1/(e^0.1 + 2))
    lo, hi = 1 / (1 + 2 * math.exp(0.1)), math.exp(0.1) / (math.exp(0.1) + 2)
    assert ((att > lo) & (att < hi)).all()
    # fusion = the weighted sum of the views with those weights
    fused = sum(w * z for w, z in zip(weights, out.z))
    torch.testing.assert_close(model.fuse(out.z, att), fused)
    assert len(model.discriminators) == 2


def test_eamc_flipped_ddc2_and_kernel_loss_match_direct_sums():
    gen = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(7, 4, generator=gen), 1)
    direct = sum(float(probs[:, i] @ probs[:, j]) for i in range(4) for j in range(i + 1, 4)) * 2 / (4 * 3)
    assert float(eamc.ddc2_flipped(probs)) == pytest.approx(direct, rel=1e-5)

    zs = [torch.randn(7, 5, generator=gen) for _ in range(2)]
    w = torch.tensor([0.3, 0.7])
    fused = w[0] * zs[0] + w[1] * zs[1]

    def kernel(x):
        x = x.double().numpy()
        d = ((x[:, None] - x[None]) ** 2).sum(-1)
        return np.exp(-d / (2 * 0.15 * np.median(d)))

    diff = kernel(fused) - (0.3 * kernel(zs[0]) + 0.7 * kernel(zs[1]))
    expected = np.trace(diff @ diff.T)
    assert float(eamc.attention_kernel_loss(w, zs, fused)) == pytest.approx(expected, rel=1e-4)


def test_eamc_train_step_updates_discriminators_and_reports_their_loss(views):
    model = build("eamc")
    opts = model.make_optimizers(1e-3)
    assert opts["main"].param_groups[1]["lr"] == model.attention_lr
    assert opts["discriminator"].param_groups[0]["lr"] == model.discriminator_lr
    before = [p.clone() for p in model.discriminators.parameters()]
    terms = model.train_step(views, opts, "main")
    assert {"ddc1", "ddc2", "ddc3", "attention", "generator", "discriminator"} == set(terms)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.discriminators.parameters()))


# ---------------------------------------------------------------- Multi-VAE


def test_multivae_kl_terms_match_torch_distributions():
    from torch.distributions import Categorical, Normal, kl_divergence

    gen = torch.Generator().manual_seed(4)
    mean, logvar = torch.randn(9, 10, generator=gen), torch.randn(9, 10, generator=gen)
    expected = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(multivae.kl_normal(mean, logvar), expected)

    alpha = torch.softmax(torch.randn(9, 5, generator=gen), 1)
    expected = kl_divergence(Categorical(probs=alpha), Categorical(probs=torch.full((5,), 0.2))).mean()
    torch.testing.assert_close(multivae.kl_uniform(alpha), expected)


def test_multivae_capacity_annealing_follows_the_iteration_buffer(views):
    from torch.distributions import Normal, kl_divergence

    model = build("multivae")  # capacity_iterations = 4
    assert model.capacities() == (0.0, 0.0)
    opt = {"adam": Adam(model.parameters(), lr=1e-4)}
    model.train_step(views, opt, "main")
    model.train_step(views, opt, "main")
    assert int(model.iteration) == 2
    cont, disc = model.capacities()
    assert cont == pytest.approx(2.5) and disc == pytest.approx(0.5 * math.log(K))
    model.iteration.fill_(100)
    assert model.capacities() == (pytest.approx(5.0), pytest.approx(math.log(K)))

    model.eval()
    with torch.no_grad():
        out = model(views)
        terms = model.loss(views, out)
    m, lv = out.extra["mean0"], out.extra["logvar0"]
    kl = kl_divergence(Normal(m, (0.5 * lv).exp()), Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(terms["kl_cont0"], 30.0 * (5.0 - kl).abs() / 784)
    # evaluation: z are the means, h = [alpha, z_1, z_2], probs = alpha
    torch.testing.assert_close(out.z[0], m)
    torch.testing.assert_close(out.h, torch.cat([out.probs, *out.z], 1))


# ---------------------------------------------------------------- InfoDDC


def test_infoddc_mi_term_matches_a_direct_numpy_computation():
    gen = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(6, 3, generator=gen), 1).double()
    q = torch.softmax(torch.randn(6, 3, generator=gen), 1).double()
    pn, qn = p.numpy(), q.numpy()
    joint = np.zeros((3, 3))
    for i in range(6):
        joint += np.outer(pn[i], qn[i])
    joint = (joint + joint.T) / 2
    joint /= joint.sum()
    pi, pj = joint.sum(1), joint.sum(0)
    alpha = 9.0
    direct = -sum(joint[a, b] * (np.log(joint[a, b]) - (alpha + 1) * (np.log(pi[a]) + np.log(pj[b])))
                  for a in range(3) for b in range(3))
    value = float(infoddc.mi_contrast(p, q, alpha))
    assert value == pytest.approx(direct, rel=1e-10)
    # the same number is -(I(P) + alpha (H(P_i) + H(P_j)))
    mutual_info = entropy(pi) + entropy(pj) - entropy(joint.ravel())
    assert value == pytest.approx(-(mutual_info + alpha * (entropy(pi) + entropy(pj))), rel=1e-10)


def test_infoddc_views_are_softmaxed_and_pretraining_uses_mi_alone(views):
    model = build("infoddc", projection_dim=16)
    out = model(views)
    assert out.z[0].shape == (N, 16)
    torch.testing.assert_close(out.z[0].sum(1), torch.ones(N))
    assert set(model.pretrain_loss(views, out)) == {"mi"}
    terms = model.loss(views, out)
    assert set(terms) == {"ddc1", "ddc2", "ddc3", "mi"}
    torch.testing.assert_close(terms["mi"], 0.1 * infoddc.mi_contrast(out.z[0], out.z[1], 9.0))


# ---------------------------------------------------------------- AECoDDC


def test_aecoddc_terms_per_phase(views):
    model = build("aecoddc")
    out = model(views)
    pre = model.pretrain_loss(views, out)
    assert set(pre) == {"mse", "contrast"}
    direct = sum(((out.extra[f"recon{v}"] - views[v]) ** 2).mean() for v in range(2))
    torch.testing.assert_close(pre["mse"], direct)
    assert set(model.loss(views, out)) == {"ddc1", "ddc2", "ddc3", "mse", "contrast"}


# ---------------------------------------------------------------- SEM


def test_sem_view_weights_are_exp_nmi_minus_one():
    a = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    b = torch.tensor([1, 1, 0, 0, 2, 2, 2, 0])
    w = sem.nmi_weights([a, b])
    nmi = normalized_mutual_info_score(a.numpy(), b.numpy())
    assert float(w[0, 1]) == pytest.approx(math.exp(nmi) - 1)
    assert float(w[1, 0]) == pytest.approx(math.exp(nmi) - 1)
    assert float(w[0, 0]) == pytest.approx(math.e - 1)


def test_sem_start_epoch_sets_weights_from_kmeans_and_centroids(views):
    model = build("sem", kmeans_n_init=3)
    model.start_epoch(0, "pretrain", views)
    assert torch.equal(model.view_weights, torch.ones(2, 2)) and int(model.main_epochs) == 0
    model.start_epoch(1, "main", views)
    assert int(model.main_epochs) == 1
    out = blocks.batched_forward(model, views)
    # first main epoch: k-means on the low-level features, as the reference does after pre-training
    labels = [KMeans(K, n_init=3, random_state=0).fit_predict(out.extra[f"low{v}"].double().numpy())
              for v in range(2)]
    nmi = normalized_mutual_info_score(labels[0], labels[1])
    assert float(model.view_weights[0, 1]) == pytest.approx(math.exp(nmi) - 1, rel=1e-6)
    centres = KMeans(K, n_init=3, random_state=0).fit(out.h.double().numpy()).cluster_centers_
    np.testing.assert_allclose(model.centroids.numpy(), centres, rtol=1e-4, atol=1e-5)
    # probs: Student-t soft assignment to those centroids
    q = 1 / (1 + ((out.h[:, None] - model.centroids[None]) ** 2).sum(-1))
    torch.testing.assert_close(out.probs, q / q.sum(1, keepdim=True))
    # the loss weights each ordered view pair's InfoNCE by the buffer
    terms = model.loss(views, out)
    from robustmvc.models.losses import nt_xent
    expected = sum(model.view_weights[v, w] * nt_xent(out.z[v], out.z[w], 1.0) for v in range(2) for w in range(2))
    torch.testing.assert_close(terms["contrast"], expected)
    torch.testing.assert_close(out.z[0].norm(dim=1), torch.ones(N))
