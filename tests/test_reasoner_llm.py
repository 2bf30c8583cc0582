"""LLMReasoner plumbing with the tiny SmolLM2 model: scoring, calibration, grammar mode, bad input."""

import numpy as np
import pytest
from agents_fixtures import CYCLING, DESCRIPTIONS, LABELS, embedding_reasoner, llm_reasoner, smollm, store_model, timeline

from vidsense.agents.labels import load_labels
from vidsense.agents.llm import LlamaCppModel, check_gguf
from vidsense.agents.prompts import choice_grammar
from vidsense.services.errors import InputError


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


def _embedding_probabilities(tl, ls) -> dict[str, float]:
    pred = embedding_reasoner(lambda ls: DESCRIPTIONS).classify(tl, ls, top_k=len(ls))
    return {c.label: c.score for c in pred.candidates}


@pytest.mark.slow
def test_grammar_strategy_answers_a_candidate(llm):
    ls = load_labels(LABELS)
    tl = timeline(CYCLING)
    pred = _reasoner(llm, strategy="grammar").classify(tl, ls)
    assert pred.label in ls.labels and pred.stats["generation_s"] > 0
    assert pred.stats["grammar_matched"] == 1.0
    # The generated label holds half the mass on top of its share; every other label keeps
    # half its embedding probability (the fallback would give them all of it).
    emb = _embedding_probabilities(tl, ls)
    for c in pred.candidates:
        expected = 0.5 * emb[c.label] + (0.5 if c.label == pred.label else 0.0)
        assert c.score == pytest.approx(expected, abs=1e-5), c.label


class _IgnoresTheGrammar:
    """A chat model that answers outside the candidate list (e.g. a server without grammar support)."""

    name, n_ctx = "ignores-the-grammar", 4096

    def render_chat(self, messages):
        return "\n".join(m["content"] for m in messages)

    def count_tokens(self, text):
        return len(text.split())

    def generate(self, messages, max_tokens=96, grammar=None):
        assert grammar and '"riding a bike"' in grammar  # the constraint was asked for
        return "none of the above"


@pytest.mark.slow
def test_grammar_answer_outside_the_candidates_falls_back_to_the_embedding_ranking(caplog):
    ls = load_labels(LABELS)
    tl = timeline(CYCLING)
    with caplog.at_level("WARNING", logger="vidsense.agents.scoring"):
        pred = _reasoner(_IgnoresTheGrammar(), strategy="grammar").classify(tl, ls)
    assert "'none of the above' matched no candidate" in caplog.text
    assert pred.stats["grammar_matched"] == 0.0
    emb = _embedding_probabilities(tl, ls)
    assert {c.label: c.score for c in pred.candidates} == pytest.approx(emb, abs=1e-6)


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
    assert text.strip() and text == text.strip() and len(text) < 600
    ls = load_labels(LABELS)
    r = _reasoner(llm)
    pred = r.explain(timeline(CYCLING), r.classify(timeline(CYCLING), ls), ls)
    assert pred.justification and pred.justification == pred.justification.strip() and pred.stats["justification_s"] > 0
