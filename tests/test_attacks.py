"""The GAN attack, PGD, the attack runner and its CLI."""
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustmvc import attack_settings, cli, protocols, registry, runs, train
from robustmvc.attacks import gan, pgd, run
from robustmvc.data import MultiViewData, save
from robustmvc.device import to_tensors
from conftest import blob_views
from outcomes import OUTCOMES, decide, gan_run, trained

TOL = 1e-6  # float32 rounding of (x + delta) - x


def tiny_model(shapes=((1, 28, 28), (1, 28, 28)), k=3, seed=0):
    torch.manual_seed(seed)
    return registry.build("comvc", list(shapes), k, encoder_width=4, hidden=16)


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(model, before):
    after = model.state_dict()
    assert set(after) == set(before)
    for key, value in before.items():
        assert torch.equal(after[key], value), f"{key} changed"


# --- generator, budget, shapes -------------------------------------------------------------------

@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(eps=st.floats(0.01, 1.0), seed=st.integers(0, 2**16), n=st.integers(1, 4),
       init_std=st.sampled_from([1.0, 0.02, None]))
def test_every_generated_batch_stays_in_the_ball_and_the_box(eps, seed, n, init_std):
    torch.manual_seed(seed)
    perturber = gan.Perturber([(1, 28, 28), (1, 28, 28)], eps, init_std)
    views = [torch.rand(n, 1, 28, 28), torch.rand(n, 1, 28, 28).round()]  # binary view: box binds often
    adv, deltas = perturber(views)
    for x, a, d in zip(views, adv, deltas):
        assert a.shape == x.shape
        assert d.abs().max() <= eps
        assert (a - x).abs().max() <= eps + TOL
        assert a.min() >= 0 and a.max() <= 1
    for x, a in zip(views, perturber.perturb(views, batch_size=3)):
        assert (a - x).abs().max() <= eps + TOL and a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 128, 64), (2, 29, 33)])
def test_generator_output_has_the_view_shape(shape):
    out = gan.Generator(shape)(torch.rand(2, *shape))
    assert out.shape == (2, *shape)
    assert out.abs().max() <= 1  # tanh
    scores = gan.Discriminator(shape)(torch.rand(2, *shape))
    assert scores.shape[0] == 2 and scores.min() >= 0 and scores.max() <= 1


def test_generator_decoder_is_the_public_codes():
    gen = gan.Generator((1, 28, 28))
    x = torch.rand(2, 1, 28, 28)
    sizes = []
    h = gen.encoder(x)
    for layer in gen.decoder:
        h = layer(h)
        if isinstance(layer, torch.nn.ConvTranspose2d):
            sizes.append(tuple(h.shape[2:]))
            assert layer.output_padding == (0, 0)
    assert sizes == [(11, 11), (23, 23), (28, 28)]
    last = gen.decoder[-2]
    assert last.kernel_size == (6, 6) and last.stride == (1, 1)


def test_the_last_layer_reaches_every_pixel():
    torch.manual_seed(0)
    gen = gan.Generator((1, 28, 28))
    inner = gen.decoder[:-2](gen.encoder(torch.rand(1, 1, 28, 28))).detach()
    jac = torch.autograd.functional.jacobian(lambda t: gen.decoder[-2:](t)[0, 0], inner)  # (28, 28, *inner)
    assert (jac.flatten(2).abs().sum(-1) > 0).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_perturbation_varies_at_the_bottom_rows_and_right_columns(seed):
    """No fixed band: across inputs, the edge pixels of the generator's output move about as much as the
    interior's (the earlier decoder's bottom row moved ~60x less than its interior)."""
    torch.manual_seed(seed)
    perturber = gan.Perturber([(1, 28, 28)], 0.3, 1.0)
    with torch.no_grad():
        out = perturber.generators[0](torch.rand(64, 1, 28, 28))[:, 0]
    spread = out.std(0)  # per pixel, over inputs
    interior = spread[4:24, 4:24].mean()
    for edge in (spread[-2:, :], spread[:, -2:]):
        assert edge.mean() > 0.3 * interior
    # within one image the edge is not constant either
    assert out[:, -1, :].std(1).mean() > 0.1 and out[:, :, -1].std(1).mean() > 0.1


