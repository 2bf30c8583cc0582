"""Language-model backends, picked by name from :data:`LLM_BACKENDS`.

A backend does three things the reasoner needs: apply the model's chat
template, score candidate continuations of a prompt (log-likelihood, the
prompt evaluated once and its KV cache reused for every candidate), and
generate short text (justifications, label descriptions).
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from vidsense.agents.llm_state import PrefixStates, states_dir
from vidsense.services import model_store
from vidsense.services.errors import InputError, ModelError, ProcessingError
from vidsense.services.registry import resolve

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ContinuationScore:
    """Log-likelihood of one continuation given the prompt.

    Attributes:
        text: the continuation.
        logprob: sum of the token log-probabilities (terminator included).
        n_tokens: tokens scored.
    """

    text: str
    logprob: float
    n_tokens: int


@dataclass(frozen=True)
class LLMStats:
    """What one scoring call cost."""

    prompt_tokens: int
    prompt_tokens_reused: int
    scored_tokens: int
    prompt_s: float
    scoring_s: float
    prompt_tokens_loaded: int = 0


class LanguageModel(Protocol):
    """The interface the reasoner uses; see :class:`LlamaCppModel`."""

    name: str
    n_ctx: int
    # What changes when the weights change ('' when unknown: then nothing derived from the model is kept on disk).
    identity: str

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The chat-templated prompt text, ending where the assistant's answer starts."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes."""
        ...

    def score(self, prompt: str, continuations: Sequence[str], prefix: str = "") -> tuple[list[ContinuationScore], LLMStats]:
        """Log-likelihood of each continuation after ``prompt``.

        ``prefix``: the start of ``prompt`` that every prompt of its kind shares (the
        instructions); a backend may keep its evaluation across calls and processes.
        """
        ...

    def generate(self, messages: list[dict[str, str]], max_tokens: int = 96, grammar: str | None = None) -> str:
        """Greedy chat completion."""
        ...


def check_gguf(path: Path) -> None:
    """Fail early, with one line, on a path that is not a GGUF model file."""
    if not path.exists():
        raise InputError(f"{path}: LLM model file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a .gguf model file")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise InputError(f"{path}: not a GGUF model file (bad magic bytes)")
    version = struct.unpack("<I", head[4:8])[0]
    if version not in (1, 2, 3):
        raise InputError(f"{path}: unsupported GGUF version {version}")


