"""Concept banks: fallback builder, LLM answer parsing, user files, merging, persistence."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from concept_fixtures import DESCRIPTIONS, LABELS, toy_bank

from vidsense.concepts.bank import ConceptBank, fallback_bank, readable_label
from vidsense.concepts.generate import concept_prompt, generate_bank, parse_concepts
from vidsense.concepts.merge import apply_user_file, merge_near_duplicates
from vidsense.concepts.phrases import key_phrases
from vidsense.services.errors import InputError


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A real (if simple) embedding: word counts over the texts' vocabulary."""
    vocab = sorted({w for t in texts for w in t.split()})
    return np.array([[t.split().count(w) for w in vocab] for t in texts], dtype=np.float32)


def test_readable_label_splits_camel_case_and_underscores():
    assert readable_label("ApplyEyeMakeup") == "apply eye makeup"
    assert readable_label("brush_hair") == "brush hair"
    assert readable_label("YoYo") == "yo yo"


def test_key_phrases_are_content_word_runs():
    assert key_phrases("A person kicks a soccer ball on a grass field.") == ["kicks", "soccer ball", "grass field"]


def test_fallback_bank_covers_every_label_with_its_name_and_description():
    bank = fallback_bank(list(LABELS), DESCRIPTIONS, "toy")
    assert bank.unsupported_labels() == []
    by_text = {c.text: c for c in bank.concepts}
    assert by_text["soccer juggling"].kind == "sub-action"
    assert by_text["soccer juggling"].support == {"SoccerJuggling": 1.0}
    assert by_text["soccer ball"].support == {"SoccerJuggling": 0.5}
    assert by_text["kitchen"].kind == "scene"
    assert by_text["music"].kind == "sound"
    # A phrase that occurs in several labels' descriptions supports all of them.
    shared = fallback_bank(["A", "B"], {"A": "people on a grass field", "B": "horses on a grass field"}, "x")
    assert {c.text: c.support for c in shared.concepts}["grass field"] == {"A": 0.5, "B": 0.5}


def test_support_matrix_matches_concepts():
    bank = toy_bank()
    m = bank.support_matrix()
    assert m.shape == (3, 9)
    assert m[0, :3].tolist() == [1, 1, 1] and m[0, 3:].sum() == 0
    assert (m.sum(axis=0) == 1).all()


def test_hash_depends_on_content_only_and_survives_a_round_trip(tmp_path):
    bank = toy_bank()
    path = bank.save(tmp_path / "bank.json")
    again = ConceptBank.load(path)
    assert again.hash == bank.hash and again.concepts == bank.concepts
    assert json.loads(path.read_text())["hash"] == bank.hash
    renamed = ConceptBank("toy", bank.labels, bank.concepts, generator="other")
    assert renamed.hash == bank.hash
    fewer = ConceptBank("toy", bank.labels, bank.concepts[:-1])
    assert fewer.hash != bank.hash


def test_load_reports_a_missing_or_broken_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ConceptBank.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"labels": []}')
    with pytest.raises(InputError, match="not a concept bank"):
        ConceptBank.load(tmp_path / "bad.json")


def test_a_concept_may_only_support_labels_of_the_set():
    from vidsense.concepts.bank import make_concept

    with pytest.raises(ValueError, match="not a label"):
        ConceptBank("toy", ("A",), (make_concept("ball", "object", {"B": 1.0}),))


def test_parse_concepts_handles_tagged_lines_headings_and_preambles():
    answer = """Here are some concepts:
1. **Object**: soccer ball
2) scene: grass field
- sub-action | repeated kicking
Sounds:
- crowd cheering, referee whistle
* juggling (keeping the ball in the air)
This line is far too long to be a concept of a video at all
"""
    assert parse_concepts(answer) == [
        ("soccer ball", "object"),
        ("grass field", "scene"),
        ("repeated kicking", "sub-action"),
        ("crowd cheering", "sound"),
        ("referee whistle", "sound"),
        ("juggling", "sound"),
    ]


def test_parse_concepts_handles_json_answers():
    fenced = '```json\n[{"text": "The Ball", "kind": "objects"}, "kicking", {"concept": "stadium", "type": "place"}]\n```'
    assert parse_concepts(fenced) == [("ball", "object"), ("kicking", "sub-action"), ("stadium", "scene")]
    by_kind = '{"object": ["guitar", "pick"], "sound": "strumming"}'
    assert parse_concepts(by_kind) == [("guitar", "object"), ("pick", "object"), ("strumming", "sound")]


