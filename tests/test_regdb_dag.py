"""RegDB through the whole DAG. The real images are given only on request, so a small folder in their
layout (Visible/<id>/*.bmp, Thermal/<id>/*.bmp) stands in: data -> train -> the paper's attack -> Table 1.
The public code defines its attack networks for 28 x 28 views only. Their layer stack fits 128 x 64 as
well: the generator's convs (k3 s1, s2, s2) take 128 x 64 to 30 x 14 and its transposed convs (k3 s2, k3 s2,
k6 s1) back to 61 x 29, 123 x 59, 128 x 64, as they take 28 x 28 to 5 x 5 and back; the discriminator's
k4 s2 convs leave a 14 x 6 patch map instead of one score."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT, snakemake
from robustmvc.attacks import gan

N_IDS, PER_ID = 4, 8


def write_regdb(folder, seed=0):
    """Per identity a colour and a stripe period of its own (a pattern both modalities share, the thermal
    one in grey), plus per-image noise and a shift, saved as 100 x 40 BMPs that the reader resizes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = np.array([[230, 40, 40], [40, 200, 40], [40, 60, 230], [220, 200, 30]])
    for ident in range(N_IDS):
        for modality in ("Visible", "Thermal"):
            (folder / modality / str(ident + 1)).mkdir(parents=True)
        rows = np.arange(100)[:, None, None]
        for i in range(PER_ID):
            stripes = ((rows + rng.integers(0, 4)) // (3 + 3 * ident)) % 2
            visible = stripes * colours[ident] + (1 - stripes) * 20 + rng.normal(0, 12, (100, 40, 3))
            thermal = np.repeat(visible.mean(axis=2, keepdims=True), 3, axis=2) + rng.normal(0, 12, (100, 40, 3))
            for modality, image in (("Visible", visible), ("Thermal", thermal)):
                Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
                    folder / modality / str(ident + 1) / f"{modality[0]}_{i}.bmp")


def test_attack_networks_take_regdb_views():
    shape = (3, 128, 64)
    perturber = gan.Perturber([shape, shape], eps=0.15)
    views = [torch.rand(5, *shape), torch.rand(5, *shape)]
    adv, deltas = perturber(views)
    assert [a.shape for a in adv] == [d.shape for d in deltas] == [torch.Size([5, *shape])] * 2
    assert all(d.abs().max() <= 0.15 + 1e-6 for d in deltas)
    scores = gan.Discriminator(shape)(adv[0])
    assert scores.shape[0] == 5 and ((scores >= 0) & (scores <= 1)).all()


@pytest.mark.slow
def test_regdb_runs_data_train_attack_table1(tmp_path):
    write_regdb(tmp_path / "regdb")
    cfg = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    cfg.update(
        results_dir=str(tmp_path / "results"), report_dir=str(tmp_path / "reports"),
        datasets={"regdb": {"dir": str(tmp_path / "regdb"), "n_identities": N_IDS, "eps": 0.15}},
        models={"comvc": cfg["models"]["comvc"]},
        training=dict(cfg["training"], epochs=2, batch_size=8),
        architecture={"encoder_width": 4},
        attack=dict(cfg["attack"], epochs=1, batch_size=8, objectives=["both"], pgd=False, blackbox_models=[],
                    embedding_models=[]),
        evaluation=dict(cfg["evaluation"], eps_sweep={}, tsne_models=[]),
    )
    for key in ("sensitivity", "transfer", "detection"):
        cfg.pop(key, None)
    config = tmp_path / "regdb.yaml"
    config.write_text(yaml.safe_dump(cfg))
    results = tmp_path / "results"
    run = snakemake(str(results / "metrics" / "all.csv"), "--cores", "2", "--configfile", str(config))
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]

    npz = np.load(results / "data" / "regdb.npz")
    views = [npz[k] for k in sorted(npz.files) if k.startswith("view")]
    assert [v.shape[1:] for v in views] == [(3, 128, 64)] * 2 and len(views[0]) == N_IDS * PER_ID
    attacked = json.loads((results / "metrics" / "regdb" / "comvc" / "gan-both" / "paper" / "seed0.json").read_text())
    assert attacked["n_eval"] == N_IDS * PER_ID // 2
    table = pd.read_csv(results / "metrics" / "all.csv")
    rows = table[(table.dataset == "regdb") & (table.model == "comvc")]
    assert set(rows.attack) >= {"none", "gan-both"}
    assert rows[["acc", "nmi", "ari"]].notna().all().all()
    assert (tmp_path / "reports" / "06_evaluate" / "evaluate.html").read_text().lower().count("regdb") > 0
