"""Sentence embeddings (bundled all-MiniLM-L6-v2 by default).

The shortlist, the embedding-only reasoner, label descriptions and the concept
activations all embed text with the same model. The room that owns it (the
Reasoner) loads one :class:`SentenceEncoder` and hands it to the others, so the
model is loaded once per Pipeline and no module keeps it in a global.
"""

from __future__ import annotations

import threading
from typing import Protocol, Sequence

import numpy as np

from vidsense.services.model_store import ModelEnv


class TextEncoder(Protocol):
    """Anything that embeds sentences: ``encode(texts) -> [n, d]`` L2-normalised float32.

    ``name`` identifies the model in cache keys and explanations.
    """

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class SentenceEncoder:
    """A sentence-transformers model behind ``encode(texts) -> [n, d]`` (L2-normalised float32).

    Args:
        path: a local sentence-transformers folder (or a hub id, resolved by the caller).
        device: ``cpu`` or ``cuda``.
        name: what activations and caches call it (default: ``path``).
        batch_size: sentences per forward pass.
    """

    def __init__(self, path: str, device: str = "cpu", *, name: str | None = None, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name or path
        self.batch_size = batch_size
        self._model = SentenceTransformer(path, device=device)
        # encode() is not safe to call from two threads at once on one model (batch workers share it).
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Width of one embedding."""
        return int(self._model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings, shape ``[len(texts), dim]`` (float32)."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            vecs = self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)


def load_sentence_encoder(reference: str, env: ModelEnv) -> SentenceEncoder:
    """The sentence encoder ``reference`` names (a store name, a local path, or a hub id with ``allow_hub``).

    Raises:
        InputError: the reference is neither a bundled model nor a local path (hub off).
    """
    path = env.resolve(reference, role="embedding")
    return SentenceEncoder(path, env.device, name=reference)