def test_generate_bank_asks_once_per_label_and_keeps_fallback_anchors():
    answers = {
        "soccer juggling": "object: soccer ball\nscene: grass field\nsub-action: kicking",
        "playing guitar": "- object: guitar\n- sound: guitar music\n- scene: grass field",
        "cutting in kitchen": "I cannot help with that.",
    }
    prompts = []

    def generate(prompt: str) -> str:
        prompts.append(prompt)
        name = re.search(r'action "([^"]+)"', prompt).group(1)
        return answers[name]

    bank = generate_bank(list(LABELS), DESCRIPTIONS, generate, "toy", generator="llm:test")
    assert len(prompts) == 3 and "soccer ball in the air" in prompts[0]
    by_text = {c.text: c for c in bank.concepts}
    assert by_text["grass field"].support == {"PlayingGuitar": 1.0, "SoccerJuggling": 1.0}
    assert by_text["guitar music"].kind == "sound"
    assert "cutting in kitchen" in by_text  # the unusable answer still leaves the label its anchor
    assert bank.unsupported_labels() == [] and bank.generator == "llm:test"


def test_concept_prompt_names_the_kinds():
    p = concept_prompt("playing guitar", "A person strums a guitar.", 5)
    assert "playing guitar" in p and "sub-action" in p and "5 short concepts" in p


def test_merge_near_duplicates_unions_support():
    from vidsense.concepts.bank import make_concept

    bank = ConceptBank(
        "toy",
        ("A", "B"),
        (
            make_concept("red ball", "object", {"A": 1.0}),
            make_concept("ball red", "object", {"B": 0.5}),
            make_concept("green field", "scene", {"B": 1.0}),
        ),
    )
    merged = merge_near_duplicates(bank, bag_of_words, threshold=0.95)
    assert [c.text for c in merged.concepts] == ["red ball", "green field"]
    assert merged.concepts[0].support == {"A": 1.0, "B": 0.5}
    assert merge_near_duplicates(bank, bag_of_words, threshold=1.01).concepts == bank.concepts


def test_user_file_extends_and_replaces(tmp_path):
    bank = toy_bank()
    extend = tmp_path / "extra.yaml"
    extend.write_text(
        "remove: [grass field]\n"
        "concepts:\n"
        "  - text: Soccer Ball\n    supports: {SoccerJuggling: 0.5, PlayingGuitar: 0.2}\n"
        "  - text: referee whistle\n    kind: sound\n    supports: [SoccerJuggling]\n"
    )
    out = apply_user_file(bank, extend)
    by_text = {c.text: c for c in out.concepts}
    assert "grass field" not in by_text
    assert by_text["soccer ball"].support == {"PlayingGuitar": 0.2, "SoccerJuggling": 0.5}
    assert by_text["soccer ball"].kind == "object"
    assert by_text["referee whistle"].kind == "sound"
    assert out.generator.endswith("+user") and out.hash != bank.hash

    replace_file = tmp_path / "mine.json"
    replace_file.write_text(json.dumps({"mode": "replace", "concepts": [{"text": "guitar", "supports": ["PlayingGuitar"]}]}))
    assert [c.text for c in apply_user_file(bank, replace_file).concepts] == ["guitar"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("concepts:\n  - text: ball\n    supports: [Tennis]\n", "unknown label 'Tennis'"),
        ("concepts:\n  - text: ball\n    kind: colour\n", "unknown kind 'colour'"),
        ("concepts:\n  - supports: [PlayingGuitar]\n", "has no text"),
        ("mode: merge\n", "mode must be"),
        ("concepts: [unclosed\n", "not valid yaml"),
    ],
)
def test_user_file_errors_name_the_file_and_problem(tmp_path, body, message):
    path = tmp_path / "c.yaml"
    path.write_text(body)
    with pytest.raises(InputError, match=re.escape(message)) as err:
        apply_user_file(toy_bank(), path)
    assert str(path) in str(err.value)


@pytest.mark.slow
def test_merge_with_the_bundled_sentence_encoder():
    from agents_fixtures import encoder

    from vidsense.concepts.bank import make_concept

    enc = encoder()
    bank = ConceptBank(
        "toy",
        LABELS,
        (
            make_concept("soccer ball", "object", {"SoccerJuggling": 1.0}),
            make_concept("soccer balls", "object", {"PlayingGuitar": 0.3}),
            make_concept("acoustic guitar", "object", {"PlayingGuitar": 1.0}),
        ),
    )
    merged = merge_near_duplicates(bank, enc.encode, threshold=0.88)
    assert [c.text for c in merged.concepts] == ["soccer ball", "acoustic guitar"]


@pytest.mark.parametrize("name", ["ucf101", "hmdb51"])
def test_bundled_banks_cover_every_class(name):
    from vidsense.agents.labels import load_labels
    from vidsense.concepts.bank import bundled_bank

    bank = bundled_bank(name)
    assert bank is not None and bank.generator.startswith("llm:")
    ucf = load_labels(name)
    assert bank.labels == ucf.labels
    supported = {label for c in bank.concepts for label, _ in c.supports}
    assert supported == set(ucf.labels)
    kinds = {c.kind for c in bank.concepts}
    assert {"object", "scene", "sub-action", "sound"} <= kinds
    # Richer than the name-only fallback: several concepts per class on average.
    assert len(bank) > 3 * len(ucf)