def test_generator_files_of_the_earlier_decoder_ask_to_be_refitted(tmp_path):
    from robustmvc.files import save_module

    perturber = gan.Perturber([(1, 28, 28)], 0.3)
    path = tmp_path / "old.pt"
    gan.save_perturber(path, perturber, {"model": "comvc"})
    assert gan.load_perturber(path)[1]["decoder"] == gan.DECODER
    save_module(path, perturber, {"view_shapes": [[1, 28, 28]], "eps": 0.3})  # no decoder tag: the earlier shape
    with pytest.raises(ValueError, match="earlier generator decoder.*refit"):
        gan.load_perturber(path)
    with pytest.raises(ValueError, match="earlier generator decoder.*refit"):
        runs.load_attacker(path)


def test_too_small_view_is_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        gan.Generator((1, 5, 5))


# --- loss terms ------------------------------------------------------------------------------------

def test_attack_losses_match_direct_computation():
    rng = np.random.default_rng(1)
    z_clean = [rng.normal(size=(5, 7)), rng.normal(size=(5, 7))]
    z_adv = [rng.normal(size=(5, 7)), rng.normal(size=(5, 7))]
    h_clean, h_adv = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    com = 0.0
    for zc, za in zip(z_clean, z_adv):
        for i in range(5):
            com += 0.5 * np.sqrt(sum((zc[i, j] - za[i, j]) ** 2 for j in range(7)))
    con = sum(0.5 * np.sqrt(sum((h_clean[i, j] - h_adv[i, j]) ** 2 for j in range(4))) for i in range(5))
    t = lambda a: torch.as_tensor(a)  # noqa: E731
    assert gan.complementarity_loss([t(z) for z in z_clean], [t(z) for z in z_adv]).item() == pytest.approx(com)
    assert gan.consistency_loss(t(h_clean), t(h_adv)).item() == pytest.approx(con)
    # images are flattened per sample, and the norm is not squared
    d = torch.zeros(2, 1, 2, 2)
    d[0] = 3.0 / 2  # ||.||_2 = sqrt(4 * 2.25) = 3
    assert gan.perturbation_norm([d]).item() == pytest.approx(1.5)


def test_objective_selects_terms():
    model = tiny_model()
    views = [torch.rand(4, 1, 28, 28) for _ in range(2)]
    with protocols.frozen_target(model):
        a, b = model(views), model([v.flip(0) for v in views])
    assert set(gan.adversarial_terms(a, b, "both")) == {"adv_com", "adv_con"}
    assert set(gan.adversarial_terms(a, b, "com")) == {"adv_com"}
    assert set(gan.adversarial_terms(a, b, "con")) == {"adv_con"}


# --- the target stays untouched ----------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["paper", "strict"])
def test_attack_leaves_the_target_unchanged_and_trains_the_generator(protocol):
    model = tiny_model()
    model.train()  # the mode must come back as it was
    before = snapshot(model)
    views, _ = blob_views(20)
    views = to_tensors(views, "cpu")
    s = attack_settings.check_gan({"eps": 0.2, "epochs": 2, "batch_size": 10, "protocol": protocol})
    torch.manual_seed(s["seed"])
    fresh = gan.Perturber([(1, 28, 28)] * 2, 0.2, s["init_std"])
    perturber, history = gan.fit(model, views, s, progress=False)
    assert_same_state(model, before)
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    assert len(history) == 2 and {"g_total", "d_total", "perturbation", "adv_com", "adv_con", "seconds"} <= set(history[0])
    moved = [not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), perturber.state_dict().values())]
    assert any(moved), "white-box gradients must reach the generators"


def test_batch_mode_normalises_by_the_batch_and_restores_running_stats():
    model = tiny_model()
    x = [torch.rand(8, 1, 28, 28) for _ in range(2)]
    before = snapshot(model)
    with protocols.frozen_target(model, "eval"):
        eval_h = model(x).h
    with protocols.frozen_target(model, "batch"):
        batch_h = model(x).h
        half_h = model([v[:4] for v in x]).h
        assert not model.training
    assert not torch.allclose(eval_h, batch_h)  # batch statistics, not the running ones
    assert not torch.allclose(batch_h[:4], half_h)  # ... so the batch's composition matters
    assert_same_state(model, before)


# --- PGD ---------------------------------------------------------------------------------------------

def test_pgd_objectives_are_the_names_the_settings_accept():
    """The settings check PGD's objective by name without torch; each name must have its function."""
    assert tuple(pgd.OBJECTIVES) == attack_settings.PGD_OBJECTIVES


