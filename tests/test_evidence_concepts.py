"""Evidence concepts: the perception vocabulary in the concept bottleneck, activated by the models' own scores."""

import numpy as np
import pytest
import torch
from agents_fixtures import CYCLING, LABELS, label_index, timeline

from vidsense.agents.evidence import TransferScorer
from vidsense.agents.vocabulary import VOCABULARIES, vocabulary
from vidsense.concepts import motif
from vidsense.concepts.activations import Activations, blend, concept_activations
from vidsense.concepts.bank import ConceptBank, fallback_bank, make_concept
from vidsense.concepts.evidence_concepts import evidence_concepts, evidence_matrix, observed_name, with_evidence
from vidsense.concepts.render import render_text
from vidsense.concepts.views import explain
from vidsense.services.perception.motion.gestures import GESTURES
from vidsense.services.schema import LabelScore, LabelSet, Prediction


def _bank() -> ConceptBank:
    """Two text concepts and four evidence concepts over the fixture labels."""
    text = fallback_bank(LABELS, label_set="everyday")
    evidence = (
        make_concept("riding a bike", "sub-action", {"riding a bike": 1.0}, source="action"),
        make_concept("bicycle", "object", {"riding a bike": 0.6}, source="objects"),
        make_concept("bow", "object", {"archery": 0.5}, source="objects"),
        make_concept("waving", "sub-action", {}, source="gesture"),
    )
    return with_evidence(text, evidence)


def test_every_source_has_a_vocabulary_in_the_form_the_timeline_writes():
    sizes = {source: len(vocabulary(source)) for source in VOCABULARIES}
    assert sizes["action"] == 400 and sizes["objects"] == 80 and sizes["sound"] == 521
    assert 990 <= sizes["scene"] <= 1000  # ImageNet's first aliases, repeats merged
    assert "riding a bike" in vocabulary("action") and "bicycle" in vocabulary("objects")
    assert "shaking hands" in vocabulary("gesture") and vocabulary("gesture") == GESTURES
    assert all(n == n.strip() and n for v in VOCABULARIES for n in vocabulary(v))


def test_observations_name_their_concept():
    assert observed_name("objects", "car x3") == "car"
    assert observed_name("gesture", "person 2 waving (right hand, 3 cycles)") == "waving"
    assert observed_name("gesture", "people 1 and 2 shaking hands") == "shaking hands"
    assert observed_name("action", "riding a bike") == "riding a bike"


def test_evidence_matrix_holds_the_perception_scores_per_window():
    bank = _bank()
    tl = timeline([*CYCLING, (2, "sight", "objects", "bicycle x2", 0.95), (1, "sight", "gesture", "person 1 waving (left hand, 2 cycles)", 0.5)])
    m = evidence_matrix(tl, bank)
    col = {c.text: j for j, c in enumerate(bank.concepts) if c.evidence}
    assert m.shape == (3, len(bank))
    np.testing.assert_allclose(m[:, col["riding a bike"]], [0.72, 0.65, 0.7], atol=1e-6)
    np.testing.assert_allclose(m[:, col["bicycle"]], [0.91, 0.88, 0.95], atol=1e-6)  # the higher of two detections
    assert m[1, col["waving"]] == pytest.approx(0.5) and m[:, col["bow"]].sum() == 0
    assert not m[:, ~bank.evidence_columns].any()  # text columns are left to the encoder
    # A restricted timeline loses its evidence: the drop-modality view sees no action.
    assert not evidence_matrix(tl.only(["sound"]), bank).any()


@pytest.mark.slow
def test_activations_mix_text_cosines_and_perception_scores():
    from agents_fixtures import encoder

    bank = _bank()
    tl = timeline(CYCLING)
    acts = concept_activations(tl, bank, encoder())
    ev = bank.evidence_columns
    assert acts.evidence is not None and acts.evidence.tolist() == ev.tolist()
    np.testing.assert_allclose(acts.matrix[:, ev], evidence_matrix(tl, bank)[:, ev])
    text = acts.matrix[:, ~ev]
    assert text.max() <= 1.0 and text.max() > 0.3  # cosines, and the cycling windows resemble "riding a bike"
    # A joint model's blend leaves a perception score as the model gave it.
    joint = Activations(np.ones_like(acts.matrix), acts.windows, acts.concepts, acts.bank_hash, "clip")
    mixed = blend(acts, joint, 0.5)
    np.testing.assert_allclose(mixed.matrix[:, ev], acts.matrix[:, ev])
    np.testing.assert_allclose(mixed.matrix[:, ~ev], 0.5 * text + 0.5)


def test_zero_shot_model_weighs_evidence_by_its_source():
    bank = _bank()
    tl = timeline([(0, "sight", "objects", "bow", 0.9), (1, "sight", "action", "riding a bike", 0.8)])
    x = torch.from_numpy(evidence_matrix(tl, bank))
    text_off = np.zeros((len(bank.labels), len(bank)), dtype=np.float32)

    def top(weights: dict[str, float]) -> str:
        model, _ = motif.zero_shot_model(bank, specificity=text_off, source_weights=weights, evidence_scale=5.0)
        with torch.no_grad():
            return bank.labels[int(model(x).logits[0].argmax())]

    assert top({"action": 1.0, "objects": 0.1}) == "riding a bike"
    assert top({"action": 0.1, "objects": 1.0}) == "archery"
    assert top({"objects": 1.0}) == "archery"  # a source weighing 0 does not vote


