"""The MoTIF model: shapes, invariants, interventions, persistence and few-shot training."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from concept_fixtures import LABELS, toy_bank

from vidsense.concepts.bank import ConceptBank, make_concept
from vidsense.concepts.motif import MotifConfig, MotifModel, load_model, save_model, zero_shot_model
from vidsense.concepts.train import LabelledActivations, fit, pad_batch, trained_card
from vidsense.services.errors import InputError


def soccer_activations(t: int = 5) -> torch.Tensor:
    """Background similarity everywhere, soccer concepts strong in window 1 and 3."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 0.12, size=(t, 9)).astype(np.float32)
    x[1, 0], x[1, 1], x[3, 2] = 0.7, 0.6, 0.55
    x[2, 3] = 0.35  # a little guitar
    return torch.from_numpy(x)


@pytest.fixture
def model():
    torch.manual_seed(0)
    m, _ = zero_shot_model(toy_bank())
    # Non-trivial attention so the interventions have something to change.
    with torch.no_grad():
        m.wq.normal_(0, 1.0)
        m.wk.normal_(0, 1.0)
        m.gate.fill_(0.0)
    return m


def test_shapes_and_attention_rows_sum_to_one(model):
    out = model(soccer_activations().unsqueeze(0).repeat(2, 1, 1))
    assert out.logits.shape == (2, 3)
    assert out.logits_t.shape == (2, 5, 3)
    assert out.concepts_t.shape == (2, 5, 9)
    assert out.attention.shape == (2, 9, 5, 5)
    assert torch.allclose(out.attention.sum(-1), torch.ones(2, 9, 5), atol=1e-6)
    assert torch.allclose(out.time_importance.sum(-1), torch.ones(2), atol=1e-6)
    # A [T, C] input is a batch of one.
    assert model(soccer_activations()).logits.shape == (1, 3)


def test_attention_ignores_padded_windows(model):
    x, mask = pad_batch([soccer_activations(5).numpy(), soccer_activations(5)[:3].numpy()])
    out = model(x, mask)
    assert torch.allclose(out.attention[1, :, :, 3:], torch.zeros(9, 5, 2))
    assert torch.allclose(out.attention.sum(-1), torch.ones(2, 9, 5), atol=1e-6)
    alone = model(soccer_activations(5)[:3])
    assert torch.allclose(out.logits[1], alone.logits[0], atol=1e-5)


def test_concepts_and_weights_are_non_negative(model):
    with torch.no_grad():
        model.weight[0, 4] = -3.0  # an optimiser step could leave a negative raw weight
    x = torch.randn(4, 6, 9)  # signed cosine similarities
    out = model(x)
    assert (out.affine_t >= 0).all() and (out.concepts_t >= 0).all()
    assert (model.classifier_weight() >= 0).all()
    # Zero evidence is exactly zero concept value.
    assert torch.equal(model(torch.zeros(1, 3, 9)).affine_t, torch.zeros(1, 3, 9))


def test_zero_shot_model_predicts_from_the_bank(model):
    out = model(soccer_activations())
    assert LABELS[int(out.logits.argmax())] == "SoccerJuggling"
    assert int(out.time_importance[0].argmax()) == 1


def test_removing_a_supporting_concept_lowers_the_score_and_boosting_raises_it(model):
    x = soccer_activations()
    base = model(x).logits[0, 0]
    removed = model(x, concept_scale={0: 0.0}).logits[0, 0]
    boosted = model(x, concept_scale={0: 3.0}).logits[0, 0]
    unrelated = model(x, concept_scale={6: 0.0}).logits[0, 0]
    assert removed < base < boosted
    assert torch.isclose(unrelated, base)
    # Removing every soccer concept hands the decision to another class.
    assert int(model(x, concept_scale={0: 0.0, 1: 0.0, 2: 0.0}).logits.argmax()) != 0


def test_drop_windows_removes_them_from_attention_and_pooling(model):
    x = soccer_activations()
    dropped = model(x, drop_windows=[4])
    assert torch.allclose(dropped.logits, model(x[:4]).logits, atol=1e-5)
    assert torch.allclose(dropped.attention[0, :, :, 4], torch.zeros(9, 5))
    assert float(dropped.time_importance[0, 4]) == 0.0
    # Dropping the window with the strongest evidence lowers the predicted class.
    assert model(x, drop_windows=[1]).logits[0, 0] < model(x).logits[0, 0]
    with pytest.raises(ValueError, match="every window"):
        model(x, drop_windows=list(range(5)))


