"""The answering model in bottleneck form equals the route that answers, and its views and interventions are of it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from agents_fixtures import CYCLING, LABELS, timeline

from vidsense.agents.evidence import default_scorers
from vidsense.agents.fusion import FusedReasoner, FusionWeights, fuse
from vidsense.agents.labels import load_labels
from vidsense.agents.scoring import softmax
from vidsense.agents.shortlist import LabelIndex
from vidsense.concepts.bottleneck import AnswerModel, explain_answer, intervene_answer
from vidsense.concepts.explanation import InterventionSpec
from vidsense.services.errors import InputError
from vidsense.services.schema import LabelSet, Prediction


class HashEncoder:
    """A fixed unit vector per text, with shared words pulling texts together (a fake at the boundary;
    the slow test below runs the bundled MiniLM)."""

    name = "hash"

    def encode(self, texts):
        out = []
        for text in texts:
            v = np.zeros(64)
            for word in [text, *text.lower().replace(",", " ").split()]:
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
                v += np.random.default_rng(seed).normal(size=64)
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32)


KINDS = [
    ("sight", "action", ["riding a bike", "surfing water", "playing guitar", "archery", "cooking on campfire", "juggling balls"]),
    ("sight", "objects", ["bicycle", "person", "car", "bow", "guitar", "pan"]),
    ("sight", "scene", ["street, road", "swimming pool", "kitchen"]),
    ("sight", "gesture", ["person 1 waving (right hand)", "person 1 hand to mouth (right hand)"]),
    ("sight", "pose", ["one person, legs pedalling", "arms raised"]),
    ("sound", "sound", ["music", "splash", "engine"]),
    ("speech", "speech", ["we are going for a ride", "the water is cold"]),
    ("text", "text", ["TAXI", "ARCHERY CLUB"]),
]


def random_timeline(seed: int):
    rng = np.random.default_rng(seed)
    obs = []
    for window in range(4):
        for mod, kind, texts in KINDS:
            for text in rng.choice(texts, size=int(rng.integers(0, 3)), replace=False):
                obs.append((window, mod, kind, str(text), float(rng.uniform(0.05, 1.0))))
    return timeline(obs, duration_s=8.0)


@pytest.fixture(scope="module")
def index():
    return LabelIndex(HashEncoder())


@pytest.fixture(scope="module", params=[FusionWeights(), FusionWeights({"action": 0.7, "objects": 0.5, "sound": 0.4, "gesture": 0.9, "body": 0.2, "speech": 0.5, "text": 0.5, "timeline": 0.6}, temperature=0.7)])
def fused(request, index):
    return FusedReasoner(default_scorers(index, lambda ls: {}), lambda ls: request.param)


def answer(label: str, route: str) -> Prediction:
    return Prediction(label=label, top_k=(), labelset="mine", reasoner="cascade", candidates=(), route=route)


def route_probabilities(fused: FusedReasoner, tl, labelset: LabelSet, modalities=None) -> np.ndarray:
    z, *_ = fused.fused(tl, labelset, modalities)
    return softmax(z)


@pytest.mark.parametrize("seed", range(12))
def test_the_bottleneck_forward_pass_equals_the_route(fused, seed):
    labels = LabelSet.from_labels("mine", LABELS)
    tl = random_timeline(seed)
    model = AnswerModel.build(fused, tl, labels)
    assert model.activations.shape == (len(tl.windows), len(model.concepts)) and model.concepts
    assert np.abs(model.probabilities() - route_probabilities(fused, tl, labels)).max() < 1e-6
    # Restricted to what is seen, as `--modalities sight` restricts the route.
    seen = AnswerModel.build(fused, tl, labels, ["sight"])
    assert np.abs(seen.probabilities() - route_probabilities(fused, tl, labels, ["sight"])).max() < 1e-6
    assert {s for s, _ in seen.concepts} <= {"action", "objects", "scene", "gesture"}


def test_equality_on_a_bundled_label_set_and_on_an_empty_video(fused):
    ucf = load_labels("ucf101")
    tl = timeline(CYCLING)
    assert np.abs(AnswerModel.build(fused, tl, ucf).probabilities() - route_probabilities(fused, tl, ucf)).max() < 1e-6
    empty = AnswerModel.build(fused, timeline([]), ucf)
    assert empty.sources == () and np.allclose(empty.probabilities(), 1 / len(ucf))


def test_gradients_match_finite_differences_and_integrated_gradients_are_complete(fused):
    labels = LabelSet.from_labels("mine", LABELS)
    for seed in range(6):
        model = AnswerModel.build(fused, random_timeline(seed), labels)
        k = int(np.argmax(model.probabilities()))
        grad, dg = model.gradient(k)
        for t, c in zip(*np.nonzero(model.activations)):
            a = model.activations.copy()
            a[t, c] += 1e-6
            fd = (np.log(model.probabilities(a)[k]) - np.log(model.probabilities()[k])) / 1e-6
            assert fd == pytest.approx(grad[t, c], rel=1e-3, abs=1e-5)
        gates = np.ones(len(model.texts))
        for u in range(len(model.texts)):
            g = gates.copy()
            g[u] += 1e-6
            fd = (np.log(model.probabilities(None, g)[k]) - np.log(model.probabilities()[k])) / 1e-6
            assert fd == pytest.approx(dg[u], rel=1e-3, abs=1e-5)
        ig = model.integrated_gradients(k)
        assert abs(ig.gap) <= 0.01 * abs(ig.total) + 1e-6
        assert np.all(ig.cells[model.activations == 0] == 0)  # a concept not seen in a window gets nothing there


def test_interventions_rerank_the_answer_as_the_route_would(fused):
    labels = LabelSet.from_labels("mine", LABELS)
    tl = timeline(CYCLING)
    model = AnswerModel.build(fused, tl, labels)
    k = labels.index("riding a bike")
    # Dropping a source is the route with that source absent.
    for source in model.sources:
        dropped = intervene_answer(model, InterventionSpec("drop_source", source=source), k)
        scores = [s for s in fused.sources(tl, labels)[0] if s.source != source]
        assert dropped.probability_after == pytest.approx(float(softmax(fuse(scores, fused.weights(labels), len(labels)))[k]), abs=1e-6)
    # Dropping a modality is the route reading the timeline without it.
    rebuild = lambda keep: AnswerModel.build(fused, tl, labels, keep)  # noqa: E731
    no_sight = intervene_answer(model, InterventionSpec("drop_modality", modality="sight"), k, rebuild, ["sight"])
    assert no_sight.probability_after == pytest.approx(1 / len(labels))  # nothing else was observed
    # Removing every bicycle and the recognised ride leaves the answer with less support.
    cols = [c for c, (_, name) in enumerate(model.concepts) if name in ("bicycle", "riding a bike")]
    assert model.probabilities(model.scaled({c: 0.0 for c in cols}))[k] < model.probabilities()[k]
    with pytest.raises(InputError, match="no concept #99"):
        intervene_answer(model, InterventionSpec("remove_concept", concept=99), k)
    with pytest.raises(InputError, match="no source 'speech'"):
        intervene_answer(model, InterventionSpec("drop_source", source="speech"), k)
    with pytest.raises(InputError, match="no attention"):
        intervene_answer(model, InterventionSpec("attention", attention="uniform"), k)


def test_the_view_explains_the_answer_and_names_an_llm_step(fused):
    labels = LabelSet.from_labels("mine", LABELS)
    tl = random_timeline(3)
    model = AnswerModel.build(fused, tl, labels)
    p = model.probabilities()
    top = labels.labels[int(np.argmax(p))]
    view = explain_answer(model, answer(top, "fused"))
    assert view.label == view.fused_label == top and view.decided_by == "the fused evidence" and view.probability == pytest.approx(p.max(), abs=1e-6)
    assert abs(view.ig_gap) <= 0.01 * abs(view.ig_total) + 1e-6
    assert [w.window for w in view.windows] == [w.index for w in tl.windows]
    # The global list is ordered by |attribution| and each removal is the real re-scored change.
    values = [abs(c.attribution) for c in view.concepts]
    assert values == sorted(values, reverse=True)
    c = view.concepts[0]
    assert c.removal == pytest.approx(np.log(model.probabilities(model.scaled({c.concept: 0.0}))[labels.index(top)]) - np.log(p.max()), abs=1e-5)
    # An LLM step that chose another label is what decided, and the view says so.
    other = labels.labels[int(np.argsort(-p)[1])]
    llm = explain_answer(model, answer(other, "llm"))
    assert llm.decided_by == "the LLM step" and llm.fused_label == top and other in llm.note


@pytest.mark.slow
def test_the_bundled_clip_is_explained_by_the_model_that_answered(example_video):
    """Real models, the default route: the answer's probabilities equal the bottleneck's, and removing
    the concept that carried the answer changes the answer the user gets."""
    import vidsense

    with vidsense.Pipeline() as pipe:
        result = pipe.classify(example_video, "ucf101", top_k=10)
        fused = pipe.reasoner.fused_method()
        model = AnswerModel.build(fused, result.timeline, load_labels("ucf101"))
        p = model.probabilities()
        for c in result.prediction.candidates:
            assert p[model.label_index(c.label)] == pytest.approx(c.score, abs=1e-6)
        expl = pipe.explain(example_video, "ucf101", llm_occlusion=False).explanation
        view = expl.answer_model
        assert view is not None and view.label == result.label and abs(view.ig_gap) < 0.01 * abs(view.ig_total)
        top = view.concepts[0]
        assert top.attribution > 0 and top.removal < 0
        changed = pipe.intervene(pipe.explain(example_video, "ucf101", llm_occlusion=False), [InterventionSpec("remove_concept", concept=top.concept)])[0]
        assert changed.probability_after < changed.probability_before
