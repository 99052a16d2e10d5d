"""Building the paper's multi-view datasets and reading them back."""
from __future__ import annotations

import logging

import numpy as np

from robustmvc.data import builders
from robustmvc.data.store import MultiViewData, dataset_name, load, save

log = logging.getLogger(__name__)

DATASETS = ("noisymnist", "noisyfashion", "patchedmnist", "regdb", "demo", "demo3")
MIN_SAMPLES = 10  # the smallest subset a build keeps (the schema's `max_samples` minimum too)


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of n samples whose class proportions follow the whole set's."""
    from sklearn.model_selection import train_test_split

    if n >= len(labels):
        return np.arange(len(labels))
    keep, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels, random_state=seed)
    return np.sort(keep)


def paper_split(n: int, seed: int = builders.PAPER_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The reference protocol: shuffle, first half trains the model, second half is attacked and scored."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def build(name: str, raw_dir=None, max_samples: int | None = None, seed: int = builders.PAPER_SEED,
          views: list[int] | None = None, cache_dir="results/raw", pairing: str = "derangement",
          n_identities: int = 206, download: bool = True) -> MultiViewData:
    """Build a dataset in full as the paper does, then (optionally) keep a stratified subset.

    Building in full first keeps every sample's views identical to the full-scale dataset's.
    """
    if max_samples is not None and max_samples < MIN_SAMPLES:
        raise ValueError(f"max_samples must be at least {MIN_SAMPLES} (or null for every sample), got {max_samples}")
    meta: dict = {"dataset": name, "seed": seed}
    if name in ("noisymnist", "noisyfashion"):
        images, labels, sources = builders.load_mnist_family(
            "mnist" if name == "noisymnist" else "fashion", raw_dir, cache_dir, download)
        all_views, partners = builders.noisy_views(builders.to_signed(images), labels, pairing=pairing)
        meta.update(sources=sources, pairing=pairing, noise_std=0.2)
    elif name == "patchedmnist":
        images, labels, sources = builders.load_mnist_family("mnist", raw_dir, cache_dir, download)
        mask = np.isin(labels, (0, 1, 2))
        images, labels = images[mask], labels[mask]
        all_views = builders.patched_views(builders.to_signed(images))
        views = [0, 1, 3] if views is None else views
        meta.update(sources=sources, all_views=len(all_views))
    elif name in ("demo", "demo3"):
        signed, labels = builders.digits_signed()
        all_views, partners = builders.noisy_views(signed, labels, n_views=2 if name == "demo" else 3,
                                                   pairing=pairing)
        meta.update(sources={"sklearn.datasets.load_digits": "embedded"}, pairing=pairing, noise_std=0.2)
    elif name == "regdb":
        if not raw_dir:
            raise FileNotFoundError("RegDB needs the folder you were given by its authors: set "
                                    "`datasets.regdb.dir` in the config (or pass --raw-dir).")
        all_views, labels, info = builders.regdb_views(raw_dir, n_identities)
        meta.update(sources=info)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")

    if views is not None:
        bad = [v for v in views if not 0 <= v < len(all_views)]
        if bad:
            raise ValueError(f"{name} has views 0..{len(all_views) - 1}; the config asks for {bad}")
        all_views = [all_views[v] for v in views]
        meta["views"] = list(views)

    keep = stratified_subset(labels, max_samples, seed) if max_samples else np.arange(len(labels))
    if max_samples:
        meta["max_samples"] = int(max_samples)
    train_idx, eval_idx = paper_split(len(keep), seed)
    log.info("%s: %d samples, %d views %s, %d clusters", name, len(keep), len(all_views),
             all_views[0].shape[1:], len(np.unique(labels)))
    return MultiViewData([v[keep] for v in all_views], labels[keep], train_idx, eval_idx, meta)


__all__ = ["DATASETS", "MIN_SAMPLES", "MultiViewData", "build", "dataset_name", "load", "save", "paper_split", "stratified_subset"]
