"""The dataset file contract: `{name}.npz` (views, labels, split indices) plus a JSON sidecar."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robustmvc.files import atomic_path, read_json, together, write_json


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


def _meta(data: MultiViewData) -> dict:
    return dict(data.meta, n_samples=int(len(data.labels)), n_clusters=data.n_clusters,
                view_shapes=[list(s) for s in data.view_shapes],
                n_train=int(len(data.train_idx)), n_eval=int(len(data.eval_idx)))


def save(path: str | Path, data: MultiViewData) -> None:
    """The `.npz` carries its meta (`meta_json`), so it cannot be separated from the dataset's name and
    settings; the sidecar is a readable copy. Both appear together, the `.npz` last."""
    meta = _meta(data)
    arrays = {f"view_{i}": v.astype(np.float32) for i, v in enumerate(data.views)}
    arrays.update(labels=data.labels.astype(np.int64), train_idx=data.train_idx.astype(np.int64),
                  eval_idx=data.eval_idx.astype(np.int64), meta_json=np.array(json.dumps(meta)))
    with together():
        write_json(sidecar(path), meta)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)


def dataset_name(path: str | Path) -> str | None:
    """The name of the dataset in a dataset file, read without loading its views (the commands resolve the
    settings of a run from it before the run loads the file)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "meta_json" in npz.files:
                return json.loads(str(npz["meta_json"])).get("dataset")
    except Exception:  # a missing or damaged file: `load` says what is wrong with it
        pass
    return load(path).meta.get("dataset")


def load(path: str | Path) -> MultiViewData:
    """Read a dataset file and check it: its keys, dtypes, shapes, finite pixels in [0, 1], labels
    0..K-1 with K >= 2 classes, disjoint non-empty split indices, and its meta (inside the file, or the
    sidecar of files written before the meta moved inside)."""
    path = Path(path)
    rebuild = f"rebuild it with `python -m robustmvc data build DATASET --out {path}`"
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {path} does not exist; build it first with "
                                f"`python -m robustmvc data build DATASET --out {path}`.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as err:  # numpy raises many kinds for a damaged file
        raise ValueError(f"{path} is not a readable .npz dataset ({type(err).__name__}: the file is empty, "
                         f"truncated or corrupt); {rebuild}") from None
    n_views = sum(1 for k in arrays if k.startswith("view_"))
    missing = [k for k in [f"view_{i}" for i in range(max(n_views, 1))] + ["labels", "train_idx", "eval_idx"]
               if k not in arrays]
    if missing:
        raise ValueError(f"{path} is not a robustmvc dataset (missing {', '.join(missing)}); {rebuild}")
    views = [arrays[f"view_{i}"] for i in range(n_views)]
    labels, train_idx, eval_idx = arrays["labels"], arrays["train_idx"], arrays["eval_idx"]
    n = len(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: labels must be a 1-d integer array, got {labels.dtype} {labels.shape}; {rebuild}")
    for i, v in enumerate(views):
        if v.ndim != 4 or len(v) != n or v.dtype.kind != "f":
            raise ValueError(f"{path}: view_{i} is {v.dtype} {v.shape}, expected floats (N={n}, C, H, W); {rebuild}")
        if not np.isfinite(v).all():
            raise ValueError(f"{path}: view_{i} holds NaN or infinite pixels; {rebuild}")
        if v.min() < 0 or v.max() > 1:
            raise ValueError(f"{path}: view_{i} has pixels in [{v.min():g}, {v.max():g}], expected [0, 1]; {rebuild}")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"{path} has a single class; clustering needs at least 2, {rebuild} from more data")
    if classes[0] != 0 or classes[-1] != len(classes) - 1:
        raise ValueError(f"{path}: labels must be 0..K-1 with every class present, got {len(classes)} classes "
                         f"from {classes[0]} to {classes[-1]}; {rebuild}")
    for name, idx in (("train_idx", train_idx), ("eval_idx", eval_idx)):
        if idx.ndim != 1 or idx.dtype.kind not in "iu" or len(idx) == 0 or idx.min() < 0 or idx.max() >= n \
                or len(np.unique(idx)) != len(idx):
            raise ValueError(f"{path}: {name} must be distinct sample indices in 0..{n - 1}; {rebuild}")
    if np.intersect1d(train_idx, eval_idx).size:
        raise ValueError(f"{path}: train_idx and eval_idx overlap; {rebuild}")
    if "meta_json" in arrays:
        meta = json.loads(str(arrays["meta_json"]))
    elif sidecar(path).is_file():
        meta = read_json(sidecar(path))
    else:
        raise ValueError(f"{path} has no sidecar {sidecar(path)}, so its dataset name and settings are unknown; "
                         f"{rebuild}")
    if meta.get("n_clusters") not in (None, len(classes)):
        raise ValueError(f"{path} has {len(classes)} classes, its meta says {meta['n_clusters']}; {rebuild}")
    return MultiViewData(views, labels, train_idx, eval_idx, meta)
