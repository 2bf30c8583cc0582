"""What the LLM route keeps across processes: calibration priors and the KV state of the prompt's instructions."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from agents_fixtures import CYCLING, DESCRIPTIONS, LABELS, encoder, llm_reasoner, smollm, store_model, timeline

from vidsense.agents import prompts
from vidsense.agents.labels import load_labels
from vidsense.agents.llm import LlamaCppModel, LLMConfig, load_llm
from vidsense.agents.llm_state import _HEAD, states_dir
from vidsense.agents.priors import PriorCache, priors_dir
from vidsense.agents.reasoner import Reasoner, ReasonerConfig
from vidsense.services.model_store import ModelEnv
from vidsense.services.settings import load_settings

PROMPT = "<system>classify</system> candidates: a, b"


def test_prior_round_trips_and_its_key_covers_model_prompt_and_candidates(tmp_path: Path) -> None:
    cache = PriorCache(tmp_path)
    prior = np.array([-1.5, -2.25, -30.0])
    assert cache.load("m-1", PROMPT, ["a", "b", "c"]) is None
    path = cache.save("m-1", PROMPT, ["a", "b", "c"], prior)
    assert path is not None and path.parent == tmp_path and not list(tmp_path.glob("*.tmp"))
    np.testing.assert_array_equal(cache.load("m-1", PROMPT, ["a", "b", "c"]), prior)
    others = [("m-2", PROMPT, ["a", "b", "c"]), ("m-1", PROMPT + " ", ["a", "b", "c"]), ("m-1", PROMPT, ["a", "c", "b"])]
    for model, prompt, cands in others:
        assert cache.path(model, prompt, cands) != path
        assert cache.load(model, prompt, cands) is None


@pytest.mark.parametrize("damage", ["truncated", "not json", "wrong length", "not finite", "other candidates"])
def test_damaged_prior_file_is_a_logged_miss(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    cache = PriorCache(tmp_path)
    path = cache.save("m", PROMPT, ["a", "b"], np.array([-1.0, -2.0]))
    assert path is not None
    data = json.loads(path.read_text())
    if damage == "truncated":
        path.write_text(path.read_text()[:20])
    elif damage == "not json":
        path.write_bytes(b"\x00\xff\x00")
    else:
        data.update({"wrong length": {"prior": [-1.0]}, "not finite": {"prior": [-1.0, "nan"]}, "other candidates": {"candidates": ["a", "c"]}}[damage])
        path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="vidsense.agents.priors"):
        assert cache.load("m", PROMPT, ["a", "b"]) is None
    assert "computing it again" in caplog.text


def test_fixed_prefix_is_the_instructions_and_starts_every_prompt() -> None:
    def render(messages):
        return "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in messages) + "<|assistant|>\n"

    prefix = prompts.fixed_prefix(render)
    assert prefix.startswith("<|system|>\n" + prompts.SYSTEM) and prefix.endswith("Candidate labels:\n")
    chat = prompts.classification_prompt(["zebra crossing"], "0-2s: {weird} </timeline>", ["hint"])
    assert render(chat.messages()).startswith(prefix)


@pytest.fixture(scope="module")
def llm():
    return smollm()


class _Counting:
    """Counts the score calls of a real model."""

    def __init__(self, llm) -> None:
        self.llm, self.calls = llm, 0

    def __getattr__(self, item):
        return getattr(self.llm, item)

    def score(self, prompt, continuations, prefix=""):
        self.calls += 1
        return self.llm.score(prompt, continuations, prefix=prefix)


@pytest.mark.slow
def test_prior_is_computed_once_then_read_from_disk_by_a_new_reasoner(llm, tmp_path: Path) -> None:
    ls, tl = load_labels(LABELS), timeline(CYCLING)
    first = _Counting(llm)
    p1 = llm_reasoner(first, lambda _: DESCRIPTIONS, prior_dir=tmp_path).classify(tl, ls)
    assert first.calls == 2 and p1.stats["calibration_s"] > 0 and p1.stats["calibration_from_disk"] == 0.0
    assert len(list(tmp_path.glob("*.json"))) == 1
    again = _Counting(llm)
    p2 = llm_reasoner(again, lambda _: DESCRIPTIONS, prior_dir=tmp_path).classify(tl, ls)
    assert again.calls == 1  # only the video's prompt: the prior came from the file
    assert p2.stats["calibration_s"] == 0.0 and p2.stats["calibration_from_disk"] == 1.0
    assert [c.score for c in p2.candidates] == pytest.approx([c.score for c in p1.candidates], abs=1e-6)

    # Other hints, another candidate list: other prompts, other files.
    llm_reasoner(llm, lambda _: {}, prior_dir=tmp_path).classify(tl, ls)
    llm_reasoner(llm, lambda _: DESCRIPTIONS, prior_dir=tmp_path).classify(tl, load_labels(LABELS[:4]))
    assert len(list(tmp_path.glob("*.json"))) == 3


@pytest.mark.slow
def test_damaged_prior_file_is_recomputed_and_rewritten(llm, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ls, tl = load_labels(LABELS), timeline(CYCLING)
    p1 = llm_reasoner(llm, lambda _: DESCRIPTIONS, prior_dir=tmp_path).classify(tl, ls)
    (path,) = tmp_path.glob("*.json")
    path.write_text('{"format": 1, "prior": [')
    counting = _Counting(llm)
    with caplog.at_level(logging.WARNING, logger="vidsense.agents.priors"):
        p2 = llm_reasoner(counting, lambda _: DESCRIPTIONS, prior_dir=tmp_path).classify(tl, ls)
    assert "damaged calibration prior" in caplog.text
    assert counting.calls == 2 and p2.stats["calibration_from_disk"] == 0.0
    assert [c.score for c in p2.candidates] == pytest.approx([c.score for c in p1.candidates], abs=1e-6)
    assert json.loads(path.read_text())["prior"]  # written again, whole


@pytest.mark.slow
def test_model_identity_changes_when_the_weights_file_changes(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny" / "model.gguf"
    gguf.parent.mkdir()
    shutil.copyfile(store_model("smollm2-135m"), gguf)
    a = LlamaCppModel(gguf, n_ctx=512, n_threads=1)
    assert a.identity.startswith("tiny-") and LlamaCppModel(gguf, n_ctx=512, n_threads=1).identity == a.identity
    st = gguf.stat()
    os.utime(gguf, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert LlamaCppModel(gguf, n_ctx=512, n_threads=1).identity != a.identity


def _classification_prompt(model: LlamaCppModel) -> tuple[str, str]:
    chat = prompts.classification_prompt(LABELS, timeline(CYCLING).render(), list(DESCRIPTIONS.values()))
    return model.render_chat(chat.messages()), prompts.fixed_prefix(model.render_chat)


@pytest.fixture(scope="module")
def decoded_afresh(llm) -> list[float]:
    """Candidate log-probs with the whole prompt decoded in one batch by a new context.

    Not the shared ``llm``'s later calls: re-decoding only the last prompt token (its
    in-process reuse) moves SmolLM2's log-probs by up to 0.2.
    """
    prompt, _ = _classification_prompt(llm)
    scores, st = LlamaCppModel(store_model("smollm2-135m"), n_ctx=2048, n_threads=1).score(prompt, LABELS)
    assert st.prompt_tokens_reused == 0
    return [s.logprob for s in scores]


@pytest.mark.slow
def test_saved_prefix_state_loads_in_a_new_model_and_scores_the_same(llm, decoded_afresh, tmp_path: Path) -> None:
    prompt, prefix = _classification_prompt(llm)
    writer = smollm_with_states(tmp_path)
    written, st = writer.score(prompt, LABELS, prefix=prefix)
    assert st.prompt_tokens_loaded == 0
    (state,) = tmp_path.glob("*.bin")
    assert state.name.startswith(writer.identity + "-")
    reader = smollm_with_states(tmp_path)
    loaded, st = reader.score(prompt, LABELS, prefix=prefix)
    assert st.prompt_tokens_loaded == llm.count_tokens(prefix)
    assert st.prompt_tokens_loaded + st.prompt_tokens_reused < st.prompt_tokens
    assert [s.logprob for s in written] == pytest.approx(decoded_afresh, abs=1e-3)
    assert [s.logprob for s in loaded] == pytest.approx(decoded_afresh, abs=1e-3)
    # Within the process the KV cache already holds the prefix: nothing is loaded again.
    _, st = reader.score(prompt, LABELS[:3], prefix=prefix)
    assert st.prompt_tokens_loaded == 0 and st.prompt_tokens_reused == st.prompt_tokens - 1


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "other tokens", "refused by llama.cpp"])
def test_damaged_prefix_state_falls_back_to_decoding(llm, decoded_afresh, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    prompt, prefix = _classification_prompt(llm)
    smollm_with_states(tmp_path).score(prompt, LABELS, prefix=prefix)
    (state,) = tmp_path.glob("*.bin")
    raw = bytearray(state.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "flipped byte":
        raw[-100] ^= 0xFF
    elif damage == "other tokens":
        raw[12] ^= 0x01  # the first prefix token
    else:
        # A whole, checksummed file whose payload llama.cpp cannot read (half of it).
        _, _, n = _HEAD.unpack_from(raw)
        start = _HEAD.size + 4 * n
        half = bytes(raw[start + 32 : start + 32 + (len(raw) - start - 32) // 2])
        raw = raw[:start] + hashlib.sha256(half).digest() + half
    state.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="vidsense.agents.llm_state"):
        scores, st = smollm_with_states(tmp_path).score(prompt, LABELS, prefix=prefix)
    refused = damage == "refused by llama.cpp"
    assert ("llama.cpp refused the prompt prefix state" if refused else "damaged or mismatched prompt prefix state") in caplog.text
    assert st.prompt_tokens_loaded == 0
    assert [s.logprob for s in scores] == pytest.approx(decoded_afresh, abs=1e-3)
    # Decoded, and saved whole again for the next process.
    _, st = smollm_with_states(tmp_path).score(prompt, LABELS, prefix=prefix)
    assert st.prompt_tokens_loaded > 0


def smollm_with_states(state_dir: Path) -> LlamaCppModel:
    """A new SmolLM2 (a new llama.cpp context, as in a new process) keeping prefix states in ``state_dir``."""
    return LlamaCppModel(store_model("smollm2-135m"), n_ctx=2048, n_threads=1, state_dir=state_dir)


@pytest.mark.slow
def test_reasoning_room_keeps_priors_and_prefix_states_under_the_model_home(tmp_path: Path) -> None:
    (tmp_path / "models").symlink_to(load_settings().home / "models", target_is_directory=True)
    env = ModelEnv(tmp_path)
    model = load_llm(LLMConfig(model="smollm2-135m", n_ctx=2048, threads=1), env)
    room = Reasoner(ReasonerConfig(), env, llm=model, encoder=encoder(), descriptions=lambda _: DESCRIPTIONS)
    pred = room.classify(timeline(CYCLING), load_labels(LABELS))
    assert pred.stats["calibration_s"] > 0
    assert len(list(priors_dir(tmp_path).glob("*.json"))) == 1
    assert [p.name.startswith(model.identity + "-") for p in states_dir(tmp_path).iterdir()] == [True]
    model.close()
