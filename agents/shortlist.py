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
from typing import Callable, Sequence

import numpy as np

from vidsense.agents.embeddings import TextEncoder
from vidsense.agents.prompts import redact_instructions
from vidsense.services.files import read_cached, write_atomically
from vidsense.services.schema import LabelSet

# Prompted label texts embed much closer to timeline text than bare names do.
LABEL_TEMPLATE = "a video of a person {label}"
# Text lists kept in memory per index: a label set's matrix (with or without its
# descriptions; a 700-label matrix is about 1 MB) and the recognised class names
# the evidence scorers carry into it.
MAX_MATRICES = 32
# Every vector file ends with this tag and the SHA-256 of what precedes it, so a damaged or
# truncated file is found on reading (as the model store checks its models) and recomputed.
CHECK_TAG = b"\nsha256:"
# Clip texts' vectors kept on disk (about 1.7 KB each, four or five a clip): past this many the
# least recently written go, checked every QUERY_CHECK_EVERY new ones, so a long batch does not
# fill the disk (at most about 35 MB).
MAX_QUERY_FILES = 20_000
QUERY_CHECK_EVERY = 256

log = logging.getLogger(__name__)


def label_texts(labelset: LabelSet, descriptions: dict[str, str] | None = None) -> list[str]:
    """The text embedded for each label: template plus its description when known."""
    out = []
    for lab, read in zip(labelset.labels, labelset.readable):
        desc = (descriptions or {}).get(lab)
        out.append(f"{LABEL_TEMPLATE.format(label=read)}. {desc}" if desc else LABEL_TEMPLATE.format(label=read))
    return out


