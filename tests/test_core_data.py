import gzip
import logging

import numpy as np
import pytest
import torch

from robustmvc import data
from robustmvc.data import builders, sources
from robustmvc.data.idx import read_idx, write_idx


@pytest.mark.parametrize("name", ["x.idx", "x.gz"])
def test_idx_round_trip(tmp_path, name):
    arr = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / name, arr)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.uint8 and np.array_equal(back, arr)
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "l.gz", labels)
    assert np.array_equal(read_idx(tmp_path / "l.gz"), labels)


def test_idx_header_is_the_mnist_layout(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((3, 2, 4), np.uint8))
    raw = gzip.open(tmp_path / "x.gz").read()
    assert raw[:4] == bytes([0, 0, 8, 3])  # magic 2051 for images
    assert int.from_bytes(raw[4:8], "big") == 3 and int.from_bytes(raw[8:12], "big") == 2


def test_idx_rejects_corrupt_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "x", np.zeros((4, 3), np.uint8))
    (tmp_path / "y").write_bytes((tmp_path / "x").read_bytes()[:-2])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "y")


def _fake_raw(directory, n=60, k=3, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    labels = np.tile(np.arange(k, dtype=np.uint8), n // k)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    half = n // 2
    write_idx(directory / "train-images-idx3-ubyte.gz", images[:half])
    write_idx(directory / "train-labels-idx1-ubyte.gz", labels[:half])
    write_idx(directory / "t10k-images-idx3-ubyte.gz", images[half:])
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", labels[half:])
    return images, labels


def test_sha256_mismatch_raises_a_clear_error(tmp_path):
    f = tmp_path / "train-images-idx3-ubyte.gz"
    f.write_bytes(b"not the real file")
    with pytest.raises(sources.ChecksumError, match="delete it and run again"):
        sources.verify(f, sources.RAW["mnist"], f.name)


def test_recompressed_official_fashion_is_recognised_without_a_warning(tmp_path, caplog):
    """Debian's .gz files differ from the published ones byte for byte; their decompressed bytes are the
    official IDX files. A copy recompressed once more (other gzip bytes again) must pass as well."""
    import gzip

    from conftest import FASHION_SYSTEM

    if not (FASHION_SYSTEM / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"{FASHION_SYSTEM} not present (Debian's dataset-fashion-mnist)")
    spec = sources.RAW["fashion"]
    for name in sources.FILES:
        raw = gzip.decompress((FASHION_SYSTEM / name).read_bytes())
        (tmp_path / name).write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
        assert sources.sha256(tmp_path / name) != spec.sha256[name]
        sources.verify(tmp_path / name, spec, name)
    with caplog.at_level(logging.WARNING):
        directory, _ = sources.locate("fashion", raw_dir=tmp_path, cache_dir=tmp_path / "cache", download=False)
    assert directory == tmp_path and "differs from the official" not in caplog.text
    # one changed label in the decompressed bytes is no longer the official file
    name = "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress((FASHION_SYSTEM / name).read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10
    (tmp_path / name).write_bytes(gzip.compress(bytes(raw)))
    assert not sources.is_official(tmp_path / name, spec, name)


def test_corrupt_cached_download_is_an_error(tmp_path):
    _fake_raw(tmp_path / "cache" / "mnist")
    with pytest.raises(sources.ChecksumError):
        sources.locate("mnist", raw_dir=None, cache_dir=tmp_path / "cache", download=False)


def test_configured_dir_is_used_as_is_with_a_warning(tmp_path, caplog):
    images, labels = _fake_raw(tmp_path / "raw")
    with caplog.at_level(logging.WARNING):
        imgs, labs, sums = builders.load_mnist_family("mnist", tmp_path / "raw", tmp_path / "cache", download=False)
    assert np.array_equal(imgs, images) and np.array_equal(labs, labels)
    assert "differs from the official" in caplog.text
    assert all(len(v) == 64 for v in sums.values())


def test_missing_dataset_names_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        sources.locate("mnist", raw_dir=tmp_path / "nowhere", cache_dir=tmp_path / "cache", download=False)
    message = str(err.value)
    assert "raw_dir" in message and "train-images-idx3-ubyte.gz" in message and "--raw-dir" in message


def test_regdb_without_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="Visible"):
        data.build("regdb", raw_dir=tmp_path)


def test_regdb_pairs_visible_and_thermal(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for ident in ("1", "2", "3"):
        for modality in ("Visible", "Thermal"):
            folder = tmp_path / modality / ident
            folder.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 256, (160, 60, 3), dtype=np.uint8)).save(folder / f"{i}.bmp")
    ds = data.build("regdb", raw_dir=tmp_path, n_identities=2)
    assert ds.view_shapes == [(3, 128, 64), (3, 128, 64)]
    assert np.array_equal(np.bincount(ds.labels), [4, 4])
    with pytest.raises(ValueError, match="n_identities"):
        data.build("regdb", raw_dir=tmp_path, n_identities=5)


