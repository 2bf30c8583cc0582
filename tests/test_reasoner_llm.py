"""LLMReasoner plumbing with the tiny SmolLM2 model: scoring, calibration, grammar mode, bad input."""

import numpy as np
import pytest
from agents_fixtures import CYCLING, llm_reasoner, smollm, store_model, timeline

from vidsense.agents.labels import load_labels
from vidsense.agents.llm import LlamaCppModel, check_gguf
from vidsense.agents.prompts import choice_grammar
from vidsense.services.errors import InputError

LABELS = ["riding a bike", "swimming", "playing guitar", "archery", "cooking"]
DESCRIPTIONS = {
    "riding a bike": "A person pedals a bicycle along a road, wheels turning, traffic noise around.",
    "swimming": "A swimmer moves arms and legs through pool water with splashing sounds.",
    "playing guitar": "A person strums a guitar with one hand while fretting chords, music playing.",
    "archery": "A person draws a bow, aims and releases an arrow at a round target.",
    "cooking": "A person chops food and stirs a pan on a stove, sizzling sounds.",
}


@pytest.fixture(scope="module")
def llm():
    return smollm()


def _reasoner(llm, **kw):
    return llm_reasoner(llm, lambda ls: DESCRIPTIONS, **kw)


def test_grammar_escapes_quotes_and_backslashes():
    g = choice_grammar(['say "hi"', "a\\b"])
    assert g == 'root ::= "say \\"hi\\"" | "a\\\\b"\n'


def test_not_a_gguf_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 not a model at all")
    with pytest.raises(InputError, match="not a GGUF model file"):
        check_gguf(bad)
    with pytest.raises(InputError, match="not found"):
        LlamaCppModel(tmp_path / "missing.gguf")


@pytest.mark.slow
def test_scores_every_candidate_and_answers_from_the_set(llm):
    ls = load_labels(LABELS)
    pred = _reasoner(llm).classify(timeline(CYCLING), ls, top_k=3)
    assert pred.label in ls.labels and len(pred.top_k) == 3
    assert {c.label for c in pred.candidates} == set(ls.labels)
    assert abs(sum(c.score for c in pred.candidates) - 1.0) < 1e-3
    assert pred.stats["prompt_tokens"] > 0 and pred.stats["calibration_s"] > 0


@pytest.mark.slow
def test_calibration_prior_is_cached_and_changes_scores(llm):
    ls = load_labels(LABELS)
    tl = timeline(CYCLING)
    r = _reasoner(llm)
    r.classify(tl, ls)
    again = r.classify(tl, ls)
    assert again.stats["calibration_s"] == 0.0  # prior reused for the same candidate list
    raw = _reasoner(llm, calibration_weight=0.0).classify(tl, ls)
    assert not np.allclose([raw.probability(x) for x in LABELS], [again.probability(x) for x in LABELS])


@pytest.mark.slow
def test_grammar_strategy_answers_a_candidate(llm):
    ls = load_labels(LABELS)
    pred = _reasoner(llm, strategy="grammar").classify(timeline(CYCLING), ls)
    assert pred.label in ls.labels and pred.stats["generation_s"] > 0
    assert abs(sum(c.score for c in pred.candidates) - 1.0) < 1e-3


@pytest.mark.slow
def test_empty_timeline_gives_a_flagged_low_confidence_answer(llm):
    ls = load_labels(LABELS)
    pred = _reasoner(llm).classify(timeline([]), ls)
    assert pred.label in ls.labels and pred.low_confidence


@pytest.mark.slow
def test_modalities_limit_what_the_llm_reads(llm):
    ls = load_labels(LABELS)
    obs = [*CYCLING, (1, "speech", "", "let us cook pasta", 1.0)]
    r = _reasoner(llm)
    chat, prompt, _ = r.fit_prompt(list(ls.readable), timeline(obs), ["speech"])
    assert "pasta" in prompt and "bicycle" not in prompt.split("<timeline>")[1]


@pytest.mark.slow
def test_long_timeline_is_fitted_and_too_small_context_is_a_clear_error(llm):
    ls = load_labels(LABELS)
    long_obs = [(w, "sight", "objects", f"object{i} thing", 0.5) for w in range(60) for i in range(12)]
    small = LlamaCppModel(store_model("smollm2-135m"), n_ctx=512, n_threads=1)
    r = llm_reasoner(small, lambda ls: DESCRIPTIONS)
    pred = r.classify(timeline(long_obs, duration_s=120.0), ls)
    assert pred.label in ls.labels and pred.stats["prompt_tokens"] + 64 <= 512
    many = load_labels([f"activity number {i} with a long descriptive name" for i in range(40)])
    tiny = llm_reasoner(small, shortlist=40, hints=False)
    with pytest.raises(InputError, match="context of 512 tokens is too small"):
        tiny.classify(timeline(CYCLING), many)


@pytest.mark.slow
def test_justification_is_short_text(llm):
    from vidsense.agents.justify import explain_text

    text = explain_text(llm, timeline(CYCLING), "riding a bike")
    assert isinstance(text, str) and len(text) < 600
    ls = load_labels(LABELS)
    r = _reasoner(llm)
    pred = r.explain(timeline(CYCLING), r.classify(timeline(CYCLING), ls), ls)
    assert pred.justification == pred.justification.strip() and "justification_s" in pred.stats
