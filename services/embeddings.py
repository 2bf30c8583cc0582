"""Sentence embeddings (bundled all-MiniLM-L6-v2), loaded once per process.

The shortlist, the embedding-only reasoner and the concept activations all
embed text with the same model, so it lives here, behind one cached loader.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Sequence

import numpy as np

from vidsense.services import model_store

_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _load(path: str, device: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device)


def sentence_model(settings):
    """The configured sentence-transformers model (a store name or a local path)."""
    ref = model_store.resolve(settings.embedding_model, settings.home, allow_hub=settings.allow_hub, role="embedding")
    with _LOCK:
        return _load(ref, settings.resolved_device())


def embed(settings, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised embeddings, shape ``[len(texts), dim]`` (float32)."""
    model = sentence_model(settings)
    if len(texts) == 0:
        return np.zeros((0, model.get_sentence_embedding_dimension()), np.float32)
    vecs = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vecs, dtype=np.float32)