def test_pgd_increases_its_objective_within_ball_and_box():
    model = tiny_model()
    model.train()
    before = snapshot(model)
    views = [torch.rand(16, 1, 28, 28), torch.rand(16, 1, 28, 28).round()]
    eps = 0.1
    gen = torch.Generator().manual_seed(0)
    start = pgd.pgd(model, views, pgd.probs_kl, eps, step=0.02, steps=0, generator=gen)  # random start only
    gen = torch.Generator().manual_seed(0)
    adv = pgd.pgd(model, views, pgd.probs_kl, eps, step=0.02, steps=10, generator=gen)
    with torch.no_grad(), protocols.frozen_target(model):
        # KL at the start is at rounding level (a ratio would be noise); over seeds 0-4 the gap was 1.5e-5 to
        # 4.0e-4, positive on every seed (tests/outcomes.py, pgd-gain)
        assert pgd.probs_kl(model, views, adv) - 2 * pgd.probs_kl(model, views, start) > OUTCOMES["pgd-gain"].bound
        assert pgd.probs_sq(model, views, adv) > pgd.probs_sq(model, views, views)
    for x, a in zip(views, adv):
        assert (a - x).abs().max() <= eps + TOL and a.min() >= 0 and a.max() <= 1
        assert not a.requires_grad
    assert_same_state(model, before)
    assert model.training and all(p.grad is None for p in model.parameters())


def test_pgd_attacks_only_the_chosen_views_and_takes_any_objective():
    model = tiny_model()
    views = [torch.rand(6, 1, 28, 28) for _ in range(2)]

    def contrast(m, clean, adv):  # the objective AR-DMVC training will use
        return m.contrastive_loss(m(adv))

    adv = pgd.pgd(model, views, contrast, 0.05, 0.01, 3, views_to_attack=[1])
    assert torch.equal(adv[0], views[0]) and not torch.equal(adv[1], views[1])
    assert (adv[1] - views[1]).abs().max() <= 0.05 + TOL
    no_start = pgd.pgd(model, views, contrast, 0.05, 0.01, 0, random_start=False)
    assert all(torch.equal(a, x) for a, x in zip(no_start, views))
    model.train()  # keep_mode: the search runs in train mode (the public code's way), stats move
    before = snapshot(model)
    pgd.pgd(model, views, contrast, 0.05, 0.01, 2, keep_mode=True)
    assert model.training
    assert not torch.equal(model.state_dict()["head.hidden.2.running_mean"], before["head.hidden.2.running_mean"])


def test_pgd_with_frozen_parameters_finds_what_an_unfrozen_search_finds():
    """The search freezes the parameters (autograd then spends nothing on them); a plain search whose
    backward reaches the parameters too (as the public code's) takes the same steps in fp32."""
    model = tiny_model().train()
    reference = tiny_model().train()
    reference.load_state_dict(model.state_dict())
    views = [torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)]
    eps, step, steps = 0.1, 0.02, 4

    seen = []

    def contrast(m, clean, adv):
        seen.append(any(p.requires_grad for p in m.parameters()))
        return m.contrastive_loss(m(adv))

    model.head.out.weight.requires_grad_(False)  # a parameter frozen by its owner stays frozen
    adv = pgd.pgd(model, views, contrast, eps, step, steps, generator=torch.Generator().manual_seed(3),
                  keep_mode=True)
    assert seen == [False] * steps  # no parameter took part in the search's graph
    assert not model.head.out.weight.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if n != "head.out.weight")
    assert all(p.grad is None for p in model.parameters())

    gen = torch.Generator().manual_seed(3)
    ref = []
    for x in views:
        noise = torch.rand(x.shape, generator=gen)
        ref.append(torch.minimum(torch.maximum(x + (2 * noise - 1) * eps, (x - eps).clamp(0, 1)), (x + eps).clamp(0, 1)))
    for _ in range(steps):
        ref = [a.detach().requires_grad_(True) for a in ref]
        contrast(reference, views, ref).backward()
        ref = [torch.minimum(torch.maximum(a + step * a.grad.sign(), (x - eps).clamp(0, 1)), (x + eps).clamp(0, 1))
               for a, x in zip(ref, views)]
    assert seen[steps:] == [True] * steps and any(p.grad is not None for p in reference.parameters())  # the plain search did reach them
    for a, r in zip(adv, ref):
        torch.testing.assert_close(a, r.detach(), atol=1e-6, rtol=0)
    for (name, mine), theirs in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(mine, theirs, msg=name)  # the same BatchNorm statistics updates


