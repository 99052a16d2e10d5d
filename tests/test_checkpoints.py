"""Checkpoints written by earlier code keep loading and predicting what they predicted when written.

tests/fixtures/*-tiny.pt were trained for one epoch on blob data (a CoMVC, an AR-DMVC-AM and an ALRDC,
width 4) by the code of the commit named in checkpoints.json, which also holds the labels and cluster
probabilities each predicted then for a fixed probe set.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import blob_views
from robustmvc.protocols import clean_labels as predict
from robustmvc.train import load_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
RECORD = json.loads((FIXTURES / "checkpoints.json").read_text())


@pytest.mark.parametrize("name", sorted(RECORD["labels"]))
def test_old_checkpoint_predicts_as_when_written(name):
    probe, _ = blob_views(n=12, k=3, seed=1)
    model, meta = load_checkpoint(FIXTURES / name)
    assert meta["model"] == name.removesuffix("-tiny.pt")
    assert predict(model, probe).tolist() == RECORD["labels"][name]
    with torch.no_grad():
        probs = model([torch.as_tensor(v) for v in probe]).probs.numpy()
    np.testing.assert_allclose(probs, np.array(RECORD["probs"][name]), atol=1e-5)
