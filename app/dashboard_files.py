"""Which files the dashboard touches: videos under its root folder, and private copies of uploads.

The dashboard is a web page: whatever folder is typed into it is read by the
server's user. It lists and plays only files that resolve (symlinks followed)
inside the root it was started with, and it keeps an upload on disk only while
a model reads it, in a folder no other user can open.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import vidsense


def inside_root(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path:
    """``path`` resolved, symlinks followed; a relative path is taken from ``root``.

    Raises:
        InputError: the resolved path is not ``root`` or below it.
    """
    base = Path(root).resolve()
    resolved = (base / Path(path).expanduser()).resolve()
    if not resolved.is_relative_to(base):
        raise vidsense.InputError(f"{path}: outside the dashboard's folder {base} (vidsense dashboard --root)")
    return resolved


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


class UploadFolder:
    """A private folder (mode 0700) for one session's uploads.

    It is removed when this object is garbage collected (the session ended)
    or, at the latest, when the process exits.
    """

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="vidsense-upload-"))  # mkdtemp creates it 0700
        self._remove = weakref.finalize(self, shutil.rmtree, str(self.path), ignore_errors=True)

    def path_for(self, name: str, data: bytes) -> Path:
        """Where an upload is held: named by its content, so the same bytes keep one cache key."""
        return self.path / (hashlib.sha256(data).hexdigest()[:20] + Path(name).suffix.lower())

    @contextmanager
    def holding(self, name: str, data: bytes) -> Iterator[Path]:
        """The upload as a file (mode 0600) for the length of the block; deleted afterwards."""
        path = self.path_for(name, data)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            yield path
        finally:
            path.unlink(missing_ok=True)