@pytest.mark.parametrize("objective", ["kl", "sq"])
def test_pgd_scores_the_clean_views_once_per_search_in_eval_mode(objective):
    model = tiny_model()
    views = [torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)]
    calls = []
    model.register_forward_hook(lambda m, inputs, out: calls.append(1))
    chosen = pgd.OBJECTIVES[objective]
    adv = pgd.pgd(model, views, chosen, 0.1, 0.02, 5, generator=torch.Generator().manual_seed(1))
    assert len(calls) == 5 + 1  # five searched forwards, one clean
    calls.clear()
    # the same objective on a plain list recomputes the clean forward at every step: the same search
    again = pgd.pgd(model, views, lambda m, clean, a: chosen(m, list(clean), a), 0.1, 0.02, 5,
                    generator=torch.Generator().manual_seed(1))
    assert len(calls) == 2 * 5
    for a, b in zip(adv, again):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    calls.clear()
    model.train()  # in train mode every clean forward counts (it moves the BatchNorm statistics)
    pgd.pgd(model, views, chosen, 0.1, 0.02, 5, keep_mode=True)
    assert len(calls) == 2 * 5


# --- settings and protocols ----------------------------------------------------------------------

def test_settings_precedence_and_errors():
    cfg = {"attack": {"epochs": 7, "objectives": ["both", "com", "con"], "beta": 2.0},
           "datasets": {"noisyfashion": {"eps": 0.2}}}
    s = attack_settings.resolve_settings("gan", cfg, "noisyfashion", epochs=3)
    assert (s["epochs"], s["beta"], s["eps"], s["objective"]) == (3, 2.0, 0.2, "both")
    assert attack_settings.resolve_settings("pgd", cfg, "noisyfashion")["pgd_step"] == pytest.approx(2.5 * 0.2 / 20)
    # a dataset without a configured budget is an error naming the key, never the paper's value in silence
    with pytest.raises(ValueError, match=r"datasets\.noisymnist\.eps"):
        attack_settings.resolve_settings("gan", {}, "noisymnist")
    with pytest.raises(ValueError, match="objective"):
        attack_settings.resolve_settings("gan", cfg, "noisyfashion", objective="all")
    with pytest.raises(ValueError, match="do not apply"):
        attack_settings.resolve_settings("pgd", cfg, "noisyfashion", objective="com")


def test_protocol_splits():
    fit, score = protocols.split(10, "paper")
    assert np.array_equal(fit, score) and len(fit) == 10
    fit, score = protocols.split(11, "strict", 0.5, seed=3)
    assert len(np.intersect1d(fit, score)) == 0 and np.array_equal(np.sort(np.r_[fit, score]), np.arange(11))
    assert np.array_equal(protocols.split(11, "strict", 0.5, seed=3)[0], fit)  # seeded
    with pytest.raises(ValueError, match="heldout.*is now .strict"):
        protocols.split(11, "heldout")


def test_protocols_name_a_batchnorm_mode_and_old_settings_keep_what_they_were():
    assert protocols.batchnorm_of({"protocol": "paper"}) == "batch" and protocols.batchnorm_of({"protocol": "strict"}) == "eval"
    assert protocols.protocol_name({"protocol": "strict"}) == "strict" and protocols.protocol_name({}) == "paper"
    # files written before the protocols were named
    assert protocols.protocol_name({"protocol": "paper", "target_batchnorm": "batch"}) == "paper"
    assert protocols.protocol_name({"protocol": "heldout", "target_batchnorm": "eval"}) == "strict"
    assert protocols.protocol_name({"protocol": "paper", "target_batchnorm": "eval"}) == "paper-running-bn"  # old default
    assert protocols.protocol_name({"protocol": "heldout", "target_batchnorm": "batch"}) == "strict-batch-bn"


@pytest.mark.parametrize("key", ["protocol", "target_batchnorm"])
def test_config_sections_cannot_set_the_protocol(key):
    with pytest.raises(ValueError, match=f"attack.{key}. is no longer a setting.*evaluation.protocols"):
        attack_settings.resolve_settings("gan", {"attack": {key: "batch"}}, "noisymnist")
    assert attack_settings.resolve_settings("gan", {}, "noisymnist", protocol="strict", eps=0.3)["protocol"] == "strict"