def test_attention_interventions(model):
    x = soccer_activations()
    identity = model(x, attention="identity")
    assert torch.allclose(identity.concepts_t, identity.affine_t)
    assert torch.equal(identity.attention[0, 0], torch.eye(5))
    uniform = model(x, attention="uniform")
    assert torch.allclose(uniform.attention, torch.full((1, 9, 5, 5), 0.2))
    mean = uniform.affine_t.mean(dim=1, keepdim=True)
    g = torch.sigmoid(model.gate)
    assert torch.allclose(uniform.concepts_t, (1 - g) * uniform.affine_t + g * mean, atol=1e-6)
    plain = model(x)
    rev = model(x, attention="reversed")
    assert torch.allclose(rev.attention, plain.attention.flip(-1), atol=1e-6)
    assert not torch.allclose(rev.logits, plain.logits)
    with pytest.raises(ValueError, match="unknown attention mode"):
        model(x, attention="sideways")


def test_save_and_load_round_trip(tmp_path, model):
    bank = toy_bank()
    _, card = zero_shot_model(bank)
    folder = save_model(model, card, tmp_path / "m")
    loaded, card2 = load_model(folder)
    x = soccer_activations()
    assert torch.equal(loaded(x).logits, model(x).logits)
    assert card2 == card
    card2.check_bank(bank)
    other = ConceptBank("toy", LABELS, bank.concepts[:-1])
    with pytest.raises(InputError, match="not the bank"):
        card2.check_bank(other)
    with pytest.raises(InputError, match="not a concept model"):
        load_model(tmp_path / "empty")


def uninformative_bank() -> ConceptBank:
    """Every concept supports every class: the zero-shot model cannot tell them apart."""
    names = ["ball", "field", "kick", "guitar", "strum", "music", "knife", "counter", "chop"]
    return ConceptBank("toy", LABELS, tuple(make_concept(n, "object", {lab: 1.0 for lab in LABELS}) for n in names))


