"""Candidate shortlist: keep the labels whose description is nearest the timeline.

Large label sets (Kinetics-700, SSv2) do not fit a prompt and cost one LLM
score each, so the labels are first ranked by sentence-embedding similarity
between the timeline text and each label's description, and only the top N go
to the LLM. The same ranking is the embedding-only reasoner (zsarcap-style).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np

from vidsense.agents.embeddings import TextEncoder
from vidsense.agents.prompts import redact_instructions
from vidsense.services.files import read_cached, write_atomically
from vidsense.services.schema import LabelSet

# Prompted label texts embed much closer to timeline text than bare names do.
LABEL_TEMPLATE = "a video of a person {label}"
# Text lists kept per index: a label set's matrix (with or without its
# descriptions; a 700-label matrix is about 1 MB) and the recognised class names
# the evidence scorers carry into it.
MAX_MATRICES = 32
# Text lists at least this long are kept on disk too (label sets, not a clip's few class names).
DISK_MIN = 64

log = logging.getLogger(__name__)


def label_texts(labelset: LabelSet, descriptions: dict[str, str] | None = None) -> list[str]:
    """The text embedded for each label: template plus its description when known."""
    out = []
    for lab, read in zip(labelset.labels, labelset.readable):
        desc = (descriptions or {}).get(lab)
        out.append(f"{LABEL_TEMPLATE.format(label=read)}. {desc}" if desc else LABEL_TEMPLATE.format(label=read))
    return out


class LabelIndex:
    """Label embeddings of every label set in use, computed once per set.

    A 700-label set costs seconds to embed, and it is the same for every
    video, so matrices are kept (bounded, least recently used first out),
    keyed by the hash of the label texts. With ``cache_dir``, lists of
    :data:`DISK_MIN` texts or more are also kept on disk per encoder, so a new
    process does not pay for them again (Kinetics-700 with its descriptions:
    about 6 s on 2 cores, against milliseconds to read).

    Args:
        encoder: the sentence encoder (shared with the rest of the reasoning room),
            or a function returning it, called on first use.
        cache_dir: where to keep label matrices between processes (None: memory only).
    """

    def __init__(self, encoder: TextEncoder | Callable[[], TextEncoder], cache_dir: str | Path | None = None) -> None:
        self._encoder = encoder
        self._matrices: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    @property
    def encoder(self) -> TextEncoder:
        """The sentence encoder."""
        if not hasattr(self._encoder, "encode"):
            self._encoder = self._encoder()  # type: ignore[operator]
        return self._encoder  # type: ignore[return-value]

    def matrix(self, labelset: LabelSet, descriptions: dict[str, str] | None = None) -> np.ndarray:
        """Normalised embeddings of every label text, shape ``[len(labelset), dim]``."""
        return self.embed(label_texts(labelset, descriptions))

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings of ``texts``, shape ``[len(texts), dim]``, kept for the next call with the same list."""
        key = hashlib.sha256("\n".join(texts).encode()).hexdigest()
        with self._lock:
            cached = self._matrices.get(key)
            if cached is not None:
                self._matrices.move_to_end(key)
                return cached
        cached = self._from_disk(key, len(texts))
        if cached is None:
            cached = self.encoder.encode(texts)
            self._to_disk(key, cached)
        with self._lock:
            self._matrices[key] = cached
            while len(self._matrices) > MAX_MATRICES:
                self._matrices.popitem(last=False)
        return cached

    def _disk_path(self, key: str, n: int) -> Path | None:
        if self.cache_dir is None or n < DISK_MIN:
            return None
        name = re.sub(r"[^\w.-]+", "_", str(getattr(self.encoder, "name", type(self.encoder).__name__)))[-80:]
        return self.cache_dir / f"{name}-{key[:32]}.npy"

    def _from_disk(self, key: str, n: int) -> np.ndarray | None:
        path = self._disk_path(key, n)
        raw = read_cached(path, "label embeddings", log, "computing them again") if path is not None else None
        if raw is None:
            return None
        try:
            matrix = np.load(io.BytesIO(raw), allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("label embeddings %s unreadable (%s); computing them again", path, exc)
            return None
        if matrix.ndim != 2 or len(matrix) != n or not np.isfinite(matrix).all():
            log.warning("label embeddings %s do not fit %d labels; computing them again", path, n)
            return None
        return matrix

    def _to_disk(self, key: str, matrix: np.ndarray) -> None:
        path = self._disk_path(key, len(matrix))
        if path is None:
            return
        buf = io.BytesIO()
        np.save(buf, np.asarray(matrix), allow_pickle=False)
        try:
            write_atomically(path, buf.getvalue())
        except OSError as exc:  # a read-only home only costs the next process the embedding time
            log.warning("could not keep label embeddings in %s: %s", path, exc)

    def similarities(self, labelset: LabelSet, timeline_text: str, descriptions: dict[str, str] | None = None) -> np.ndarray:
        """Cosine similarity between the timeline and every label, shape ``[len(labelset)]``."""
        # The same redaction as the prompt's: an instruction spoken in the video must not pull the shortlist.
        query = self.encoder.encode([redact_instructions(timeline_text) or "nothing observed"])[0]
        return self.matrix(labelset, descriptions) @ query


def shortlist(sims: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` most similar labels, best first."""
    n = min(n, len(sims))
    return np.argsort(-sims, kind="stable")[:n]