@pytest.mark.slow
def test_evidence_concepts_carry_the_fast_routes_transfer():
    labelset = LabelSet.from_labels("ucf-like", ["Biking", "Archery", "PlayingGuitar", "BreastStroke"])
    scorers = [TransferScorer("action", ["action"], label_index()), TransferScorer("objects", ["objects"], label_index())]
    concepts = {(c.source, c.text): c for c in evidence_concepts(labelset, scorers)}
    assert len(concepts) == 480  # every Kinetics class and COCO object, whether or not it supports a label
    assert set(concepts[("action", "riding a bike")].support) == {"Biking"}  # cosine about 0.8: weight exp(10 (0.8 - 1))
    assert max(concepts[("action", "playing guitar")].support, key=concepts[("action", "playing guitar")].support.get) == "PlayingGuitar"
    assert concepts[("action", "archery")].support == {"Archery": 1.0}  # the label itself passes straight through
    assert concepts[("objects", "toaster")].support == {}  # resembles no label: shown when it fires, votes for nothing
    assert all(c.kind in ("sub-action", "object") for c in concepts.values())
    # Supports are read on the concept model's own scale, whatever sharpness the fast route fuses with.
    sharp = [TransferScorer("action", ["action"], label_index(), sharpness=30.0), TransferScorer("objects", ["objects"], label_index(), sharpness=3.0)]
    assert {(c.source, c.text): c.support for c in evidence_concepts(labelset, sharp)} == {k: c.support for k, c in concepts.items()}
    assert sharp[0].transfer(["riding a bike"], labelset)[0, 0] < scorers[0].transfer(["riding a bike"], labelset)[0, 0]


def test_explanation_names_the_answer_its_route_and_the_concept_models_view():
    bank = _bank()
    tl = timeline([*CYCLING, (0, "sight", "objects", "bow", 0.3)])
    text_off = np.zeros((len(bank.labels), len(bank)), dtype=np.float32)
    model, card = motif.zero_shot_model(bank, specificity=text_off, source_weights={"action": 1.0, "objects": 1.0})
    acts = Activations(evidence_matrix(tl, bank), tl.windows, tuple(bank.texts), bank.hash, "test", evidence=bank.evidence_columns)
    answer = {"archery": 0.6, "riding a bike": 0.4}  # the route that answered said archery
    expl = explain(model, card, bank, acts, llm_scores=answer, target="archery", route="fused")
    a = expl.agreement
    assert a.concept_label == "riding a bike" and a.llm_label == "archery" and a.agrees is False
    assert a.llm_label_rank == 2 and 0 < a.answer_probability < 0.5 and a.answer_route == "fused"
    assert expl.global_.label == "archery" and expl.global_.concepts[0].text == "bow"
    assert expl.global_.concepts[0].source == "objects"
    text = render_text(expl)
    assert "Answer: archery (route fused)" in text and "ranks it #2" in text
    assert "object detector" in text  # an evidence concept says which model saw it


def test_eval_reports_agreement_per_label_set(tmp_path):
    from agents_fixtures import timeline as make

    from vidsense.agents.evaluate import evaluate

    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,labelset\na.mp4,riding a bike,everyday.txt\nb.mp4,archery,everyday.txt\n")
    (tmp_path / "everyday.txt").write_text("\n".join(LABELS) + "\n")
    tl = make(CYCLING)

    def classify(timeline, labelset, *, modalities=None, top_k=5):
        scores = tuple(LabelScore(label=lab, score=1.0 / (i + 1)) for i, lab in enumerate(labelset.labels))
        return Prediction(label=labelset.labels[0], top_k=scores[:top_k], labelset=labelset.name, reasoner="test", candidates=scores)

    said = iter(["riding a bike", "swimming"])
    report = evaluate(manifest, lambda video, mods: tl, classify, concept_label=lambda timeline, labelset: next(said))
    assert report.overall.agreement == 0.5
    assert [p.score.agreement for p in report.per_labelset] == [0.5]
    assert "agreement=0.500" in report.to_text()
    assert evaluate(manifest, lambda video, mods: tl, classify).overall.agreement is None


@pytest.mark.slow
def test_answer_view_splits_the_fused_score_exactly_over_sources_classes_and_windows():
    from vidsense.agents.evidence import default_scorers
    from vidsense.agents.fusion import FusedReasoner
    from vidsense.concepts.answer_view import answer_view

    index = label_index()
    scorers = default_scorers(index, lambda ls: {})
    labelset = LabelSet.from_labels("everyday", LABELS)
    tl = timeline([*CYCLING, (1, "sight", "objects", "bow", 0.4), (2, "sound", "sound", "bicycle bell", 0.5)])
    pred = FusedReasoner(scorers).classify(tl, labelset)
    assert pred.label == "riding a bike"
    transfer = [s for s in scorers if isinstance(s, TransferScorer)]
    view = answer_view(tl, labelset, pred, transfer, top=50)
    assert view is not None and view.route == "fused" and view.label == "riding a bike"
    by_source = {s.source: s for s in view.sources}
    assert set(by_source) == {v.source for v in pred.evidence}
    objects = by_source["objects"]
    assert objects.contribution > 0 and objects.concepts[0].text == "bicycle"
    # Exact: the classes of a source share its push, and the windows share the transfer sources' push.
    for s in view.sources:
        if s.concepts:
            assert sum(c.value for c in s.concepts) == pytest.approx(s.contribution, rel=1e-6)
    pushed = sum(s.contribution for s in view.sources if s.concepts)
    assert sum(view.windows) == pytest.approx(pushed, rel=1e-6)
    assert "bow" not in [c.text for c in objects.concepts[:1]]
    assert answer_view(tl, labelset, Prediction(label="archery", top_k=(), labelset="everyday", reasoner="llm", candidates=()), transfer) is None
