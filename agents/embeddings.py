"""Sentence embeddings (bundled all-MiniLM-L6-v2 by default).

The shortlist, the embedding-only reasoner, label descriptions and the concept
activations all embed text with the same model. The room that owns it (the
Reasoner) loads one encoder and hands it to the others, so the model is loaded
once per Pipeline and no module keeps it in a global.

Two backends give the same vectors (within 1e-4): :class:`OnnxSentenceEncoder`
runs the model exported once to ONNX with the model's own ``tokenizer.json``,
importing neither torch nor transformers, so a new process has it in a fraction
of a second (sentence-transformers took 5 s to import and load on 2 cores);
:class:`SentenceEncoder` is sentence-transformers itself, for models the ONNX
path does not cover (any pooling but the mean, any module beyond it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from vidsense.services.model_store import ModelEnv, weights_sha256

log = logging.getLogger(__name__)
# Where the ONNX exports live, under $VIDSENSE_HOME, one per model's weights.
ONNX_DIR = Path("cache") / "encoders"


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


# The sentence-transformers layout the ONNX path reproduces: a transformer, mean pooling, then L2
# normalisation (the class names; their module paths moved between sentence-transformers releases).
_ONNX_MODULES = ("Transformer", "Pooling", "Normalize")


def onnx_compatible(folder: Path) -> bool:
    """True when ``folder`` is a sentence-transformers model the ONNX path computes exactly:
    a transformer with a ``tokenizer.json``, mean pooling, L2 normalisation."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        pooling = json.loads((folder / next(m["path"] for m in modules if m["type"].endswith("Pooling")) / "config.json").read_text())
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        return False
    if "pooling_mode" in pooling:  # sentence-transformers 6 writes the mode by name
        mean_only = pooling["pooling_mode"] == "mean" and pooling.get("include_prompt", True)
    else:
        mean_only = pooling.get("pooling_mode_mean_tokens") and not any(v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
    kinds = tuple(str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules)
    return kinds == _ONNX_MODULES and bool(mean_only) and (folder / "tokenizer.json").is_file()


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def max_seq_length(folder: Path) -> int:
    """The token limit sentence-transformers applies to the model in ``folder``.

    Where each release writes it: ``sentence_bert_config.json`` (up to 5), the tokenizer's
    ``model_max_length`` (6), else the model's position embeddings.
    """
    found = _json(folder / "sentence_bert_config.json").get("max_seq_length")
    if found is None:
        limit = _json(folder / "tokenizer_config.json").get("model_max_length")
        found = limit if isinstance(limit, int) and limit < 100_000 else None
    if found is None:
        found = _json(folder / "config.json").get("max_position_embeddings", 512)
    return int(found)


def export_onnx(folder: Path, out: Path) -> Path:
    """Export the transformer of the sentence-transformers model in ``folder`` to ONNX at ``out``
    (token embeddings; pooling and normalisation stay in numpy). Needs torch and transformers, once.

    The file is written beside and renamed into place, so a reader never sees half of it.
    """
    import torch
    from transformers import AutoModel

    class TokenEmbeddings(torch.nn.Module):
        # By keyword: the positional order of a transformers model's forward is not stable across releases.
        def __init__(self) -> None:
            super().__init__()
            self.model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()

        def forward(self, input_ids: "torch.Tensor", attention_mask: "torch.Tensor", token_type_ids: "torch.Tensor") -> "torch.Tensor":
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    model = TokenEmbeddings().eval()
    ids = torch.ones((2, 8), dtype=torch.long)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        with torch.inference_mode():
            torch.onnx.export(
                model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(tmp),
                input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["token_embeddings"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids", "token_embeddings")},
                opset_version=17, dynamo=False,
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


class OnnxSentenceEncoder:
    """A mean-pooled, normalised sentence-transformers model run with ONNX Runtime and ``tokenizers``.

    Args:
        folder: the sentence-transformers folder (its ``tokenizer.json`` and ``sentence_bert_config.json``).
        onnx: the transformer exported by :func:`export_onnx`.
        name: what activations and caches call it.
        batch_size: sentences per forward pass.
    """

    def __init__(self, folder: Path, onnx: Path, *, name: str, batch_size: int = 64) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = name
        self.batch_size = batch_size
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # sentence-transformers truncates at the model's max_seq_length and pads to the longest in
        # the batch, whatever tokenizer.json was saved with (all-MiniLM-L6-v2's says 128, fixed).
        self._tokenizer.enable_truncation(max_seq_length(folder))
        pad = self._tokenizer.padding or {}
        self._tokenizer.enable_padding(pad_id=int(pad.get("pad_id", 0)), pad_token=str(pad.get("pad_token", "[PAD]")))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings, shape ``[len(texts), dim]`` (float32)."""
        out = np.zeros((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer.encode_batch(list(texts[start : start + self.batch_size]))
            feeds = {
                "input_ids": np.array([e.ids for e in batch], np.int64),
                "attention_mask": np.array([e.attention_mask for e in batch], np.int64),
                "token_type_ids": np.array([e.type_ids for e in batch], np.int64),
            }
            tokens = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            out[start : start + len(batch)] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


def onnx_path(folder: Path, env: ModelEnv, reference: str) -> Path:
    """Where the ONNX export of ``reference``'s weights lives (a new export when the weights change)."""
    digest = weights_sha256(reference, env.home) if reference else ""
    digest = digest if not digest.startswith("hub:") else ""
    key = (digest or str(folder.resolve())).encode()
    return Path(env.home) / ONNX_DIR / f"{folder.name}-{hashlib.sha256(key).hexdigest()[:16]}.onnx"


def load_sentence_encoder(reference: str, env: ModelEnv) -> TextEncoder:
    """The sentence encoder ``reference`` names (a store name, a local path, or a hub id with ``allow_hub``).

    On a CPU, a model the ONNX path covers runs as :class:`OnnxSentenceEncoder` (exported on first
    use, under ``$VIDSENSE_HOME/cache/encoders``); anything else, or a failed export, as
    :class:`SentenceEncoder`.

    Raises:
        InputError: the reference is neither a bundled model nor a local path (hub off).
    """
    path = env.resolve(reference, role="embedding")
    folder = Path(path)
    if env.device == "cpu" and folder.is_dir() and onnx_compatible(folder):
        onnx = onnx_path(folder, env, reference)
        try:
            if not onnx.is_file():
                export_onnx(folder, onnx)
            return OnnxSentenceEncoder(folder, onnx, name=reference)
        except Exception as exc:  # noqa: BLE001 - the sentence-transformers path still works
            log.warning("sentence encoder %s: ONNX path unavailable (%s: %s); using sentence-transformers", reference, type(exc).__name__, exc)
    return SentenceEncoder(path, env.device, name=reference)