def synthetic_examples(n: int, seed: int) -> list[LabelledActivations]:
    """Class k shows concepts 3k..3k+2 in a random window of a 3-8 window clip."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = i % 3
        t = int(rng.integers(3, 9))
        m = rng.uniform(0.0, 0.15, size=(t, 9)).astype(np.float32)
        w = int(rng.integers(0, t))
        m[w, 3 * k : 3 * k + 3] += rng.uniform(0.3, 0.6, size=3).astype(np.float32)
        out.append(LabelledActivations(m, LABELS[k], f"v{i}"))
    return out


def test_few_shot_training_learns_and_is_reproducible(tmp_path):
    bank = uninformative_bank()
    train, test = synthetic_examples(24, seed=1), synthetic_examples(30, seed=2)
    model, metrics = fit(train, bank, epochs=40, seed=7)
    assert metrics.zero_shot_accuracy < 0.5
    assert metrics.train_accuracy >= 0.95
    x, mask = pad_batch([e.matrix for e in test])
    y = torch.tensor([LABELS.index(e.label) for e in test])
    assert float((model(x, mask).logits.argmax(1) == y).float().mean()) >= 0.9

    again, metrics2 = fit(train, bank, epochs=40, seed=7)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    assert metrics2.train_accuracy == metrics.train_accuracy and metrics2.final_loss == metrics.final_loss

    card = trained_card(bank, model, metrics)
    loaded, card2 = load_model(save_model(model, card, tmp_path / "fit"))
    assert card2.trained and card2.seed == 7 and card2.metrics["train_accuracy"] == metrics.train_accuracy
    assert torch.equal(loaded(x, mask).logits, model(x, mask).logits)


def test_fit_rejects_bad_examples():
    bank = toy_bank()
    with pytest.raises(InputError, match="not in label set"):
        fit([LabelledActivations(np.zeros((2, 9), np.float32), "Tennis")], bank, epochs=1)
    with pytest.raises(InputError, match="expected"):
        fit([LabelledActivations(np.zeros((2, 4), np.float32), "PlayingGuitar")], bank, epochs=1)
    with pytest.raises(InputError, match="no labelled examples"):
        fit([], bank, epochs=1)


def test_config_is_validated_against_the_input():
    m = MotifModel(MotifConfig(n_concepts=4, n_classes=2))
    with pytest.raises(ValueError, match="expects 4"):
        m(torch.zeros(3, 5))


@pytest.mark.slow
def test_specificity_stops_generic_concepts_from_deciding_a_class():
    from agents_fixtures import encoder

    from vidsense.concepts.merge import class_specificity

    labels = ("YoYo", "Biking", "Rowing", "Knitting", "Diving", "Archery")
    spec = [
        ("yo yo", "object", "YoYo"), ("camera", "object", "YoYo"), ("short video", "scene", "YoYo"),
        ("bicycle", "object", "Biking"), ("pedaling", "sub-action", "Biking"),
        ("rowing boat", "object", "Rowing"), ("oars", "object", "Rowing"),
    ]
    bank = ConceptBank("toy", labels, tuple(make_concept(t, k, {lab: 1.0}) for t, k, lab in spec))
    texts = [
        "A person spins a yo yo on a string, flicking the wrist up and down.",
        "A cyclist pedals a bicycle along a road, wheels turning.",
        "A crew pulls oars in rhythm, a boat gliding over the water.",
        "Hands loop yarn over two needles, a scarf growing stitch by stitch.",
        "A diver springs off a board and enters the pool with a splash.",
        "An archer draws a bow and releases an arrow at a round target.",
    ]
    z = class_specificity(bank, encoder().encode, texts)
    assert z.shape == (6, 7)
    assert z[0, 0] > 1.0 and z[1, 3] > 1.0  # "yo yo" is YoYo's, "bicycle" Biking's
    assert z[0, 1] < z[0, 0] and z[0, 2] < z[0, 0]  # generic ones fit YoYo no better than the rest

    # A street clip: the generic concepts match strongly, "bicycle" moderately.
    x = torch.zeros(4, 7)
    x[:, 1], x[:, 2], x[:, 3], x[:, 4] = 0.45, 0.4, 0.35, 0.3
    plain, _ = zero_shot_model(bank)
    weighted, _ = zero_shot_model(bank, specificity=z, specificity_margin=0.5, logit_scale=5.0)
    with torch.no_grad():
        assert labels[int(plain(x).logits.argmax())] == "YoYo"
        probs = torch.softmax(weighted(x).logits[0], 0)
    assert labels[int(probs.argmax())] == "Biking" and float(probs.max()) > 0.5
    with pytest.raises(ValueError, match="specificity has shape"):
        zero_shot_model(bank, specificity=z[:, :3])


def random_model(seed: int, n_concepts: int, n_classes: int, attn_dim: int) -> MotifModel:
    """A model with every parameter random (attention, gates and affines all non-trivial)."""
    torch.manual_seed(seed)
    m = MotifModel(MotifConfig(n_concepts=n_concepts, n_classes=n_classes, attn_dim=attn_dim))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.7)
    return m


def test_the_restricted_model_gives_the_same_logits_and_attributions():
    from captum.attr import IntegratedGradients

    from vidsense.concepts.attribution import integrated_gradients

    m = random_model(1, 12, 4, 3)
    with torch.no_grad():
        m.shift[[1, 5]] = 1.5  # dropped channels that are active at zero input: their share goes to the bias
    x = torch.rand(2, 6, 12)
    cols = [0, 2, 3, 7, 11]
    rest = [j for j in range(12) if j not in cols]
    x[:, :, rest] = 0.0
    sub = m.restricted(cols)
    assert sub.config.n_concepts == 5 and sub.bias.shape == (4,)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[1, 4:] = True
    for kw in ({}, {"mask": mask}, {"drop_windows": [2]}, {"attention": "uniform"}):
        full, part = m(x, **kw), sub(x[:, :, cols], **kw)
        assert torch.allclose(full.logits, part.logits, atol=1e-5) and torch.allclose(full.logits_t, part.logits_t, atol=1e-5)
    # Integrated Gradients over the active columns only equals Captum's on the whole input.
    texts, kinds = [f"c{j}" for j in range(12)], ["object"] * 12
    got = integrated_gradients(m, x[:1], 2, texts, kinds, n_steps=32, top=12)
    ref = IntegratedGradients(lambda inp: m(inp).logits[:, 2]).attribute(x[:1], baselines=torch.zeros_like(x[:1]), n_steps=32)[0]
    assert np.allclose(got.by_window, ref.sum(dim=1).numpy(), atol=1e-4)
    assert {c.concept for c in got.by_concept} <= set(cols)
    assert integrated_gradients(m, torch.zeros(1, 6, 12), 2, texts, kinds, n_steps=8).by_concept == []


def test_feature_ablation_on_the_active_columns_matches_the_whole_model():
    from vidsense.concepts.attribution import feature_ablation

    m = random_model(2, 10, 3, 2)
    x = torch.rand(1, 4, 10)
    x[:, :, [1, 4, 8]] = 0.0
    other = x[0].clone().numpy()
    other[:, 6], other[:, 4] = 0.0, 0.3  # a modality left out: one column off, another on
    without = SimpleNamespace(matrix=other)  # feature_ablation reads only the matrix
    fa = feature_ablation(m, x, 1, {"speech": without})

    @torch.no_grad()
    def p(inp):
        return float(torch.softmax(m(inp).logits, dim=1)[0, 1])

    assert fa.base_probability == pytest.approx(p(x), abs=1e-5)
    for t, score in enumerate(fa.by_window):
        xt = x.clone()
        xt[0, t] = 0.0
        assert score.probability == pytest.approx(p(xt), abs=1e-5)
    assert fa.by_modality[0].probability == pytest.approx(p(torch.from_numpy(other).unsqueeze(0)), abs=1e-5)
