"""Explanations: schema, attributions, interventions, LLM occlusion and agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from concept_fixtures import LABELS, soccer_timeline, toy_bank

from vidsense.agents.occlusion import occlusion
from vidsense.concepts.activations import Activations, window_texts
from vidsense.concepts.explanation import SCHEMA_VERSION, ExplainOptions, Explanation, InterventionSpec
from vidsense.concepts.interventions import intervene
from vidsense.concepts.motif import zero_shot_model
from vidsense.concepts.render import render_text
from vidsense.concepts.views import explain
from vidsense.services.errors import InputError
from vidsense.services.schema import LabelScore

SECTIONS = {"global", "local", "temporal", "attributions", "occlusion", "interventions", "prediction", "agreement"}


def activations(matrix: np.ndarray) -> Activations:
    bank = toy_bank()
    tl = soccer_timeline()
    return Activations(matrix.astype(np.float32), tl.windows, tuple(bank.texts), bank.hash, "test", None, tuple(window_texts(tl)))


def soccer_matrix() -> np.ndarray:
    """Soccer concepts in windows 0 and 2, a little music in window 3, window 1 empty."""
    m = np.full((4, 9), 0.08, np.float32)
    m[1] = 0.0
    m[0, 0], m[0, 1], m[2, 0], m[2, 2] = 0.72, 0.65, 0.58, 0.58
    m[3, 5] = 0.31
    return m


def without(m: np.ndarray, cols: list[int], value: float = 0.05) -> np.ndarray:
    out = m.copy()
    out[:, cols] = np.minimum(out[:, cols], value)
    return out


def modality_acts() -> dict[str, Activations]:
    """Per modality, the matrix of the timeline without it (sight carries the soccer evidence)."""
    m = soccer_matrix()
    no_sight = without(m, [0, 1, 2])
    no_sight[3, 0] = 0.37  # the speech still mentions the ball
    return {"sight": activations(no_sight), "sound": activations(without(m, [5])), "speech": activations(m)}


def text_score_fn(timeline):
    """Scores labels by counting their words in the rendered timeline: a transparent, deterministic scorer."""
    text = timeline.render(summary=False).lower()  # per-window lines only: each window counts once
    raw = {
        "SoccerJuggling": 1.0 + 2 * text.count("ball") + text.count("juggl"),
        "PlayingGuitar": 1.0 + text.count("music") + text.count("guitar"),
        "CuttingInKitchen": 1.0 + text.count("knife"),
    }
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


@pytest.fixture
def parts():
    bank = toy_bank()
    model, card = zero_shot_model(bank)
    return model, card, bank


def test_explanation_has_every_section_and_round_trips(parts):
    model, card, bank = parts
    tl = soccer_timeline()
    expl = explain(model, card, bank, activations(soccer_matrix()), modality_activations=modality_acts(), timeline=tl,
                   llm_scores=text_score_fn(tl), score_fn=text_score_fn)
    d = expl.to_dict()
    assert SECTIONS <= set(d)
    assert Explanation.from_dict(d) == expl
    assert Explanation.from_dict(json.loads(expl.to_json())) == expl
    schema = Explanation.json_schema()
    assert "global" in schema["properties"]
    # Top-k entries are the shared LabelScore: {"label", "score"} (schema version 2).
    assert d["schema_version"] == SCHEMA_VERSION == "2"
    assert set(schema["$defs"]["LabelScore"]["properties"]) == {"label", "score"} and "ConceptPrediction" in schema["$defs"]
    assert all(set(s) == {"label", "score"} for s in d["prediction"]["top_k"] + d["agreement"]["concept_top_k"])
    top = expl.prediction.top_k[0]
    assert isinstance(top, LabelScore) and top.label == expl.prediction.label and top.score == expl.prediction.probability
    assert d["prediction"]["label"] == "SoccerJuggling"
    assert d["global"]["concepts"][0]["text"] == "soccer ball"
    assert all(c["value"] > 0 for c in d["global"]["concepts"])
    assert d["local"]["top_windows"][0] == 0
    assert abs(sum(d["local"]["time_importance"]) - 1) < 1e-5
    assert len(d["local"]["matrix"]) == 4 and len(d["local"]["matrix"][0]) == len(d["local"]["concepts"])
    att = d["temporal"]["concepts"][0]["attention"]
    assert len(att) == 4 and all(abs(sum(r) - 1) < 1e-5 for r in att)
    assert d["windows"][0]["text"].startswith("objects: soccer ball")
    text = render_text(expl)
    assert "soccer ball" in text and "Occlusion of" in text


def test_integrated_gradients_converge(parts):
    model, card, bank = parts
    with torch.no_grad():  # non-trivial attention so the path is not piecewise linear
        torch.manual_seed(3)
        model.wq.normal_()
        model.wk.normal_()
    ig = explain(model, card, bank, activations(soccer_matrix())).attributions.integrated_gradients
    assert ig is not None and ig.output_difference > 0.5
    assert abs(ig.convergence_delta) < 0.01 * ig.output_difference
    assert abs(sum(ig.by_window) - ig.output_difference) < 0.02 * ig.output_difference
    assert ig.by_concept[0].text in {"soccer ball", "grass field"}
    assert ig.by_window[1] == 0.0  # an empty window has nothing to attribute


def test_feature_ablation_by_window_and_modality(parts):
    model, card, bank = parts
    fa = explain(model, card, bank, activations(soccer_matrix()), modality_activations=modality_acts()).attributions.feature_ablation
    by_window = {s.group: s.delta for s in fa.by_window}
    assert by_window["0"] == max(by_window.values()) and by_window["0"] > 0
    assert by_window["1"] == pytest.approx(0.0, abs=1e-6)  # already empty
    by_mod = {s.group: s.delta for s in fa.by_modality}
    assert by_mod["sight"] > 0.1 and by_mod["speech"] == pytest.approx(0.0, abs=1e-6)


def test_default_interventions_change_predictions_the_right_way(parts):
    model, card, bank = parts
    expl = explain(model, card, bank, activations(soccer_matrix()), modality_activations=modality_acts())
    results = {(r.action, r.target): r for r in expl.interventions}
    remove = results[("remove_concept", "soccer ball")]
    assert remove.probability_after < remove.probability_before
    boost = results[("boost_concept", "soccer ball")]
    assert boost.probability_after > boost.probability_before and boost.factor == 2.0
    assert results[("drop_window", "0")].probability_after < results[("drop_window", "0")].probability_before
    assert results[("drop_modality", "sight")].probability_after < remove.probability_before
    assert {("attention", m) for m in ("identity", "uniform", "reversed")} <= set(results)


def test_intervention_that_flips_the_label_is_recorded(parts):
    model, card, bank = parts
    x = torch.from_numpy(soccer_matrix()).unsqueeze(0)
    kill = InterventionSpec("remove_concept", concept=0)
    r = intervene(model, x, kill, 0, LABELS, bank.texts)
    assert not r.changed
    options = ExplainOptions(default_interventions=False, interventions=(
        InterventionSpec("remove_concept", concept=0), InterventionSpec("remove_concept", concept=1),
    ))
    assert len(explain(model, card, bank, activations(soccer_matrix()), options=options).interventions) == 2
    m = soccer_matrix()
    m[:, :3] = 0.0
    m[3, 5] = 0.31
    assert intervene(model, x, InterventionSpec("drop_modality", modality="sight"), 0, LABELS, bank.texts,
                     {"sight": activations(m)}).changed
    with pytest.raises(InputError, match="no concept #42"):
        intervene(model, x, InterventionSpec("remove_concept", concept=42), 0, LABELS, bank.texts)


def test_occlusion_rescores_without_each_window_and_modality():
    tl = soccer_timeline()
    occ = occlusion(tl, text_score_fn, scorer="word-count")
    assert occ.label == "SoccerJuggling" and occ.scorer == "word-count"
    assert occ.skipped_windows == [1]
    assert [s.group for s in occ.windows] == ["0", "2", "3"]
    assert occ.calls == 1 + 3 + 3  # full timeline, three observed windows, three modalities
    drops = {s.group: s.drop for s in occ.windows}
    assert drops["0"] > 0 and drops["2"] > 0 and drops["3"] > 0
    mods = {s.group: s for s in occ.modalities}
    assert set(mods) == {"sight", "sound", "speech"}
    assert mods["sight"].drop > mods["sound"].drop
    assert mods["sound"].drop < 0  # removing the music makes soccer more likely


def test_agreement_reports_disagreement_and_rank(parts):
    model, card, bank = parts
    llm = {"PlayingGuitar": 0.7, "SoccerJuggling": 0.2, "CuttingInKitchen": 0.1}
    expl = explain(model, card, bank, activations(soccer_matrix()), llm_scores=llm, options=ExplainOptions(attributions=False))
    a = expl.agreement
    assert a.llm_label == "PlayingGuitar" and a.concept_label == "SoccerJuggling"
    assert a.agrees is False and a.llm_label_rank == 2 and a.explained_label == "SoccerJuggling"
    # Explaining the LLM's label shows the concept evidence for its decision instead.
    guitar = explain(model, card, bank, activations(soccer_matrix()), llm_scores=llm, target="PlayingGuitar",
                     options=ExplainOptions(attributions=False))
    assert guitar.global_.label == "PlayingGuitar" and guitar.global_.concepts[0].text == "guitar music"
    assert guitar.local.top_windows[0] == 3
    none = explain(model, card, bank, activations(soccer_matrix()), options=ExplainOptions(attributions=False))
    assert none.agreement.agrees is None and none.occlusion is None


def test_explain_rejects_mismatched_inputs(parts):
    model, card, bank = parts
    with pytest.raises(InputError, match="not in label set"):
        explain(model, card, bank, activations(soccer_matrix()), target="Tennis")
    other = type(bank)("toy", bank.labels, bank.concepts[:-1])
    with pytest.raises(InputError, match="not the bank"):
        explain(model, card, other, activations(soccer_matrix()))


@pytest.mark.slow
def test_explain_timeline_with_the_bundled_encoder(tmp_path, parts):
    from agents_fixtures import encoder

    from vidsense.concepts.activations import ActivationCache, concept_activations
    from vidsense.concepts.views import explain_timeline

    model, card, bank = parts
    enc = encoder()
    tl = soccer_timeline()
    cache = ActivationCache(tmp_path)
    expl = explain_timeline(tl, bank, model, card, enc, llm_scores=text_score_fn(tl), score_fn=text_score_fn, cache=cache)
    assert expl.prediction.label == "SoccerJuggling" and expl.agreement.agrees
    assert expl.global_.concepts[0].text == "soccer ball"
    assert {s.group for s in expl.attributions.feature_ablation.by_modality} == {"sight", "sound", "speech"}
    acts = concept_activations(tl, bank, enc, cache=cache)
    assert np.all(acts.matrix[1] == 0)  # the empty window
    assert acts.matrix[0, 0] > 0.5 and acts.matrix[0, 0] > acts.matrix[0, 6]
    assert len(list(tmp_path.glob("*.npz"))) == 4  # all modalities + one without each
    fresh = ActivationCache(tmp_path)
    assert np.array_equal(concept_activations(tl, bank, enc, cache=fresh).matrix, acts.matrix)


def test_a_single_window_video_is_explained_with_a_note_not_an_error(parts):
    model, card, bank = parts
    one = soccer_matrix()[:1]
    acts = Activations(one, soccer_timeline().windows[:1], tuple(bank.texts), bank.hash, "test", None, ("a ball juggled",))
    options = ExplainOptions(interventions=[InterventionSpec("drop_window", window=0), InterventionSpec("remove_concept", concept=0)])
    expl = explain(model, card, bank, acts, options=options)
    assert expl.prediction.label == "SoccerJuggling" and expl.global_.concepts and len(expl.local.windows) == 1
    assert "drop_window" not in {r.action for r in expl.interventions} and "remove_concept" in {r.action for r in expl.interventions}
    assert any("drop_window skipped: the video has a single window" in n for n in expl.notes)
    assert "Note: intervention drop_window skipped" in render_text(expl)
    assert Explanation.from_dict(json.loads(expl.to_json())).notes == expl.notes
