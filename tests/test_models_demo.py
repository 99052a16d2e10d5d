"""Every baseline learns something on the demo data with the demo config's settings (slow: ~2-3 min on 2 cores)."""
from __future__ import annotations

from pathlib import Path

import pytest

from robustmvc import config, data, models, train
from robustmvc.evaluate import evaluate

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"
BASELINES = ["eamc", "simvc", "comvc", "multivae", "aecoddc", "infoddc", "sem"]
MAX_EPOCHS, MAX_PRETRAIN = 8, 3  # fewer than the demo DAG trains, to keep this file within minutes


@pytest.fixture(scope="module")
def demo():
    return data.build("demo")


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_beats_chance_on_demo_digits(name, demo):
    cfg = config.load(DEMO)
    assert name in cfg["models"], f"config/demo.yaml has no entry for {name}"
    settings, tcfg = config.resolve(cfg, name, "demo")
    tcfg.update(seed=0, epochs=min(int(tcfg["epochs"]), MAX_EPOCHS),
                pretrain_epochs=min(int(tcfg.get("pretrain_epochs") or 0), MAX_PRETRAIN))
    train.seed_everything(0)
    model = models.build(name, demo.view_shapes, demo.n_clusters, **settings)
    history = train.train(model, demo.part("train")[0], tcfg, name=name, device=train.resolve_device("cpu"),
                          progress=False)
    assert len(history) == tcfg["epochs"] + (tcfg["pretrain_epochs"] if hasattr(model, "pretrain_loss") else 0)
    scores = evaluate(model, *demo.part("eval"))
    assert scores["acc"] > 0.2, scores  # 10 classes: chance is ~0.1
