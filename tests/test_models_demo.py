"""Every baseline learns something on the demo data: read from the demo DAG the end-to-end tests run
once (tests/demo-fast.yaml's epochs), so no model is trained twice."""
from __future__ import annotations

import pytest
import torch

from robustmvc.files import read_json

pytestmark = pytest.mark.slow

BASELINES = ["eamc", "simvc", "comvc", "multivae", "aecoddc", "infoddc", "sem"]


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_beats_chance_on_demo_digits(name, demo_run):
    results, _ = demo_run
    scores = read_json(results / "metrics" / "demo" / name / "clean" / "seed0.json")["clean"]
    assert scores["acc"] > 0.2, scores  # 10 classes: chance is ~0.1
    meta = torch.load(results / "models" / "demo" / name / "seed0.pt", weights_only=True)["meta"]
    pretrain = int(meta["train"].get("pretrain_epochs") or 0) if name in ("aecoddc", "infoddc", "sem") else 0
    assert len(meta["history"]) == int(meta["train"]["epochs"]) + pretrain