class LlamaCppModel:
    """A local GGUF model through llama-cpp-python.

    Scoring runs in a second llama.cpp context (see :class:`_BatchScorer`);
    generation uses llama-cpp-python's own.

    Args:
        state_dir: where the KV state of a prompt's fixed prefix is saved and
            loaded across processes (see :mod:`vidsense.agents.llm_state`);
            ``None`` decodes it once per process.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        seed: int = 0,
        state_dir: Path | None = None,
    ) -> None:
        import llama_cpp
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = Path(model_path)
        check_gguf(path)
        try:
            self._llm = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=512,
                n_threads=n_threads,
                n_gpu_layers=n_gpu_layers,
                seed=seed,
                logits_all=False,
                verbose=False,
            )
        except Exception as exc:  # llama.cpp reports load failures as ValueError/RuntimeError
            raise ModelError(f"{path}: cannot load GGUF model ({exc})") from None
        self.name = path.stem if path.stem != "model" else path.parent.name
        self.path = path
        # Size and mtime change whenever the store writes new weights (hashing 1 GB would cost
        # more than what is cached); the llama.cpp version because it may change the numbers.
        st = path.stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}:{llama_cpp.__version__}"
        self.identity = f"{self.name}-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}"
        self._states = PrefixStates(Path(state_dir), self.identity) if state_dir is not None else None
        self.n_ctx = self._llm.n_ctx()
        meta = self._llm.metadata
        template = meta.get("tokenizer.chat_template")
        vocab = self._llm._model
        self._eos_id = self._llm.token_eos()
        eos = vocab.token_get_text(self._eos_id) if self._eos_id >= 0 else ""
        bos_id = self._llm.token_bos()
        bos = vocab.token_get_text(bos_id) if bos_id >= 0 else ""
        if not template:
            raise ModelError(f"{path}: GGUF has no chat template (a base model?); use an instruct/chat model")
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True)
        self._end_ids = self._answer_end_ids()
        self._lock = threading.Lock()
        self._scorer: _BatchScorer | None = None
        # llama-cpp-python frees its model in __del__ during interpreter shutdown, when the
        # module globals it needs are already gone, and prints a TypeError; closing first
        # (at exit, or when this object is collected) avoids it. The finalizer holds the
        # llama.cpp objects, not ``self``, so an unused model can still be collected.
        self._contexts: list[Any] = [self._llm]
        self._finalizer = weakref.finalize(self, _close_contexts, self._contexts)

    def _answer_end_ids(self) -> list[int]:
        """Tokens that close an assistant answer in this chat format (e.g. ``<|im_end|>``)."""
        probe = self._formatter(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "ANSWER"}]).prompt
        tail = probe.split("ANSWER", 1)[1] if "ANSWER" in probe else ""
        ids = self._tok(tail.strip("\n"), special=True) if tail.strip() else []
        return ids[:1] if ids else [self._eos_id]

    def _tok(self, text: str, special: bool = True, add_bos: bool = False) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        return self._formatter(messages=messages).prompt

    def count_tokens(self, text: str) -> int:
        return len(self._tok(text))

    def score(self, prompt: str, continuations: Sequence[str], prefix: str = "") -> tuple[list[ContinuationScore], LLMStats]:
        p_tokens = self._tok(prompt)
        # Only the tokens the prefix shares with the prompt: the prefix's last token may merge
        # differently with what follows it.
        n_fixed = _common_length(self._tok(prefix), p_tokens) if prefix and self._states is not None else 0
        cand_tokens = [self._tok(c, special=False) + self._end_ids for c in continuations]
        longest = max((len(t) for t in cand_tokens), default=0)
        if len(p_tokens) + longest > self.n_ctx:
            raise ProcessingError(f"prompt of {len(p_tokens)} tokens does not fit the context window of {self.n_ctx}")
        with self._lock:
            if self._scorer is None:
                self._scorer = _BatchScorer(self._llm, self._states)
                self._contexts.insert(0, self._scorer.ctx)
            return self._scorer.score(p_tokens, cand_tokens, list(continuations), n_fixed)

    def close(self) -> None:
        """Free the llama.cpp contexts and the model (scorer first: it shares the model)."""
        with self._lock:
            self._scorer = None
            self._finalizer()

    def generate(self, messages: list[dict[str, str]], max_tokens: int = 96, grammar: str | None = None) -> str:
        kwargs: dict[str, Any] = {}
        if grammar:
            from llama_cpp import LlamaGrammar

            kwargs["grammar"] = LlamaGrammar.from_string(grammar, verbose=False)
        with self._lock:
            out = self._llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0, **kwargs)
        return (out["choices"][0]["message"].get("content") or "").strip()


class _BatchScorer:
    """Scores many continuations of one prompt in a single llama.cpp decode.

    It owns a llama.cpp context whose KV cache is shared by many sequences: the
    prompt is decoded once into sequence 0 (keeping the common prefix with the
    previous prompt, so a fixed system prompt and candidate list are not
    re-evaluated), each candidate gets a copy of that sequence (a metadata
    operation, no recompute) and all candidates' tokens go through the model
    together, with logits at every position. Then the copies are dropped.

    With ``states``, the prompt's fixed prefix (its first ``n_fixed`` tokens) is
    restored from a saved state when sequence 0 does not hold it, and saved
    after it is decoded when there was none.
    """

    MAX_SEQS = 64

    def __init__(self, llm, states: PrefixStates | None = None) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._lc = llama_cpp
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_seq_max = self.MAX_SEQS
        params.kv_unified = True
        self.ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self.n_ctx = llm.n_ctx()
        self.n_batch = llm.n_batch
        self.n_vocab = llm.n_vocab()
        self.batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1, verbose=False)
        self.states = states
        self.tokens: list[int] = []

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> None:
        """Decode (token, position, sequence, want_logits) items as one batch."""
        b = self.batch.batch
        b.n_tokens = len(items)
        for i, (tok, pos, seq, want) in enumerate(items):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = want
        self.ctx.decode(self.batch)

    def _row(self, i: int) -> np.ndarray:
        return np.ctypeslib.as_array(self._lc.llama_get_logits_ith(self.ctx.ctx, i), shape=(self.n_vocab,)).copy()

    def _prefill(self, tokens: list[int], n_fixed: int = 0) -> tuple[np.ndarray, int, int]:
        """Bring sequence 0 to ``tokens``; returns the last token's logits, tokens kept and tokens loaded."""
        # The last prompt token is always decoded again so that its logits exist.
        common = min(_common_length(self.tokens, tokens), len(tokens) - 1)
        n_fixed = min(n_fixed, len(tokens) - 1)
        reused, loaded = common, 0
        if self.states is not None and common < n_fixed:
            # Sequence 0 lacks the instructions (a new context): restore them, or decode and save them.
            # A state loads only into an empty sequence, so what was kept is dropped.
            fixed = tokens[:n_fixed]
            self._lc.llama_memory_seq_rm(self.ctx.memory, 0, -1, -1)
            self.tokens = []
            reused = 0
            if self.states.load(self.ctx.ctx, 0, fixed):
                self.tokens, loaded = fixed, n_fixed
            else:
                self._extend(fixed, 0)
                self.states.save(self.ctx.ctx, 0, fixed)
            common = n_fixed
        self._lc.llama_memory_seq_rm(self.ctx.memory, 0, common, -1)
        self.tokens = tokens[:common]
        last = self._extend(tokens, common)
        assert last is not None
        return last, reused, loaded

    def _extend(self, tokens: list[int], start: int) -> np.ndarray | None:
        """Decode ``tokens[start:]`` into sequence 0 (which holds ``tokens[:start]``); the last row's logits."""
        last = None
        for pos in range(start, len(tokens), self.n_batch):
            chunk = tokens[pos : pos + self.n_batch]
            self._decode([(t, pos + j, 0, j == len(chunk) - 1) for j, t in enumerate(chunk)])
            last = self._row(len(chunk) - 1)
            self.tokens.extend(chunk)
        return last

    def score(self, p_tokens: list[int], cand_tokens: list[list[int]], texts: list[str], n_fixed: int = 0) -> tuple[list[ContinuationScore], LLMStats]:
        n_past = len(p_tokens)
        room = min(self.n_batch, self.n_ctx - n_past)
        longest = max((len(t) for t in cand_tokens), default=0)
        if longest > room:
            raise ProcessingError(f"prompt of {n_past} tokens leaves no room in the context window of {self.n_ctx} to score the labels")
        t0 = time.perf_counter()
        first, reused, loaded = self._prefill(p_tokens, n_fixed)
        t1 = time.perf_counter()
        first_lp = _log_softmax(first)
        logps = [float(first_lp[toks[0]]) for toks in cand_tokens]
        scored = 0
        mem = self.ctx.memory
        pending = list(range(len(cand_tokens)))
        while pending:
            # Pack as many candidates as fit one batch and the free sequence ids.
            group: list[int] = []
            used = 0
            while pending and len(group) < self.MAX_SEQS - 1 and used + len(cand_tokens[pending[0]]) - 1 <= room:
                c = pending.pop(0)
                group.append(c)
                used += len(cand_tokens[c]) - 1
            items: list[tuple[int, int, int, bool]] = []
            owners: list[tuple[int, int]] = []  # (candidate, index of the token its row predicts)
            for seq, c in enumerate(group, start=1):
                self._lc.llama_memory_seq_cp(mem, 0, seq, 0, n_past)
                body = cand_tokens[c][:-1]
                for j, tok in enumerate(body):
                    items.append((tok, n_past + j, seq, True))
                    owners.append((c, j + 1))
            if items:
                self._decode(items)
                for row, (c, k) in enumerate(owners):
                    logps[c] += float(_log_softmax(self._row(row))[cand_tokens[c][k]])
                scored += len(items)
            for seq in range(1, len(group) + 1):
                self._lc.llama_memory_seq_rm(mem, seq, -1, -1)
        t2 = time.perf_counter()
        out = [ContinuationScore(text, lp, len(toks)) for text, lp, toks in zip(texts, logps, cand_tokens)]
        return out, LLMStats(len(p_tokens), reused, scored, t1 - t0, t2 - t1, loaded)


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common start of two token sequences."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _close_contexts(contexts: list[Any]) -> None:
    """Close llama.cpp objects in order (the scorer's context before the model it shares)."""
    for obj in contexts:
        obj.close()
    contexts.clear()


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64, copy=False)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class LLMConfig:
    """Which language model the reasoning room loads, and how.

    Attributes:
        backend: a key of :data:`LLM_BACKENDS`.
        model: a store name or GGUF path (``llama-cpp``), or the server's model name.
        n_ctx: context window in tokens.
        threads: llama.cpp CPU threads (``None``: its default).
        base_url / api_key / timeout_s: the ``openai-compatible`` server.
    """

    backend: str = "llama-cpp"
    model: str = ""
    n_ctx: int = 4096
    threads: int | None = None
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str = "not-needed"
    timeout_s: float = 60.0


