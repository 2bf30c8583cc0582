"""Integrity: every load of a bundled model is checked against its install manifest.

:func:`ensure` is the one way in: it installs a model from its carriers on first use and
:func:`check` compares the files with the manifest (a stat per file; a full hash only
when a size or mtime changed, remembered per process), so a damaged model is a one-line
error naming the repair command instead of confident garbage. :func:`verify` re-hashes
everything; :func:`content_sha256` stamps a user's own model files the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidsense.services.errors import ModelError
from vidsense.services.files import sha256_of
from vidsense.services.model_store import catalogue
from vidsense.services.model_store.catalogue import MANIFEST, _install_lock, _write_json, get_spec, is_installed, model_path, models_root, repair_command

log = logging.getLogger(__name__)

# A size-and-mtime stamp is only recorded for a file last written longer ago than this:
# a write within the same filesystem timestamp tick (a few ms; 2 s on FAT) could otherwise
# change the bytes and leave the stamp equal (git's "racily clean" entries).
RACY_NS = 2_000_000_000
# Stamps of user-supplied model files (full profile), under $VIDSENSE_HOME.
LOCAL_STAMPS = Path("cache") / "model-stamps"


class CorruptModelError(ModelError):
    """An installed model whose files no longer match its install manifest."""


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of verifying one installed model."""

    name: str
    ok: bool
    problem: str = ""


def verify(name: str, home: Path) -> VerifyResult:
    """Re-hash every file of an installed model against its manifest."""
    spec = get_spec(name)
    folder = models_root(home) / name
    mf = folder / MANIFEST
    if not mf.is_file():
        return VerifyResult(name, False, "not installed")
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return VerifyResult(name, False, f"manifest unreadable ({exc})")
    if manifest.get("pinned_sha256") != spec.sha256:
        return VerifyResult(name, False, "installed from a different pinned version; reinstall")
    for rel, want in manifest["files"].items():
        p = folder / rel
        if not p.is_file():
            return VerifyResult(name, False, f"{rel} is missing")
        if sha256_of(p) != want:
            return VerifyResult(name, False, f"{rel} is corrupt (sha256 mismatch)")
    weight = folder / spec.weight
    if weight.is_file() and sha256_of(weight) != spec.sha256:
        return VerifyResult(name, False, f"{spec.weight} does not match the pinned sha256")
    return VerifyResult(name, True)


# What this process has already hashed: (file, size, mtime_ns) -> sha256 of those bytes.
_HASHES: dict[tuple[str, int, int], str] = {}
# Parsed manifests by (file, inode, size, mtime_ns): a rewrite is a rename, so a new inode.
_MANIFESTS: dict[tuple[str, int, int, int], dict[str, Any]] = {}
_MEMO_LOCK = threading.Lock()


def _racy(mtime_ns: int) -> bool:
    return time.time_ns() - mtime_ns < RACY_NS


def _stat_key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (path, st.st_size, st.st_mtime_ns)


def _hash_file(key: tuple[str, int, int]) -> str:
    """SHA-256 of the file ``key`` names, remembered for its size and mtime (unless just written)."""
    with _MEMO_LOCK:
        known = _HASHES.get(key)
    if known is not None:
        return known
    digest = sha256_of(Path(key[0]))
    if not _racy(key[2]):
        with _MEMO_LOCK:
            _HASHES[key] = digest
    return digest


def _manifest(folder: Path) -> dict[str, Any] | None:
    """The parsed manifest of a model folder (None: missing or unreadable)."""
    path = folder / MANIFEST
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    with _MEMO_LOCK:
        known = _MANIFESTS.get(key)
    if known is not None:
        return known
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None
    with _MEMO_LOCK:
        _MANIFESTS[key] = manifest
    return manifest


def check(name: str, home: Path) -> str:
    """Check an installed model's files against its manifest before it is used.

    Each file's size and mtime are compared with the stamp the manifest
    recorded; only a file whose stamp differs is hashed in full, and when its
    bytes still match, its stamp is refreshed so the next load is cheap again.
    Hashes are remembered per process for a file's size and mtime.

    Args:
        name: registry name.
        home: ``$VIDSENSE_HOME``.

    Returns:
        The verified SHA-256 of the model's weights (the pinned one).

    Raises:
        CorruptModelError: the model is not installed from this registry entry,
            or a file is missing or its bytes changed; the message names the repair command.
    """
    spec = get_spec(name)
    folder = models_root(home) / name
    manifest = _manifest(folder)

    def damaged(problem: str) -> CorruptModelError:
        return CorruptModelError(f"model {name} is damaged: {problem}; repair it with: {repair_command(name)}")

    if manifest is None:
        raise damaged(f"{folder / MANIFEST} is missing or unreadable")
    if manifest.get("pinned_sha256") != spec.sha256:
        raise damaged("it was installed from a different registry version")
    files: dict[str, str] = manifest["files"]
    if files.get(spec.weight, spec.sha256) != spec.sha256:
        raise damaged(f"its manifest records another hash for {spec.weight}")
    stamps = manifest.get("stamps") or {}
    fresh: dict[str, tuple[int, int]] = {}
    base = str(folder)  # plain strings: pathlib costs more than the stat on this path, run on every load
    for rel, want in files.items():
        key = _stat_key(os.path.join(base, rel))
        if key is None:
            raise damaged(f"{rel} is missing")
        if stamps.get(rel) == {"size": key[1], "mtime_ns": key[2]}:
            continue
        got = _hash_file(key)
        if got != want:
            raise damaged(f"{rel} changed since it was installed (sha256 {got[:12]}..., expected {want[:12]}...)")
        if not _racy(key[2]):
            fresh[rel] = key[1:]
    if fresh:
        _restamp(folder, name, files, fresh)
    return files.get(spec.weight, spec.sha256)


