"""Small files the rooms keep between runs: written so a reader never sees half of one, read so
that damage is reported and survived, not raised; and the content hash of a file.

Caches under ``$VIDSENSE_HOME`` (calibration priors, LLM prefix states, label embeddings, fusion
weights, route tables, concept banks, label descriptions) all go through here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it.

    Readers (other processes, a crash half-way) see the old file or the new one, never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`write_atomically` for UTF-8 text; returns the path."""
    write_atomically(path, text.encode("utf-8"))
    return Path(path)


def read_cached(path: str | os.PathLike[str], what: str, log: logging.Logger, fallback: str) -> bytes | None:
    """The bytes of a cache file, or None when it is absent or unreadable.

    An absent file is the normal first run and says nothing; an unreadable one is
    logged as ``<path>: cannot read <what> (<reason>); <fallback>``.
    """
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("%s: cannot read %s (%s); %s", path, what, exc, fallback)
        return None


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of one file, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
