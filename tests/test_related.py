"""Anomaly detectors and transfer attacks (the related systems' evaluation pieces)."""
import numpy as np
import pytest
import torch

from robustmvc import protocols
from robustmvc import detect, registry
from robustmvc.attacks import gan, transfer
from robustmvc.runs import detect_files, load_attacker, save_attacker
from robustmvc.attacks.embedding import EmbeddingPerturber


@pytest.fixture(scope="module")
def demo_parts(demo_data):
    train_views, _ = demo_data.part("train")
    eval_views, eval_labels = demo_data.part("eval")
    return train_views, eval_views, eval_labels


@pytest.fixture(scope="module")
def small_model(demo_data):
    torch.manual_seed(0)
    return registry.build("comvc", demo_data.view_shapes, demo_data.n_clusters, encoder_width=4).eval()


def test_detectors_are_at_chance_on_clean_against_clean(demo_parts, small_model):
    """Two halves of the clean eval set come from one distribution: no detector can tell them apart."""
    train_views, eval_views, _ = demo_parts
    half = len(eval_views[0]) // 2
    first = [v[:half] for v in eval_views]
    second = [v[half:] for v in eval_views]
    aucs = detect.detection_aucs(small_model, train_views, first, attacked_views=second)
    assert set(aucs) == set(detect.DETECTORS)
    for kind, value in aucs.items():
        assert abs(value - 0.5) < 0.08, (kind, value)


def test_detectors_see_gross_noise(demo_parts, small_model):
    train_views, eval_views, _ = demo_parts
    rng = np.random.default_rng(0)
    noisy = [np.clip(v + rng.uniform(-0.5, 0.5, v.shape), 0, 1).astype(np.float32) for v in eval_views]
    aucs = detect.detection_aucs(small_model, train_views, eval_views, attacked_views=noisy)
    assert aucs["pca-input"] > 0.95


def test_auc_matches_its_definition():
    """AUC = P(score of an attacked sample > score of a clean one), counted over all pairs."""
    rng = np.random.default_rng(1)
    clean, attacked = rng.normal(size=(40, 3)), rng.normal(0.7, 1, size=(30, 3))
    scorer = lambda f: f.sum(1)  # noqa: E731
    pairs = (scorer(attacked)[:, None] > scorer(clean)[None, :]).mean()
    assert detect.auc(scorer, clean, attacked) == pytest.approx(pairs)


def test_embedding_attack_leaves_input_detectors_without_input(demo_parts, small_model):
    train_views, eval_views, _ = demo_parts
    h = detect.representation(small_model, eval_views)
    aucs = detect.detection_aucs(small_model, train_views, eval_views, attacked_h=h)
    assert aucs["pca-input"] is None and abs(aucs["iforest-h"] - 0.5) < 1e-9  # identical sets
    with pytest.raises(ValueError, match="unknown detector"):
        detect.space("kmeans")


def test_transfer_applies_each_surrogate_generator_unchanged(demo_data):
    views, labels = demo_data.part("eval")
    x = [torch.as_tensor(v) for v in views]
    torch.manual_seed(0)
    targets = {name: registry.build("comvc", demo_data.view_shapes, demo_data.n_clusters, encoder_width=4).eval()
               for name in ("a", "b", "c")}
    perturbers = {name: gan.Perturber(demo_data.view_shapes, 0.3, init_std=None).eval() for name in ("a", "b")}
    before = {n: {k: v.clone() for k, v in p.state_dict().items()} for n, p in perturbers.items()}
    calls = {n: 0 for n in perturbers}
    for name, p in perturbers.items():
        original = p.perturb

        def counted(v, _orig=original, _name=name):
            calls[_name] += 1
            return _orig(v)
        p.perturb = counted
    table = transfer.transfer_scores(perturbers, targets, x, labels, protocol="strict")
    assert len(table) == 6 and set(table["surrogate"]) == {"a", "b"} and set(table["target"]) == {"a", "b", "c"}
    assert calls == {"a": 1, "b": 1}  # one perturbation per surrogate, shared by every target
    for name, p in perturbers.items():
        for key, value in p.state_dict().items():
            assert torch.equal(value, before[name][key])
    from robustmvc.metrics import clustering_scores

    with torch.no_grad():
        adv = gan.Perturber.perturb(perturbers["b"], x)
        expected = clustering_scores(labels, targets["c"].predict(adv).numpy())["acc"]
    row = table[(table.surrogate == "b") & (table.target == "c")].iloc[0]
    assert row["post_acc"] == pytest.approx(expected) and row["protocol"] == "strict"
    # the paper protocol scores the targets on batch statistics of shuffled batches, as its attack does
    paper = transfer.transfer_scores(perturbers, targets, x, labels, protocol="paper", batch_size=100,
                                     scored={"b": np.arange(0, len(labels), 2)})
    half = [v[::2] for v in x]
    with torch.no_grad(), protocols.frozen_target(targets["c"], "batch"):
        expected = clustering_scores(labels[::2], protocols.predict(targets["c"], gan.Perturber.perturb(perturbers["b"], half),
                                                             100, 1).numpy())["acc"]
    row = paper[(paper.surrogate == "b") & (paper.target == "c")].iloc[0]
    assert row["post_acc"] == pytest.approx(expected) and row["n_eval"] == len(half[0])


def test_detect_files_and_attacker_round_trip(tmp_path, demo_data):
    from robustmvc import data, train

    path = tmp_path / "demo.npz"
    data.save(path, demo_data)
    torch.manual_seed(0)
    model = registry.build("comvc", demo_data.view_shapes, demo_data.n_clusters, encoder_width=4)
    ckpt = tmp_path / "m.pt"
    train.save_checkpoint(ckpt, model, {"model": "comvc", "settings": {"encoder_width": 4},
                                        "view_shapes": demo_data.view_shapes, "n_clusters": demo_data.n_clusters,
                                        "dataset": "demo", "seed": 0})
    gen = tmp_path / "g.pt"
    save_attacker(gen, "blackbox", gan.Perturber(demo_data.view_shapes, 0.3, init_std=None),
                  {"dataset": "demo", "model": "comvc", "seed": 0})
    _, meta = load_attacker(gen)
    assert meta["attack"] == "blackbox"
    rec = detect_files(path, ckpt, gen, tmp_path / "d.json", detectors=["pca-input"])
    assert rec["attack"] == "blackbox" and 0.0 <= rec["auc"]["pca-input"] <= 1.0
    emb = tmp_path / "e.pt"
    save_attacker(emb, "embedding", EmbeddingPerturber(100, 0.2), {"dataset": "demo", "model": "simvc", "seed": 0})
    assert load_attacker(emb)[1]["attack"] == "embedding"
    with pytest.raises(ValueError, match="not comvc"):
        detect_files(path, ckpt, emb, tmp_path / "d2.json")


def test_embedding_figure_draws_when_every_shift_sits_on_the_bound(tmp_path):
    """The perturber usually saturates its bound, so every sample has the same relative shift."""
    import types

    from robustmvc import plots

    h = np.random.default_rng(0).random((30, 8))
    result = types.SimpleNamespace(labels=np.arange(30) % 3, pred_clean=np.arange(30) % 3,
                                   pred_adv=(np.arange(30) + 1) % 3, h_clean=h, h_adv=h * 1.5)
    plots.embedding_shift(result, tmp_path / "shift.png")
    assert (tmp_path / "shift.png").stat().st_size > 5_000
