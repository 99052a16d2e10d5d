"""Multi-view datasets, built the way the paper's code builds them (docs/ARCHITECTURE.md, section 2).

Pixels are first put on the [-1, 1] scale (the reference pipeline normalises with mean 0.5 and
std 0.5), noise is added on that scale, and every view is finally min-max normalised to [0, 1]
over the whole array.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from robustmvc.data.idx import read_idx
from robustmvc.data.sources import FILES, locate

log = logging.getLogger(__name__)

PAPER_SEED = 7  # the reference code's seed for view-2 pairing and for the train/eval shuffle


def minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        raise ValueError("cannot min-max normalise a constant view")
    return ((x - lo) / (hi - lo)).astype(np.float32)


def to_signed(images_uint8: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) on [-1, 1]."""
    return (images_uint8.astype(np.float32)[:, None] / 255.0 - 0.5) / 0.5


def load_mnist_family(kind: str, raw_dir=None, cache_dir="results/raw", download=True):
    """Train and test IDX files concatenated (the paper uses all 70,000 samples)."""
    directory, sums = locate(kind, raw_dir, cache_dir, download)
    arrays = {name: read_idx(directory / name) for name in FILES}
    for name, array in arrays.items():
        want = 3 if "images" in name else 1
        if array.ndim != want:
            raise ValueError(f"{directory / name} holds a {array.ndim}-d array, an {'image' if want == 3 else 'label'} "
                             f"file holds a {want}-d one; the files are swapped or misnamed: rename them.")
    images = np.concatenate([arrays[FILES[0]], arrays[FILES[2]]])
    labels = np.concatenate([arrays[FILES[1]], arrays[FILES[3]]]).astype(np.int64)
    if len(arrays[FILES[0]]) != len(arrays[FILES[1]]) or len(arrays[FILES[2]]) != len(arrays[FILES[3]]):
        raise ValueError(f"{directory}: images {images.shape} and labels {labels.shape} do not match; "
                         "the four files must come from the same dataset.")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{directory}: labels run from {labels.min()} to {labels.max()}, the MNIST family has "
                         "classes 0..9; the label files are corrupt: re-download them.")
    sources = {str(directory / name): digest for name, digest in sums.items()}
    return images, labels, sources


def same_class_partners(labels: np.ndarray, rng: np.random.Generator, pairing: str = "derangement") -> np.ndarray:
    """Index of the view-2 partner of every sample: a random sample of the same class.

    `paper`: a per-class random permutation, exactly as the reference code draws it; a permutation
    has fixed points, so about one sample per class is paired with itself. `derangement` (default):
    the same permutation with each fixed point swapped with the next position of its class, so that
    view 2 is always a *different* image; all other pairs are left as the paper draws them.
    """
    partner = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        idx = np.nonzero(labels == label)[0]
        perm = rng.permutation(idx)
        if pairing == "derangement" and len(idx) > 1:
            for pos in np.nonzero(perm == idx)[0]:
                if perm[pos] != idx[pos]:  # already resolved by the previous swap
                    continue
                other = (pos + 1) % len(idx)
                perm[pos], perm[other] = perm[other], perm[pos]
        elif pairing not in ("paper", "derangement"):
            raise ValueError(f"pairing must be 'paper' or 'derangement', got {pairing!r}")
        partner[idx] = perm
    return partner


def noisy_views(signed: np.ndarray, labels: np.ndarray, n_views: int = 2, noise_std: float = 0.2,
                pairing: str = "derangement", seed: int = PAPER_SEED) -> tuple[list[np.ndarray], np.ndarray]:
    """View 1 = the image; each further view = another image of the same class plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    views = [minmax(signed)]
    partners = []
    for _ in range(n_views - 1):
        partner = same_class_partners(labels, rng, pairing)
        noisy = signed[partner] + rng.normal(0.0, noise_std, size=signed.shape)
        views.append(minmax(noisy))
        partners.append(partner)
    return views, np.stack(partners)


def patched_views(signed: np.ndarray, upscale: int = 4) -> list[np.ndarray]:
    """Upscale each image, cut a grid of patches of the original size, drop the four corners."""
    from skimage.transform import resize

    n, c, h, w = signed.shape
    big = np.empty((n, c, upscale * h, upscale * w), dtype=np.float64)
    for i, img in enumerate(signed):
        big[i, 0] = resize(img[0].astype(np.float64), (upscale * h, upscale * w))
    corners = {(0, 0), (0, upscale - 1), (upscale - 1, 0), (upscale - 1, upscale - 1)}
    views = []
    for i in range(upscale):
        for j in range(upscale):
            if (i, j) in corners:
                continue
            views.append(minmax(big[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w]))
    return views


def digits_signed() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's embedded 8x8 digits, upscaled to 28x28 so the paper's encoder applies unchanged."""
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    big = torch.nn.functional.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False)
    return (big.clamp(0, 1).numpy() - 0.5) / 0.5, digits.target.astype(np.int64)


def regdb_views(folder: str | Path, n_identities: int, size=(128, 64)) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """Visible/thermal pairs: the i-th visible image of an identity with its i-th thermal image."""
    from PIL import Image

    folder = Path(folder)
    vis_root, th_root = folder / "Visible", folder / "Thermal"
    if not vis_root.is_dir() or not th_root.is_dir():
        raise FileNotFoundError(
            f"RegDB not found in {folder}: expected sub-folders Visible/<id>/*.bmp and Thermal/<id>/*.bmp. "
            "RegDB is given on request by its authors; unpack it there and set `datasets.regdb.dir`.")
    ids = sorted((p.name for p in vis_root.iterdir() if p.is_dir()), key=lambda s: (len(s), s))
    if len(ids) < n_identities:
        raise ValueError(f"RegDB in {folder} has {len(ids)} identities, the config asks for {n_identities}; "
                         "lower `datasets.regdb.n_identities`.")
    vis, thermal, labels = [], [], []
    for label, ident in enumerate(ids[:n_identities]):
        v_files = sorted((vis_root / ident).glob("*.bmp"))
        t_files = sorted((th_root / ident).glob("*.bmp"))
        if not t_files:
            raise FileNotFoundError(f"RegDB identity {ident} has no thermal images in {th_root / ident}")
        for fv, ft in zip(v_files, t_files):
            for files, out in ((fv, vis), (ft, thermal)):
                img = Image.open(files).convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
                out.append(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0)
            labels.append(label)
    views = [minmax(np.stack(vis)), minmax(np.stack(thermal))]
    return views, np.array(labels, dtype=np.int64), {"folder": str(folder), "identities": ids[:n_identities]}