def _restamp(folder: Path, name: str, files: dict[str, str], fresh: dict[str, tuple[int, int]]) -> None:
    """Record new stamps of files whose bytes were just verified (best effort)."""
    try:
        with _install_lock(folder.parent, name, wait=False) as held:
            if not held:  # an install is running; the next load restamps
                return
            current = json.loads((folder / MANIFEST).read_text())
            if current.get("files") != files:  # reinstalled meanwhile: those stamps are not ours to write
                return
            stamps = current.setdefault("stamps", {})
            stamps.update({rel: {"size": size, "mtime_ns": mtime} for rel, (size, mtime) in fresh.items()})
            _write_json(folder / MANIFEST, current)
    except (OSError, ValueError) as exc:
        # A read-only store still works: this process remembers the hashes, others hash again.
        log.debug("model %s: stamps not refreshed (%s)", name, exc)


def _intact(name: str, home: Path, *, warn: bool = False) -> bool:
    """True when ``name`` is installed and passes :func:`check` (``warn``: log why not)."""
    if not is_installed(name, home):
        return False
    try:
        check(name, home)
    except CorruptModelError as exc:
        if warn:
            log.warning("rebuilding model %s: %s", name, exc)
        return False
    return True


def ensure(name: str, home: Path) -> Path:
    """The entry path of ``name``, checked before use; assembled from installed carriers on first use.

    Every loader of a bundled model comes through here (directly or through
    :func:`resolve`), so none runs on damaged weights.

    Never downloads: a missing carrier is a :class:`ModelError` that names the pip command.

    Raises:
        CorruptModelError: the installed files fail :func:`check`.
    """
    _ensure(name, home)
    return model_path(name, home)


def _ensure(name: str, home: Path) -> str:
    if not is_installed(name, home):
        # Installing sits above checking (an install checks what it built): imported here.
        from vidsense.services.model_store import assemble

        assemble.install(name, home)
    return check(name, home)


def weights_sha256(reference: str, home: Path) -> str:
    """What a model's cache keys use for its weights: a hash of the bytes that are loaded.

    Args:
        reference: a bundled model name, a local file or folder, or a hub id.
        home: ``$VIDSENSE_HOME``.

    Returns:
        A bundled model's verified SHA-256 (see :func:`check`), a local model's
        content hash (see :func:`content_sha256`), or ``hub:<id>`` for a hub id.

    Raises:
        CorruptModelError: a bundled model fails :func:`check`.
    """
    if reference in catalogue.MODELS:
        return _ensure(reference, home)
    path = Path(reference).expanduser()
    if path.exists():
        return content_sha256(path, home)
    return f"hub:{reference}"


def content_sha256(path: Path, home: Path) -> str:
    """SHA-256 of a user-supplied model file, or of a folder's files (names and bytes).

    Hidden entries (``.git``, ``.cache``) are skipped: tools rewrite them
    without changing the model. Each file's hash is stamped under
    ``$VIDSENSE_HOME/cache/model-stamps`` with its size and mtime, so only the
    first use after a change reads the bytes. A folder holding no model still
    gets a hash: the loader that cannot load it says what is wrong.
    """
    path = Path(path).expanduser().resolve()
    if path.is_file():
        return _local_sha256(path, home)
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(path).parts):
            continue
        h.update(f"{p.relative_to(path).as_posix()}\0{_local_sha256(p, home)}\n".encode())
    return h.hexdigest()


def _local_sha256(path: Path, home: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _MEMO_LOCK:
        known = _HASHES.get(key)
    if known is not None:
        return known
    stamp_file = Path(home) / LOCAL_STAMPS / f"{hashlib.sha256(str(path).encode()).hexdigest()[:32]}.json"
    try:
        stamp = json.loads(stamp_file.read_text())
        if [stamp["path"], stamp["size"], stamp["mtime_ns"]] == list(key):
            with _MEMO_LOCK:
                _HASHES[key] = stamp["sha256"]
            return str(stamp["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = _hash_file(key)
    if not _racy(st.st_mtime_ns):
        try:
            stamp_file.parent.mkdir(parents=True, exist_ok=True)
            _write_json(stamp_file, {"path": key[0], "size": key[1], "mtime_ns": key[2], "sha256": digest})
        except OSError as exc:
            log.debug("%s: hash not stamped (%s)", path, exc)
    return digest