def test_noisymnist_invariants(mnist10k):
    images, labels, _ = builders.load_mnist_family("mnist", mnist10k, download=False)
    assert images.shape == (10000, 28, 28)
    signed = builders.to_signed(images)
    views, partners = builders.noisy_views(signed, labels)
    partner = partners[0]
    # view 2 shows another image of the same class, for every sample
    assert np.array_equal(labels[partner], labels)
    assert np.all(partner != np.arange(len(labels)))
    # both views span [0, 1]
    for v in views:
        assert v.dtype == np.float32 and v.min() == 0.0 and v.max() == 1.0
    # view 1 is an affine image of the clean digit; view 2 = a * (partner + noise) + b, noise sd 0.2
    x = signed[partner].ravel().astype(np.float64)
    y = views[1].ravel().astype(np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    noise_sd = np.std(y - (slope * x + intercept)) / slope
    assert abs(noise_sd - 0.2) < 0.005
    assert np.allclose(views[0], (signed - signed.min()) / (signed.max() - signed.min()), atol=1e-6)


def test_paper_pairing_differs_from_derangement_only_at_fixed_points():
    labels = np.repeat(np.arange(5), 40)
    paper = builders.same_class_partners(labels, np.random.default_rng(7), "paper")
    fixed = builders.same_class_partners(labels, np.random.default_rng(7), "derangement")
    selfpaired = np.nonzero(paper == np.arange(len(labels)))[0]
    assert len(selfpaired) > 0  # the reference draw does pair some samples with themselves
    # each is swapped with the next sample of its class (classes are contiguous blocks of 40 here)
    next_in_class = labels[selfpaired] * 40 + (selfpaired % 40 + 1) % 40
    assert set(np.nonzero(paper != fixed)[0]) <= set(selfpaired) | set(next_in_class)
    assert np.all(fixed != np.arange(len(labels)))
    assert np.array_equal(labels[fixed], labels)


def test_patchedmnist_geometry(mnist10k):
    images, labels, _ = builders.load_mnist_family("mnist", mnist10k, download=False)
    signed = builders.to_signed(images[np.isin(labels, (0, 1, 2))][:20])
    views = builders.patched_views(signed)
    assert len(views) == 12 and all(v.shape == (20, 1, 28, 28) for v in views)
    # an independent resize (torch bilinear) of the same images: each view must match its grid cell
    big = torch.nn.functional.interpolate(torch.from_numpy(signed), scale_factor=4, mode="bilinear",
                                          align_corners=False).numpy()
    cells = [(i, j) for i in range(4) for j in range(4)]
    expected = [c for c in cells if c not in {(0, 0), (0, 3), (3, 0), (3, 3)}]
    for v, cell in zip(views, expected):
        corr = {c: np.corrcoef(v.ravel(), big[:, :, 28 * c[0]:28 * c[0] + 28, 28 * c[1]:28 * c[1] + 28].ravel())[0, 1]
                for c in cells}
        assert max(corr, key=corr.get) == cell and corr[cell] > 0.99


def test_build_subset_split_and_store(tmp_path, demo_data):
    ds = data.build("demo", max_samples=500, seed=3)
    assert len(ds.labels) == 500
    # stratified: class proportions follow the full set's within one sample
    full = np.bincount(demo_data.labels) / len(demo_data.labels) * 500
    assert np.all(np.abs(np.bincount(ds.labels) - full) <= 1)
    # the paper's split: disjoint halves covering everything
    assert len(np.intersect1d(ds.train_idx, ds.eval_idx)) == 0
    assert len(ds.train_idx) + len(ds.eval_idx) == 500 and abs(len(ds.train_idx) - len(ds.eval_idx)) <= 1
    data.save(tmp_path / "d.npz", ds)
    back = data.load(tmp_path / "d.npz")
    assert all(np.array_equal(a, b) for a, b in zip(back.views, ds.views))
    assert np.array_equal(back.eval_idx, ds.eval_idx) and back.meta["n_samples"] == 500
    with pytest.raises(FileNotFoundError, match="data build"):
        data.load(tmp_path / "missing.npz")


def test_demo3_has_three_views(demo_data):
    ds = data.build("demo3")
    assert len(ds.views) == 3 and np.array_equal(ds.labels, demo_data.labels)


def bilinear_upscale(images: np.ndarray, factor: int) -> np.ndarray:
    """(N, H, W) -> (N, factor H, factor W): each output pixel centre mapped back to the input grid
    ((o + 0.5) / factor - 0.5) and interpolated between its two neighbours along each axis, indices
    clamped at the border (MNIST's border is background, so the border rule does not matter here)."""
    def along(x, axis):
        n = x.shape[axis]
        pos = (np.arange(n * factor) + 0.5) / factor - 0.5
        lo = np.floor(pos).astype(int)
        w = pos - lo
        a, b = np.take(x, np.clip(lo, 0, n - 1), axis=axis), np.take(x, np.clip(lo + 1, 0, n - 1), axis=axis)
        shape = [1] * x.ndim
        shape[axis] = -1
        return a * (1 - w.reshape(shape)) + b * w.reshape(shape)

    return along(along(images.astype(np.float64), 1), 2)


def test_patchedmnist_patches_tile_the_upscaled_digit(mnist10k):
    """The 12 stored views of a sample, put back in their grid cells, are the 4x upscaled digit."""
    ds = data.build("patchedmnist", raw_dir=mnist10k, views=list(range(12)), download=False)
    images, labels, _ = builders.load_mnist_family("mnist", mnist10k, download=False)
    digits = images[np.isin(labels, (0, 1, 2))]
    assert np.array_equal(np.sort(ds.labels), np.sort(labels[np.isin(labels, (0, 1, 2))]))
    big = bilinear_upscale(digits / 255.0 * 2 - 1, 4)  # the [-1, 1] digit, 112 x 112
    cells = [(i, j) for i in range(4) for j in range(4) if (i, j) not in {(0, 0), (0, 3), (3, 0), (3, 3)}]
    for sample in (0, len(digits) // 2, len(digits) - 1):
        canvas = np.full((112, 112), np.nan)
        for view, (i, j) in zip(ds.views, cells):
            # each view is min-max normalised over all samples: undo it with that cell's own range
            cell = big[:, 28 * i:28 * i + 28, 28 * j:28 * j + 28]
            lo, hi = cell.min(), cell.max()
            canvas[28 * i:28 * i + 28, 28 * j:28 * j + 28] = view[sample, 0] * (hi - lo) + lo
        covered = ~np.isnan(canvas)
        assert covered.sum() == 12 * 28 * 28
        assert np.allclose(canvas[covered], big[sample][covered], atol=1e-5)