def make_llama_cpp(config: LLMConfig, env: model_store.ModelEnv) -> LanguageModel:
    """A GGUF model through llama.cpp (the ``llama-cpp`` backend)."""
    if not config.model:
        raise InputError("llm_model is not set: point it at a GGUF file (the 'full' profile has no bundled LLM)")
    # A GGUF is always local: hub downloads of multi-GB LLMs are not something to do implicitly.
    path = Path(model_store.resolve(config.model, env.home, allow_hub=False, role="LLM"))
    gpu_layers = -1 if env.device == "cuda" else 0
    return LlamaCppModel(path, n_ctx=config.n_ctx, n_threads=config.threads, n_gpu_layers=gpu_layers, state_dir=states_dir(env.home))


def make_openai(config: LLMConfig, env: model_store.ModelEnv) -> LanguageModel:
    """A model behind an OpenAI-compatible server (the ``openai-compatible`` backend)."""
    from vidsense.agents.openai_backend import OpenAICompatibleModel  # langchain loads only for this backend

    return OpenAICompatibleModel(config.base_url, config.model or "default", api_key=config.api_key, n_ctx=config.n_ctx, timeout_s=config.timeout_s)


# name -> "module:attr" of a factory (config, env) -> LanguageModel (see services/registry.py).
LLM_BACKENDS: dict[str, str] = {
    "llama-cpp": "vidsense.agents.llm:make_llama_cpp",
    "openai-compatible": "vidsense.agents.llm:make_openai",
}


def load_llm(config: LLMConfig, env: model_store.ModelEnv) -> LanguageModel:
    """Load the language model ``config`` names (each call loads a new one: the caller owns it).

    Raises:
        InputError: unknown backend, or no model configured.
        ModelError: the model file cannot be loaded.
    """
    return resolve(LLM_BACKENDS, config.backend, "LLM backend")(config, env)
