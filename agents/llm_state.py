"""Saved llama.cpp KV state of a fixed prompt prefix, so a new process loads it instead of decoding it.

Every classification prompt starts with the same instructions (the system
message and the head of the user turn). :class:`_BatchScorer
<vidsense.agents.llm._BatchScorer>` keeps them in its KV cache within a
process; this module carries them across processes: the state of sequence 0
right after the prefix is decoded is written once per model and prefix, and
a fresh context reads it back (a memory copy, against a prefill at about 100
tokens a second on 2 cores).

File layout: magic, format, token count, the prefix tokens (int32), the
SHA-256 of the payload, the payload (``llama_state_seq_get_data``). A file
that fails any check, or that llama.cpp refuses, is ignored with a warning:
the caller decodes the prefix and writes the file again.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vidsense.services.files import read_cached, write_atomically

log = logging.getLogger(__name__)

MAGIC = b"VSKV"
# Bumped when the layout changes; llama.cpp versions its own payload (and the model key holds its version).
STATE_FORMAT = 1
_HEAD = struct.Struct("<4sII")


def states_dir(home: Path) -> Path:
    """Where prefix states of the models under model home ``home`` are stored."""
    return Path(home) / "llm-state"


def tokens_digest(tokens: Sequence[int]) -> str:
    """A short hash of a token sequence (names the file of its state)."""
    return hashlib.sha256(struct.pack(f"<{len(tokens)}i", *tokens)).hexdigest()[:16]


@dataclass(frozen=True)
class PrefixStates:
    """The saved prefix states of one model.

    Attributes:
        root: the folder (see :func:`states_dir`).
        model_key: what identifies the model's weights (and the llama.cpp build), used in file names.
    """

    root: Path
    model_key: str

    def path(self, tokens: Sequence[int]) -> Path:
        """The state file of prefix ``tokens``."""
        return Path(self.root) / f"{self.model_key}-{tokens_digest(tokens)}.bin"

    def save(self, ctx: Any, seq: int, tokens: Sequence[int]) -> Path | None:
        """Write the KV state of sequence ``seq`` of llama.cpp context ``ctx``, which holds exactly ``tokens``.

        Returns:
            The file, or ``None`` when it could not be written (logged: the state is an optimisation).
        """
        import llama_cpp

        path = self.path(tokens)
        size = llama_cpp.llama_state_seq_get_size(ctx, seq)
        buf = (ctypes.c_uint8 * size)()
        n = llama_cpp.llama_state_seq_get_data(ctx, buf, size, seq)
        if n == 0:
            log.warning("llama.cpp returned no state for sequence %d; not saving the prefix", seq)
            return None
        payload = memoryview(buf)[:n].tobytes()
        head = _HEAD.pack(MAGIC, STATE_FORMAT, len(tokens)) + struct.pack(f"<{len(tokens)}i", *tokens)
        try:
            write_atomically(path, head + hashlib.sha256(payload).digest() + payload)
        except OSError as exc:
            log.warning("%s: cannot store the prompt prefix state (%s)", path, exc)
            return None
        return path

    def load(self, ctx: Any, seq: int, tokens: Sequence[int]) -> bool:
        """Restore the state of prefix ``tokens`` into the empty sequence ``seq`` of ``ctx``.

        Returns:
            Whether it was restored; on ``False`` the sequence is left empty and the caller decodes.
        """
        import llama_cpp

        path = self.path(tokens)
        raw = read_cached(path, "the prompt prefix state", log, "decoding the prefix")
        if raw is None:
            return False
        payload = self._payload(raw, tokens)
        if payload is None:
            log.warning("%s: damaged or mismatched prompt prefix state; decoding the prefix", path)
            return False
        buf = (ctypes.c_uint8 * len(payload)).from_buffer_copy(payload)
        if llama_cpp.llama_state_seq_set_data(ctx, buf, len(payload), seq) == 0:
            # Written by a context with other settings (cache type, size): llama.cpp checks the layout.
            log.warning("%s: llama.cpp refused the prompt prefix state; decoding the prefix", path)
            llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx), seq, -1, -1)
            return False
        return True

    @staticmethod
    def _payload(raw: bytes, tokens: Sequence[int]) -> bytes | None:
        """The llama.cpp payload of a state file, or ``None`` when the file is not the state of ``tokens``."""
        if len(raw) < _HEAD.size:
            return None
        magic, fmt, n = _HEAD.unpack_from(raw)
        start = _HEAD.size + 4 * n
        if magic != MAGIC or fmt != STATE_FORMAT or n != len(tokens) or len(raw) < start + 32:
            return None
        if list(struct.unpack_from(f"<{n}i", raw, _HEAD.size)) != list(tokens):
            return None
        digest, payload = raw[start : start + 32], raw[start + 32 :]
        return payload if payload and hashlib.sha256(payload).digest() == digest else None
