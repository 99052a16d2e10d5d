"""Where raw IDX files come from, tried in a fixed order and said in the log.

1. a directory the user configured: files used as they are (subsets such as a 10k MNIST work);
   a sha256 that differs from the official one is a warning, since subsets differ by design; a
   configured directory without the four files is an error, never a reason to look elsewhere;
2. the system directory of a distribution package (Debian's dataset-fashion-mnist);
3. a verified download into a cache directory: every file's sha256 must match, else it is an error.

A file is official when its sha256 matches the published `.gz`, or when the sha256 of its decompressed
bytes matches the official decompressed file: Debian recompresses the `.gz` files (other gzip bytes,
the same IDX content), so only the second check recognises its copy.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@dataclass(frozen=True)
class RawSpec:
    name: str
    sha256: dict[str, str]           # of the official .gz files
    mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...]
    raw_sha256: dict[str, str]       # of their decompressed bytes (empty: only the .gz is checked)


RAW = {
    "mnist": RawSpec(
        "MNIST",
        {"train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
         "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
         "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
         "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        ("/usr/share/datasets/mnist",),
        {},
    ),
    "fashion": RawSpec(
        "Fashion-MNIST",
        {"train-images-idx3-ubyte.gz": "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
         "train-labels-idx1-ubyte.gz": "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
         "t10k-images-idx3-ubyte.gz": "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
         "t10k-labels-idx1-ubyte.gz": "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"},
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("/usr/share/datasets/fashion-mnist",),
        # the decompressed IDX files (computed from Debian's dataset-fashion-mnist 0.0~git20200523, whose
        # decompressed bytes are the official ones; the .gz hashes above are zalandoresearch's)
        {"train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
         "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
         "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
         "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
    ),
}


class ChecksumError(RuntimeError):
    pass


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def decompressed_sha256(path: str | Path) -> str | None:
    """sha256 of a gzip file's decompressed bytes; None when the file is not valid gzip."""
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except (OSError, EOFError):
        return None
    return h.hexdigest()


def is_official(path: str | Path, spec: RawSpec, name: str, digest: str | None = None) -> bool:
    """Whether `path` holds the official file `name`: its sha256 (`digest` when already computed) is
    the published .gz's, or its decompressed bytes are the official ones (a recompressed copy)."""
    if (digest or sha256(path)) == spec.sha256[name]:
        return True
    expected = spec.raw_sha256.get(name)
    return expected is not None and decompressed_sha256(path) == expected


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in FILES)


def verify(path: Path, spec: RawSpec, name: str) -> None:
    """Raise ChecksumError unless `path` is the official file `name` of `spec` (see `is_official`)."""
    if not is_official(path, spec, name):
        raise ChecksumError(f"{path} has sha256 {sha256(path)}, expected {spec.sha256[name]}: the file is corrupt "
                            f"or not the official one; delete it and run again to re-download.")


def _download(spec: RawSpec, cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        target = cache / name
        if target.is_file():
            verify(target, spec, name)
            continue
        errors = []
        for mirror in spec.mirrors:
            url = mirror + name
            log.info("downloading %s", url)
            fd, tmp = tempfile.mkstemp(dir=cache, prefix=".part-")
            os.close(fd)
            try:
                urllib.request.urlretrieve(url, tmp)
                verify(Path(tmp), spec, name)
                os.replace(tmp, target)
                break
            except (OSError, ChecksumError) as err:
                errors.append(f"{url}: {err}")
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        else:
            raise FileNotFoundError(f"could not download {spec.name} file {name} ({'; '.join(errors)})")


def locate(kind: str, raw_dir: str | Path | None = None, cache_dir: str | Path = "results/raw",
           download: bool = True) -> tuple[Path, dict[str, str]]:
    """Return the directory holding the four IDX files of `kind` and their sha256 sums."""
    spec = RAW[kind]
    tried = []
    candidates = []
    if raw_dir:  # a configured folder is used or refused, never silently replaced by another
        missing = [name for name in FILES if not (Path(raw_dir) / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{spec.name} raw_dir {raw_dir} lacks {', '.join(missing)}; fix the path "
                                    "(`raw_dir` in the config or --raw-dir), or leave it unset to use the system "
                                    "folder or a verified download.")
        candidates.append(("configured directory", Path(raw_dir), False))
    candidates += [("system directory", Path(d), False) for d in spec.system_dirs]
    cache = Path(cache_dir) / kind
    candidates.append(("download cache", cache, True))

    for label, directory, verified in candidates:
        if _complete(directory):
            sums = {name: sha256(directory / name) for name in FILES}
            differ = [name for name, digest in sums.items() if not is_official(directory / name, spec, name, digest)]
            for name in differ if verified else []:
                verify(directory / name, spec, name)
            if differ:
                log.warning("%s: sha256 differs from the official %s files for %d of %d files (a subset, or other "
                            "data?); using them as they are", directory, spec.name, len(differ), len(FILES))
            log.info("%s raw files: %s (%s)", spec.name, directory, label)
            return directory, sums
        tried.append(f"{label} {directory}")
        log.info("%s raw files not in %s %s", spec.name, label, directory)

    if download:
        try:
            _download(spec, cache)
            log.info("%s raw files: %s (verified download)", spec.name, cache)
            return cache, {name: sha256(cache / name) for name in FILES}
        except FileNotFoundError as err:
            tried.append(str(err))
    raise FileNotFoundError(
        f"{spec.name} raw files not found (tried: {'; '.join(tried)}). Put the four IDX files "
        f"({', '.join(FILES)}) in a directory and set its path as `raw_dir` for this dataset in the "
        f"config (or pass --raw-dir), or allow the download on a machine with internet access.")
