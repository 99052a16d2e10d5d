"""Writing outputs whole or not at all, so an interrupted job never leaves a half file behind; checking
output paths before the work; reading module files back with their contents checked.

A temporary file is named `.{name}.{random}.tmp` beside its target: the same file system (so the final
rename is atomic) and a name no reader's glob (`*.csv`, `seed*.json`) can match. Temporary files are
removed when the block fails and when the process receives SIGTERM. Several outputs that belong
together (a dataset and its sidecar; an attack's generators, figure and metrics) are written inside
`together()`: their renames are deferred to the end of the block and done in the order written, so the
file a workflow tracks, written last, appears only once the others are in place.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

_LIVE: set[str] = set()       # temporary files not yet moved into place, removed on SIGTERM
_PENDING: list[list] = []     # one list of (tmp, target) per open `together()` block
_PREVIOUS_HANDLER = None


def _on_sigterm(signum, frame):
    """Remove every live temporary file, then let the signal do what it did before."""
    for tmp in list(_LIVE):
        try:
            os.remove(tmp)
        except OSError:
            pass
    _LIVE.clear()
    signal.signal(signal.SIGTERM, _PREVIOUS_HANDLER if _PREVIOUS_HANDLER is not None else signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _watch_sigterm() -> None:
    """Install the cleanup handler once (only the main thread may set signal handlers)."""
    global _PREVIOUS_HANDLER
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is not _on_sigterm:
        _PREVIOUS_HANDLER = current
        signal.signal(signal.SIGTERM, _on_sigterm)


def _discard(tmp: str) -> None:
    _LIVE.discard(tmp)
    if os.path.exists(tmp):
        os.remove(tmp)


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds (inside
    `together()`, only when the whole set succeeds)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _watch_sigterm()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    _LIVE.add(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual permissions
    except BaseException:
        _discard(tmp)
        raise
    if _PENDING:
        _PENDING[-1].append((tmp, path))
        return
    try:
        os.replace(tmp, path)
    finally:
        _discard(tmp)


@contextmanager
def together():
    """Outputs written by `atomic_path` inside this block appear together or not at all."""
    pending: list = []
    _PENDING.append(pending)
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            _discard(tmp)
        raise
    finally:
        _PENDING.pop()
    if _PENDING:  # nested: the outer block commits
        _PENDING[-1].extend(pending)
        return
    try:
        for tmp, target in pending:
            os.replace(tmp, target)
            _LIVE.discard(tmp)
    finally:
        for tmp, _ in pending:
            _discard(tmp)


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def _writable_dir(directory: Path) -> str | None:
    """Why files cannot be created in `directory` (None when they can); a missing folder is made later,
    so the question goes to its nearest existing ancestor."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            return f"{directory} cannot be created"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, so the folder {directory} cannot be created"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def check_outputs(outputs: dict, inputs: dict | None = None) -> None:
    """Stop before any work when an output cannot be written where asked.

    `outputs` maps an option name (`--out`) to (path or None, allowed suffixes); `inputs` maps an option
    name to a path (or a list of paths). Every output must have a known suffix, must not be a folder,
    must sit in a folder that exists or can be made, and must differ from every input and from the
    other outputs (an `.npz` dataset's `.json` sidecar counts as part of it)."""
    seen: dict[Path, str] = {}
    for flag, value in (inputs or {}).items():
        for p in value if isinstance(value, (list, tuple)) else [value]:
            if p is None:
                continue
            p = Path(p).resolve()
            seen.setdefault(p, f"the input {flag}")
            if p.suffix == ".npz":
                seen.setdefault(p.with_suffix(".json"), f"the sidecar of the input {flag}")
    for flag, (path, suffixes) in outputs.items():
        if path is None:
            continue
        path = Path(path)
        if path.suffix.lower() not in suffixes:
            raise ValueError(f"{flag} {path} has an unknown suffix {path.suffix or '(none)'!r}; "
                             f"name it with one of {', '.join(suffixes)}")
        if path.is_dir():
            raise ValueError(f"{flag} {path} is a folder; give a file name such as {path / ('out' + suffixes[0])}")
        problem = _writable_dir(path.parent)
        if problem:
            raise ValueError(f"{flag} {path} cannot be written: {problem}; choose another location")
        mine = [path.resolve()] + ([path.resolve().with_suffix(".json")] if path.suffix == ".npz" else [])
        for p in mine:
            if p in seen:
                raise ValueError(f"{flag} {path} would overwrite {seen[p]} ({p}); give it a path of its own")
            seen[p] = f"the output {flag}"


def check_folder(path, flag: str, example: str) -> Path:
    """Refuse an empty folder name or the file system's root as a folder of outputs: an empty results
    folder would put every output at /data, /models, ..."""
    if path is None or not str(path).strip():
        raise ValueError(f"{flag} is empty; name a folder of its own, e.g. {example}")
    path = Path(path)
    if path.resolve() == Path(path.resolve().anchor):
        raise ValueError(f"{flag} {path} is the file system's root; name a folder of its own, e.g. {example}")
    return path


def save_module(path: str | Path, module, meta: dict) -> None:
    """A module's state_dict (on CPU) with the plain-data `meta` needed to rebuild it, whole or not at all."""
    import torch

    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        try:
            torch.save({"state_dict": state, "meta": meta}, tmp)
        except RuntimeError:  # torch's writer reports a failed write as an "enforce fail" of its zip code
            free = shutil.disk_usage(tmp.parent).free / 1e6
            raise OSError(f"could not write {path}: the write failed with {free:.1f} MB free on its "
                          "disk (full?); free space there or choose another location, then rerun") from None


def load_module_file(path: str | Path, device="cpu", hint: str = "") -> dict:
    """{"state_dict", "meta"} as `save_module` wrote it, with finite weights. Loaded tensors-only
    (`weights_only=True`): a file that needs more (pickled code) is refused, and the error never suggests
    loading it unsafely. A missing or unreadable file is one error that says how to make it (`hint`)."""
    import torch

    path = Path(path)
    fix = f"; {hint}" if hint else ""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist{fix}")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file; its text may advise unsafe loading
        raise ValueError(f"{path} is not a readable tensors-only PyTorch file written by this project "
                         f"({type(err).__name__}: the file is empty, truncated, corrupt or holds code){fix}") from None
    if not (isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict) and isinstance(ckpt.get("meta"), dict)):
        raise ValueError(f"{path} is a PyTorch file but not one this project wrote (no state_dict and meta){fix}")
    for name, tensor in ckpt["state_dict"].items():
        if not torch.is_tensor(tensor):
            raise ValueError(f"{path}: entry {name!r} of its state_dict is not a tensor; the file is damaged{fix}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{path} holds NaN or infinite weights (in {name}), so it cannot be used; "
                             "delete it and train or fit it again")
    return ckpt