class LabelIndex:
    """Label embeddings of every label set in use, computed once and kept on disk.

    The default route compares a few hundred fixed names (the perception models'
    classes) with a label set's names and the clip's own text. All but the clip's text
    are known before any video arrives, so with ``cache_dir`` they are embedded once
    per encoder and read back by every later process, and a cached re-run of a clip
    (whose text vectors are kept too) loads no encoder at all:

    - label-set texts (:meth:`matrix`, :meth:`names`): one file per list, any size
      (Kinetics-700 with its descriptions: about 6 s on 2 cores, against milliseconds to read);
    - ``vocabulary``: every class the perception models can name, one file, embedded on
      first use; a list of class names drawn from it is read from its rows;
    - the texts :meth:`similarities` compares (a clip's timeline): one small file each.

    Other lists (a full backend's free-form tags) stay in memory, least recently used first out.
    Every file carries the SHA-256 of its content; a damaged one is said and recomputed.

    Args:
        encoder: the sentence encoder (shared with the rest of the reasoning room),
            or a function returning it, called on first use.
        cache_dir: where to keep vectors between processes (None: memory only).
        name: the encoder's name in file names (default: the encoder's ``name``, which loads
            it: give it when the encoder is loaded lazily).
        vocabulary: returns the fixed class names embedded as one matrix.
    """

    def __init__(
        self,
        encoder: TextEncoder | Callable[[], TextEncoder],
        cache_dir: str | Path | None = None,
        *,
        name: str | None = None,
        vocabulary: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self._encoder = encoder
        self._matrices: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._name = name
        self._vocabulary = vocabulary
        self._rows: dict[str, int] | None = None
        self._vocab_matrix: np.ndarray | None = None
        self._queries_written = 0

    @property
    def encoder(self) -> TextEncoder:
        """The sentence encoder."""
        if not hasattr(self._encoder, "encode"):
            self._encoder = self._encoder()  # type: ignore[operator]
        return self._encoder  # type: ignore[return-value]

    @property
    def encoder_name(self) -> str:
        """The encoder's name as the vector files carry it (loads the encoder only when none was given)."""
        if self._name is None:
            self._name = str(getattr(self.encoder, "name", type(self.encoder).__name__))
        return self._name

    def matrix(self, labelset: LabelSet, descriptions: dict[str, str] | None = None) -> np.ndarray:
        """Normalised embeddings of every label text, shape ``[len(labelset), dim]``."""
        return self.embed(label_texts(labelset, descriptions), keep=True)

    def names(self, labelset: LabelSet) -> np.ndarray:
        """Normalised embeddings of the label names alone (what recognised classes are carried into)."""
        return self.embed(list(labelset.readable), keep=True)

    def embed(self, texts: list[str], *, keep: bool = False) -> np.ndarray:
        """Normalised embeddings of ``texts``, shape ``[len(texts), dim]``, kept for the next call with the same list.

        Args:
            keep: also keep the list on disk (a label set's texts; a clip's class names are
                read from the vocabulary's rows instead).
        """
        key = hashlib.sha256("\n".join(texts).encode()).hexdigest()
        with self._lock:
            cached = self._matrices.get(key)
            if cached is not None:
                self._matrices.move_to_end(key)
                return cached
        cached = self._from_vocabulary(texts)
        if cached is None and keep and self.cache_dir is not None:
            cached = self._stored(f"{key[:32]}.vectors", len(texts), lambda: self.encoder.encode(texts))
        if cached is None:
            cached = self.encoder.encode(texts)
        with self._lock:
            self._matrices[key] = cached
            while len(self._matrices) > MAX_MATRICES:
                self._matrices.popitem(last=False)
        return cached

    def warm(self) -> None:
        """Embed the vocabulary now (once per encoder and cache folder), so no classify pays for it."""
        self._from_vocabulary([])

    def _from_vocabulary(self, texts: list[str]) -> np.ndarray | None:
        """Rows of the vocabulary matrix for ``texts``, when every one is a vocabulary class."""
        if self._vocabulary is None or self.cache_dir is None:
            return None
        if self._rows is None:
            vocab = list(dict.fromkeys(self._vocabulary()))
            key = hashlib.sha256("\n".join(vocab).encode()).hexdigest()
            matrix = self._stored(f"vocabulary-{key[:32]}.vectors", len(vocab), lambda: self.encoder.encode(vocab))
            with self._lock:
                self._vocab_matrix, self._rows = matrix, {t: i for i, t in enumerate(vocab)}
        rows = [self._rows.get(t) for t in texts]
        if any(r is None for r in rows) or self._vocab_matrix is None:
            return None
        return self._vocab_matrix[np.array(rows, dtype=int)] if rows else self._vocab_matrix[:0]

    def _folder(self) -> Path:
        """This encoder's folder of vector files."""
        assert self.cache_dir is not None
        return self.cache_dir / re.sub(r"[^\w.-]+", "_", self.encoder_name)[-80:]

    def _stored(self, file: str, n: int, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The ``[n, dim]`` matrix kept in ``file`` (under the encoder's folder), computed and written when absent or damaged."""
        path = self._folder() / file
        matrix = _read_vectors(path, n)
        if matrix is None:
            matrix = np.asarray(compute(), dtype=np.float32)
            _write_vectors(path, matrix)
        return matrix

    def query(self, text: str) -> np.ndarray:
        """The normalised embedding of one text (a clip's timeline), kept on disk for the clip's next run."""
        if self.cache_dir is None:
            return self.encoder.encode([text])[0]
        key = hashlib.sha256(text.encode()).hexdigest()

        def compute() -> np.ndarray:
            self._queries_written += 1
            if self._queries_written % QUERY_CHECK_EVERY == 0:
                self.prune_queries()
            return self.encoder.encode([text])

        return self._stored(f"queries/{key[:2]}/{key[2:34]}.vectors", 1, compute)[0]

    def prune_queries(self, keep: int | None = None) -> int:
        """Delete the oldest kept clip-text vectors beyond ``keep`` (default :data:`MAX_QUERY_FILES`); returns how many went."""
        if self.cache_dir is None:
            return 0
        folder = self._folder() / "queries"
        files = []
        for f in folder.glob("*/*.vectors"):
            try:
                files.append((f.stat().st_mtime, f))
            except OSError:  # removed by another process meanwhile
                continue
        limit = MAX_QUERY_FILES if keep is None else keep
        gone = 0
        for _, f in sorted(files)[: max(len(files) - limit, 0)]:
            f.unlink(missing_ok=True)
            gone += 1
        return gone

    def similarities(self, labelset: LabelSet, timeline_text: str, descriptions: dict[str, str] | None = None) -> np.ndarray:
        """Cosine similarity between the timeline and every label, shape ``[len(labelset)]``."""
        # The same redaction as the prompt's: an instruction spoken in the video must not pull the shortlist.
        query = self.query(redact_instructions(timeline_text) or "nothing observed")
        return self.matrix(labelset, descriptions) @ query


def shortlist(sims: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` most similar labels, best first."""
    n = min(n, len(sims))
    return np.argsort(-sims, kind="stable")[:n]


def _read_vectors(path: Path, n: int) -> np.ndarray | None:
    """The ``[n, dim]`` matrix in ``path``, or None when absent; a damaged file is said and ignored."""
    raw = read_cached(path, "text embeddings", log, "computing them again")
    if raw is None:
        return None
    body, tag, digest = raw.rpartition(CHECK_TAG)
    try:
        if not tag or hashlib.sha256(body).hexdigest() != digest.decode("ascii", "replace"):
            raise ValueError("its SHA-256 does not match its content")
        matrix = np.load(io.BytesIO(body), allow_pickle=False)
    except (OSError, ValueError) as exc:
        log.warning("text embeddings %s unreadable (%s); computing them again", path, exc)
        return None
    if matrix.ndim != 2 or len(matrix) != n or not np.isfinite(matrix).all():
        log.warning("text embeddings %s do not fit %d texts; computing them again", path, n)
        return None
    return matrix


def _write_vectors(path: Path, matrix: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, matrix, allow_pickle=False)
    body = buf.getvalue()
    try:
        write_atomically(path, body + CHECK_TAG + hashlib.sha256(body).hexdigest().encode("ascii"))
    except OSError as exc:  # a read-only home only costs the next process the embedding time
        log.warning("could not keep text embeddings in %s: %s", path, exc)
