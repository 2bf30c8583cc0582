"""The ``openai-compatible`` LLM backend: any server speaking the OpenAI API.

Covers OpenAI itself (GPT-3.5/4 as in the paper), vLLM, Ollama and llama.cpp's
servers (``python -m llama_cpp.server``). Chat and generation go through
LangChain's ``ChatOpenAI`` with ``base_url``. Candidate scoring needs the
log-likelihood of text the model did not write: it uses the completions
endpoint with ``echo=True`` and ``logprobs`` (llama-cpp-python's server and
vLLM support it; it needs the server's ``logits_all``, llama_cpp.server's
default). A probe checks the returned log-probs are aligned with the tokens
(llama-cpp-python's server shifts them by one, llama.cpp's server returns none);
where they are not, scoring falls back to one constrained generation
(``grammar``, a llama.cpp server extension, ignored elsewhere) whose answer
gets all the probability mass.

Connection failures and timeouts are retried a bounded number of times, then
reported in one line naming the server.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

from vidsense.agents.llm import ContinuationScore, LLMStats
from vidsense.agents.prompts import choice_grammar
from vidsense.services.errors import ProcessingError

log = logging.getLogger(__name__)

RETRIES = 2
# Log-probability given to candidates the fallback did not pick (a clear loser, not -inf).
UNCHOSEN_LOGPROB = -30.0
# Characters per token when the server cannot tokenize for us (English text, BPE).
CHARS_PER_TOKEN = 3.5
# ChatML: the template of Qwen, SmolLM2 and most small instruct models; used only
# to build the raw prompt the completions endpoint scores.
_CHATML = "<|im_start|>{role}\n{content}<|im_end|>\n"


class OpenAICompatibleModel:
    """An LLM behind an OpenAI-compatible HTTP API.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name the server expects (any name for a one-model llama.cpp server).
        api_key: the server's key (local servers accept anything).
        n_ctx: the server's context size (it does not report it).
        timeout_s: per-request timeout.
        retries: extra tries after a connection failure or timeout.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str = "not-needed", n_ctx: int = 4096, timeout_s: float = 60.0, retries: int = RETRIES) -> None:
        import openai
        from langchain_openai import ChatOpenAI

        self.base_url = base_url.rstrip("/")
        self.name = f"{model}@{self.base_url}"
        self.model = model
        self.n_ctx = n_ctx
        # A server can swap its weights behind the same name: nothing derived from it is kept on disk.
        self.identity = ""
        self.retries = retries
        self._openai = openai
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout_s, max_retries=retries)
        self._chat = ChatOpenAI(base_url=self.base_url, api_key=api_key, model=model, temperature=0.0, timeout=timeout_s, max_retries=retries)
        self._echo_ok: bool | None = None
        self._tokenize_ok: bool | None = None

    def _fail(self, exc: Exception) -> ProcessingError:
        kind = "timed out" if isinstance(exc, self._openai.APITimeoutError) else "is not reachable"
        return ProcessingError(f"LLM server {self.base_url} {kind} after {self.retries + 1} tries ({type(exc).__name__})")

    def _call(self, fn, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (self._openai.APIConnectionError, self._openai.APITimeoutError) as exc:
            raise self._fail(exc) from None

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        body = "".join(_CHATML.format(role=m["role"], content=m["content"]) for m in messages)
        return body + "<|im_start|>assistant\n"

    def count_tokens(self, text: str) -> int:
        if self._tokenize_ok is not False:
            n = self._server_tokens(text)
            if n is not None:
                return n
        return int(len(text) / CHARS_PER_TOKEN) + 1

    def _server_tokens(self, text: str) -> int | None:
        """llama_cpp.server's ``/extras/tokenize/count``; ``None`` where the server lacks it."""
        import httpx

        root = self.base_url.removesuffix("/v1")
        try:
            r = httpx.post(f"{root}/extras/tokenize/count", json={"input": text, "model": self.model}, timeout=10.0)
            self._tokenize_ok = r.status_code == 200
            return int(r.json()["count"]) if self._tokenize_ok else None
        except (httpx.HTTPError, ValueError, KeyError):
            self._tokenize_ok = False
            return None

    def score(self, prompt: str, continuations: Sequence[str], prefix: str = "") -> tuple[list[ContinuationScore], LLMStats]:
        # ``prefix`` needs nothing here: servers cache common prompt prefixes themselves.
        t0 = time.perf_counter()
        if self._echo_ok is None:
            self._echo_ok = self._probe_echo()
        if self._echo_ok:
            out = [self._echo_score(prompt, c) for c in continuations]
            return out, LLMStats(0, 0, sum(s.n_tokens for s in out), 0.0, time.perf_counter() - t0)
        return self._choice_score(prompt, continuations, t0)

    def _probe_echo(self) -> bool:
        """Whether the server returns usable prompt log-probs.

        Some servers refuse ``echo`` with ``logprobs`` (OpenAI's chat models),
        llama.cpp's own server returns only generated tokens, and
        llama-cpp-python's server pairs each prompt token with the
        distribution *after* it (abetlen/llama-cpp-python#1983). A counting
        sequence tells them apart: its later tokens are near-certain only when
        the log-probs are aligned.
        """
        text = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12"
        try:
            resp = self._call(self._client.completions.create, model=self.model, prompt=text, max_tokens=1, temperature=0.0, echo=True, logprobs=0)
        except self._openai.APIStatusError as exc:
            log.warning("%s: completions with echo+logprobs refused (%s); scoring by constrained generation", self.base_url, exc.status_code)
            return False
        lp = resp.choices[0].logprobs
        vals = [v for off, v in zip(lp.text_offset or [], lp.token_logprobs or []) if off >= text.index("7") and v is not None] if lp else []
        aligned = bool(vals) and sum(vals) / len(vals) > -2.0
        if not aligned:
            log.warning("%s: prompt log-probs missing or misaligned; scoring by constrained generation", self.base_url)
        return aligned

    def _echo_score(self, prompt: str, continuation: str) -> ContinuationScore:
        """Sum of the log-probs of the continuation's tokens (and the answer's end)."""
        end = "<|im_end|>"
        text = prompt + continuation + end
        resp = self._call(self._client.completions.create, model=self.model, prompt=text, max_tokens=1, temperature=0.0, echo=True, logprobs=0)
        lp = resp.choices[0].logprobs
        if lp is None or not lp.token_logprobs or not lp.text_offset:
            raise ProcessingError(f"LLM server {self.base_url}: completions returned no prompt logprobs (echo unsupported)")
        total, n = 0.0, 0
        # Tokens that start inside the continuation (prompt tokens end before it);
        # some servers append the one generated token, which lies past the text.
        for off, val in zip(lp.text_offset, lp.token_logprobs):
            if len(prompt) <= off < len(text) and val is not None:
                total += float(val)
                n += 1
        return ContinuationScore(continuation, total, n)

    def _choice_score(self, prompt: str, continuations: Sequence[str], t0: float) -> tuple[list[ContinuationScore], LLMStats]:
        resp = self._call(
            self._client.completions.create, model=self.model, prompt=prompt, max_tokens=48, temperature=0.0, extra_body={"grammar": choice_grammar(list(continuations))}
        )
        answer = (resp.choices[0].text or "").strip().split("\n")[0].strip()
        out = [ContinuationScore(c, 0.0 if c == answer else UNCHOSEN_LOGPROB, 0) for c in continuations]
        return out, LLMStats(0, 0, 0, 0.0, time.perf_counter() - t0)

    def generate(self, messages: list[dict[str, str]], max_tokens: int = 96, grammar: str | None = None) -> str:
        kwargs: dict[str, Any] = {"max_tokens": max_tokens}
        if grammar:
            kwargs["extra_body"] = {"grammar": grammar}
        try:
            msg = self._chat.invoke([(m["role"], m["content"]) for m in messages], **kwargs)
        except (self._openai.APIConnectionError, self._openai.APITimeoutError) as exc:
            raise self._fail(exc) from None
        return str(msg.content or "").strip()
