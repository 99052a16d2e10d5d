"""The dataset file contract: `{name}.npz` (views, labels, split indices) plus a JSON sidecar."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robustmvc.files import atomic_path, read_json, write_json


@dataclass
class MultiViewData:
    views: list[np.ndarray]
    labels: np.ndarray
    train_idx: np.ndarray
    eval_idx: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return int(len(np.unique(self.labels)))

    @property
    def view_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(v.shape[1:]) for v in self.views]

    def part(self, which: str) -> tuple[list[np.ndarray], np.ndarray]:
        idx = {"train": self.train_idx, "eval": self.eval_idx, "all": np.arange(len(self.labels))}[which]
        return [v[idx] for v in self.views], self.labels[idx]


def sidecar(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save(path: str | Path, data: MultiViewData) -> None:
    arrays = {f"view_{i}": v.astype(np.float32) for i, v in enumerate(data.views)}
    arrays.update(labels=data.labels.astype(np.int64), train_idx=data.train_idx, eval_idx=data.eval_idx)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    meta = dict(data.meta, n_samples=int(len(data.labels)), n_clusters=data.n_clusters,
                view_shapes=[list(s) for s in data.view_shapes],
                n_train=int(len(data.train_idx)), n_eval=int(len(data.eval_idx)))
    write_json(sidecar(path), meta)


def load(path: str | Path) -> MultiViewData:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {path} does not exist; build it first with "
                                f"`python -m robustmvc data build DATASET --out {path}`.")
    with np.load(path) as npz:
        n_views = sum(1 for k in npz.files if k.startswith("view_"))
        if n_views == 0 or "labels" not in npz.files:
            raise ValueError(f"{path} is not a robustmvc dataset (needs view_0.. and labels); rebuild it.")
        views = [npz[f"view_{i}"] for i in range(n_views)]
        labels, train_idx, eval_idx = npz["labels"], npz["train_idx"], npz["eval_idx"]
    for i, v in enumerate(views):
        if v.ndim != 4 or len(v) != len(labels):
            raise ValueError(f"{path}: view_{i} has shape {v.shape}, expected (N={len(labels)}, C, H, W); rebuild it.")
    meta = read_json(sidecar(path)) if sidecar(path).is_file() else {}
    return MultiViewData(views, labels, train_idx, eval_idx, meta)
