"""The epoch loop on toy steps whose terms are known: batches, means, hooks, the finite check."""
import math

import pytest
import torch

from robustmvc.loop import run_epochs


def recording_step(values, seen):
    """A step whose terms are the sum of the batch's `values` and the batch size; it records both."""
    def step(epoch, idx):
        seen.append((epoch, idx.tolist(), float(values[idx].sum())))
        return {"sum": values[idx].sum(), "size": len(idx)}
    return step


def test_history_holds_the_mean_of_each_term_per_epoch():
    values = torch.arange(10, dtype=torch.float32) ** 2
    seen = []
    history = run_epochs(recording_step(values, seen), 10, 4, 3, seed=1, device="cpu", label="toy", fix="",
                         progress=False)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    for epoch, record in enumerate(history):
        steps = [s for s in seen if s[0] == epoch]
        assert len(steps) == 2  # 10 // 4 full batches; the last two samples wait for another epoch
        positions = [p for _, idx, _ in steps for p in idx]
        assert len(set(positions)) == 8 and all(len(idx) == 4 for _, idx, _ in steps)
        assert record["sum"] == pytest.approx(sum(total for *_, total in steps) / 2, rel=1e-6)
        assert record["size"] == 4.0 and record["seconds"] >= 0
    # each epoch draws a new order from the seeded generator, so a rerun repeats it
    again = []
    run_epochs(recording_step(values, again), 10, 4, 3, seed=1, device="cpu", label="toy", fix="", progress=False)
    assert again == seen and len({tuple(idx) for _, idx, _ in seen}) > 2


def test_short_last_batch_and_fewer_samples_than_a_batch():
    values = torch.ones(10)
    seen = []
    history = run_epochs(recording_step(values, seen), 10, 4, 1, seed=0, device="cpu", label="toy", fix="",
                         progress=False, full_batches=False)
    assert sorted(len(idx) for _, idx, _ in seen) == [2, 4, 4]
    assert sorted(p for _, idx, _ in seen for p in idx) == list(range(10))
    assert history[0]["size"] == pytest.approx(10 / 3)
    seen.clear()
    run_epochs(recording_step(values, seen), 3, 4, 1, seed=0, device="cpu", label="toy", fix="", progress=False)
    assert [sorted(idx) for _, idx, _ in seen] == [[0, 1, 2]]  # one batch of every sample


def test_hooks_see_the_means_and_add_fields():
    ends = []

    def end(epoch, record):
        ends.append(dict(record))
        record["total"] = sum(record.values())

    history = run_epochs(lambda epoch, idx: {"a": torch.tensor(1.0), "b": 2.0 * (epoch + 1)}, 8, 4, 2, seed=0,
                         device="cpu", label="toy", fix="", progress=False,
                         start=lambda epoch: {"phase": "warm" if epoch == 0 else "main"}, end=end)
    assert ends == [{"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 4.0}]
    assert [list(r) for r in history] == [["a", "b", "total", "epoch", "phase", "seconds"]] * 2
    assert [(r["total"], r["phase"]) for r in history] == [(3.0, "warm"), (5.0, "main")]


def test_a_term_that_is_not_finite_is_named_with_its_epoch():
    calls = []

    def step(epoch, idx):
        calls.append(epoch)
        batch = calls.count(epoch) - 1
        # in the second epoch 'early' goes NaN in its first batch, 'late' inf in the batches after it:
        # the error names the term that went first, though both end up non-finite
        return {"late": torch.tensor(math.inf if epoch == 1 and batch > 0 else 1.0),
                "early": torch.tensor(math.nan if epoch == 1 and batch == 0 else 1.0)}

    with pytest.raises(FloatingPointError,
                       match=r"^attack toy: loss term 'early' became nan at epoch 2 \(main\); lower the lr$"):
        run_epochs(step, 12, 4, 3, seed=3, device="cpu", label="attack toy", fix="lower the lr", progress=False,
                   start=lambda epoch: {"phase": "main", "lr": 0.1})
    assert calls == [0, 0, 0, 1, 1, 1]  # stopped at the end of the epoch it appeared in


def test_one_host_device_read_per_epoch(monkeypatch):
    """The terms stay where the step left them: the loop copies them to the host once per epoch."""
    copies = []
    real_cpu = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: copies.append(1) or real_cpu(self, *a, **k))

    def no_read(self, *args):
        raise AssertionError("a step's term was read on the host")

    values = torch.rand(12)
    monkeypatch.setattr(torch.Tensor, "item", no_read)
    monkeypatch.setattr(torch.Tensor, "__float__", no_read)
    run_epochs(lambda epoch, idx: {"a": values[idx].sum(), "b": values[idx].max()}, 12, 4, 2, seed=0,
               device="cpu", label="toy", fix="", progress=False)
    assert len(copies) == 2
