"""Which files the dashboard and the HTTP server touch: videos under their root folders, and private copies of uploads.

Both are reached over the network: whatever path is typed into the page or sent
in a request is read by the server's user. They read only files that resolve
(symlinks followed) inside the roots they were started with, and keep an upload
on disk only while a model reads it, in a folder no other user can open.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

import vidsense

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class OutsideRoot(vidsense.InputError):
    """A path that resolves outside every root it may be read from (the server answers 403)."""


def inside_root(path: str | os.PathLike[str], *roots: str | os.PathLike[str], hint: str = "vidsense dashboard --root") -> Path:
    """``path`` resolved, symlinks followed, inside the first of ``roots`` that holds it; a relative path is taken from each root in turn.

    Raises:
        OutsideRoot: the resolved path is no root and below none (``hint`` says how to widen them).
    """
    bases = [Path(root).resolve() for root in roots]
    for base in bases:
        resolved = (base / Path(path).expanduser()).resolve()
        if resolved.is_relative_to(base):
            return resolved
    raise OutsideRoot(f"{path}: outside the allowed folder{'s' if len(bases) > 1 else ''} {', '.join(map(str, bases))} ({hint})")


def list_videos(folder: str | os.PathLike[str], root: str | os.PathLike[str]) -> tuple[Path, list[Path]]:
    """The videos under ``folder`` (searched recursively) that resolve inside ``root``.

    Returns:
        The resolved folder and its videos, as paths below it.

    Raises:
        InputError: the folder is outside the root, not a folder, or has no videos.
    """
    base = inside_root(folder, root)
    if not base.is_dir():
        raise vidsense.InputError(f"{folder}: not a folder")
    found = []
    for video in vidsense.collect_videos([base]):
        try:
            inside_root(video, root)
        except vidsense.InputError:  # a symlink out of the root: not listed
            continue
        found.append(video)
    if not found:
        raise vidsense.InputError(f"{folder}: no video files here")
    return base, found


def upload_problem(name: str, size_bytes: int, limit_mb: int, allowed: Sequence[str], hint: str = "setting max_upload_mb") -> str | None:
    """Why an upload cannot be used (``None`` when it can): wrong type or over the size limit (``hint``: how to raise it)."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in allowed:
        return f"{name}: not a video file (expected one of {', '.join(sorted(allowed))})"
    if size_bytes > limit_mb * 1024 * 1024:
        return f"{name}: {size_bytes / 1024 / 1024:.1f} MB is over the upload limit of {limit_mb} MB ({hint})"
    return None


class UploadFolder:
    """A private folder (mode 0700) for one session's uploads.

    It is removed when this object is garbage collected (the session ended)
    or, at the latest, when the process exits.
    """

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="vidsense-upload-"))  # mkdtemp creates it 0700
        self._remove = weakref.finalize(self, shutil.rmtree, str(self.path), ignore_errors=True)

    def keep(self, name: str, data: BinaryIO) -> Path:
        """A private copy of an upload, under its own (cleaned) name in a folder of its own, until :meth:`drop`.

        Two uploads of the same bytes get two copies: one request's cleanup never removes another's file.
        """
        folder = Path(tempfile.mkdtemp(dir=self.path))
        path = folder / (_UNSAFE.sub("_", Path(name).name)[-100:].strip(" .") or "upload")
        _write_private(path, data)
        return path

    def drop(self, path: Path) -> None:
        """Remove an upload :meth:`keep` made (and its folder)."""
        if path.parent.parent == self.path:
            shutil.rmtree(path.parent, ignore_errors=True)

    def path_for(self, name: str, data: bytes) -> Path:
        """Where an upload is held: named by its content, so the same bytes keep one cache key."""
        return self.path / (hashlib.sha256(data).hexdigest()[:20] + Path(name).suffix.lower())

    @contextmanager
    def holding(self, name: str, data: bytes) -> Iterator[Path]:
        """The upload as a file (mode 0600) for the length of the block; deleted afterwards."""
        path = self.path_for(name, data)
        try:
            _write_private(path, data)
            yield path
        finally:
            path.unlink(missing_ok=True)


def _write_private(path: Path, data: bytes | BinaryIO) -> None:
    """Write ``data`` to ``path`` as a file only its owner can read (mode 0600), never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        if isinstance(data, bytes):
            f.write(data)
        else:
            shutil.copyfileobj(data, f, 1 << 20)