# --- predictions under batch statistics -----------------------------------------------------------------

FITTED = {"multivae": {"hidden_dim": 16, "cont_dim": 4}, "sem": {"head_hidden": 16, "feature_dim": 16,
                                                               "high_feature_dim": 8, "kmeans_n_init": 3}}


@pytest.mark.parametrize("name", sorted(FITTED))
def test_fitted_clustering_is_fitted_once_on_the_whole_set_under_batch_statistics(name):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    torch.manual_seed(0)
    model = registry.build(name, [(1, 28, 28)] * 2, 3, encoder_width=4, **FITTED[name])
    views, _ = blob_views(60)
    views = to_tensors(views, "cpu")
    bs, n = 10, 60
    with protocols.frozen_target(model, "batch"):
        labels = protocols.predict(model, views, bs, seed=5).numpy()
        # independently: h of shuffled batches of 10 (the same seeded order), back in the set's order,
        # then one k-means over all 60 samples
        order = torch.randperm(n, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            h = torch.empty(n, model(views).h.shape[1])
            for i in range(0, n, bs):
                part = order[i:i + bs]
                h[part] = model([v[part] for v in views]).h
        single = KMeans(3, n_init=model.kmeans_n_init, random_state=model.kmeans_seed).fit(h.double().numpy()).labels_
        # the earlier way: the model's own predict on each batch, one k-means per batch of 10
        per_chunk = torch.cat([model.predict([v[order[i:i + bs]] for v in views]) for i in range(0, n, bs)])
        old = np.empty(n, dtype=np.int64)
        old[order.numpy()] = per_chunk.numpy()
    assert np.array_equal(labels, single)
    # cluster numbers of separate fits do not correspond across batches: the earlier way disagrees
    assert adjusted_rand_score(single, old) < 0.9


def test_batch_statistics_predictions_follow_the_shuffled_batches():
    model = tiny_model()
    views = [torch.rand(31, 1, 28, 28) for _ in range(2)]
    with protocols.frozen_target(model, "batch"):
        labels = protocols.predict(model, views, 10, seed=2)
        order = torch.randperm(31, generator=torch.Generator().manual_seed(2))
        expected = torch.empty(31, dtype=torch.long)
        # a last batch of one sample joins the one before (BatchNorm cannot normalise one sample)
        for part in (order[:10], order[10:20], order[20:]):
            expected[part] = model([v[part] for v in views]).probs.argmax(1)
    assert torch.equal(labels, expected)
    assert [s.stop - s.start for s in protocols.chunks(31, 10)] == [10, 10, 11]
    assert [s.stop - s.start for s in protocols.chunks(30, 10)] == [10, 10, 10]


# --- runner and CLI -------------------------------------------------------------------------------------

def test_collapse_record_counts_clusters_and_measures_the_perturbation():
    """Hand-made result: 4 samples of 2 pixels; every sample falls into cluster 1 under the attack.
    View 0 moves 3 of 8 pixels by the full eps 0.1 and one by 0.05; view 1 is unchanged."""
    clean = [np.zeros((4, 1, 1, 2), np.float32) + 0.5, np.full((4, 1, 1, 2), 0.5, np.float32)]
    delta = np.zeros((4, 1, 1, 2), np.float32)
    delta[0, 0, 0, 0], delta[1, 0, 0, 1], delta[2, 0, 0, 0], delta[3, 0, 0, 1] = 0.1, -0.1, 0.1, 0.05
    result = run.AttackResult("gan", {"eps": 0.1}, np.array([0, 1, 2, 0]), np.array([0, 1, 2, 0]),
                              np.array([1, 1, 1, 1]), [clean[0] + delta, clean[1]], clean,
                              np.arange(4), np.arange(4))
    rec = runs.collapse_record(result)
    assert rec["cluster_sizes"] == {"clean": [2, 1, 1], "attacked": [0, 4, 0]}
    assert rec["largest_cluster_share"] == {"clean": 0.5, "attacked": 1.0}
    per = rec["perturbation"]
    assert per["share_at_eps"] == [pytest.approx(3 / 8), 0.0]
    assert per["mean_abs"] == [pytest.approx(0.35 / 8, rel=1e-5), 0.0]
    assert per["l2_mean"] == [pytest.approx((0.1 * 3 + 0.05) / 4, rel=1e-5), 0.0]  # one moved pixel per sample
    assert per["l2_max"][0] == pytest.approx(0.1, rel=1e-5)
    embedding = run.AttackResult("embedding", {"bound": 0.1}, *list(vars(result).values())[2:9])
    assert "perturbation" not in runs.collapse_record(embedding)


@pytest.fixture
def tiny_files(tmp_path):
    views, labels = blob_views(60)
    idx = np.arange(60)
    data_path = tmp_path / "blobs.npz"
    save(data_path, MultiViewData(views, labels, idx[::2], idx[1::2], {"dataset": "blobs"}))
    model = tiny_model()
    ckpt = tmp_path / "model.pt"
    train.save_checkpoint(ckpt, model, {"model": "comvc", "settings": {"encoder_width": 4, "hidden": 16},
                                        "view_shapes": [[1, 28, 28]] * 2, "n_clusters": 3,
                                        "dataset": "blobs", "seed": 0})
    return data_path, ckpt, tmp_path


@pytest.mark.parametrize("attack", ["gan", "pgd"])
def test_cli_attack_writes_metrics_generator_and_figure(tiny_files, attack):
    data_path, ckpt, tmp = tiny_files
    out, fig, gen = tmp / "m.json", tmp / "ex.png", tmp / "g.pt"
    argv = ["attack", "--data", str(data_path), "--checkpoint", str(ckpt), "--out", str(out),
            "--attack", attack, "--eps", "0.25", "--protocol", "strict", "--examples-out", str(fig),
            "--device", "cpu"]
    if attack == "gan":
        argv += ["--epochs", "1", "--objective", "con", "--generator-out", str(gen)]
    assert cli.main(argv) == 0
    rec = json.loads(out.read_text())
    for key in ("clean", "attacked", "settings", "dataset", "model", "seed", "max_abs_perturbation",
                "min_value", "max_value", "seconds_per_epoch"):
        assert key in rec
    assert set(rec["clean"]) == set(rec["attacked"]) == {"acc", "nmi", "ari"}
    assert rec["settings"]["eps"] == 0.25 and rec["settings"]["protocol"] == rec["protocol"] == "strict"
    assert rec["n_eval"] == 15 and rec["dataset"] == "blobs"
    assert 0 < rec["max_abs_perturbation"] <= 0.25 + TOL
    assert 0 <= rec["min_value"] <= rec["max_value"] <= 1
    assert fig.stat().st_size > 0
    assert sum(rec["cluster_sizes"]["clean"]) == sum(rec["cluster_sizes"]["attacked"]) == rec["n_eval"]
    assert all(0 <= s <= 1 for s in rec["perturbation"]["share_at_eps"])
    if attack == "gan":
        assert rec["settings"]["objective"] == "con" and rec["settings"]["epochs"] == 1
        assert rec["n_fit"] == 15 and rec["seconds_per_epoch"] > 0
        perturber, meta = gan.load_perturber(gen)
        assert perturber.eps == 0.25 and meta["model"] == "comvc"


def test_cli_attack_missing_checkpoint_is_one_clear_error(tiny_files, capsys):
    data_path, _, tmp = tiny_files
    out = tmp / "m.json"
    assert cli.main(["attack", "--data", str(data_path), "--checkpoint", str(tmp / "none.pt"),
                     "--out", str(out), "--eps", "0.1"]) == 1
    assert "train it first" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_gan_attack_breaks_a_trained_comvc_on_demo():
    """The paper's attack (2 epochs, eps 0.3) costs the demo CoMVC (width 16) more than the bound of
    tests/outcomes.py's gan-drop (0.15) on the mean of attack seeds 0-2; over seeds 0-4 the drop was
    0.25-0.35 (benchmarks/outcome_margins.py, AMD EPYC), so the worst seed alone clears it by 0.09. Strict
    protocol (running statistics): under the paper's (batch statistics of each batch of 100) the near-uniform
    shifts this short attack learns are largely normalised away on the demo (0.88 -> 0.85)."""
    model = trained("comvc", 16, 0)
    before = snapshot(model)
    decide(OUTCOMES["gan-drop"])
    assert_same_state(model, before)
    assert all(gan_run(seed).summary()["max_abs_perturbation"] <= 0.3 + TOL for seed in (0, 1, 2))
