"""Label descriptions: parsing, cleaning, incremental generation, caching, bundled files."""

import json

import pytest
from agents_fixtures import encoder, smollm

from vidsense.agents import describe_labels as d
from vidsense.agents.labels import BUNDLED, load_labels


def test_clean_keeps_one_sentence_and_rejects_junk():
    assert d.clean("A person shoots arrows at a round target while a bow string twangs. Extra.", "archery") == (
        "A person shoots arrows at a round target while a bow string twangs."
    )
    assert d.clean("**Archery**: A person draws a bow and releases an arrow at a target.", "archery").startswith("A person")
    assert d.clean("", "archery") == ""
    assert d.clean("archery", "archery") == ""
    assert d.clean("Sure! Here are the descriptions you asked for, one per line.", "x") == ""
    assert len(d.clean(" ".join(["word"] * 80), "x").split()) == d.MAX_WORDS


def test_parse_numbered_and_unnumbered_answers():
    names = ["archery", "biking"]
    answer = "1. A person draws a bow and shoots an arrow at a target.\n2. A cyclist pedals a bicycle along a busy road."
    assert all(d._parse(answer, names))
    unnumbered = "A person draws a bow and shoots an arrow at a target.\nA cyclist pedals a bicycle along a busy road."
    assert d._parse(unnumbered, names) == d._parse(answer, names)
    assert d._parse("2. A cyclist pedals a bicycle along a busy road, bell ringing.", names)[0] == ""


def test_every_bundled_label_set_ships_a_description_per_label(tmp_path):
    for name in BUNDLED:
        path = d.bundled_path(name)
        assert path.exists(), name
        data = json.loads(path.read_text())
        assert list(data) == list(load_labels(name).labels), name
        assert all(len(v.split()) >= d.MIN_WORDS for v in data.values()), name
        assert len(set(data.values())) > 0.97 * len(data), name  # not one sentence copied around
        assert d.label_descriptions(load_labels(name), tmp_path, generate=False) == data


@pytest.mark.slow
def test_generation_is_incremental_resumable_and_cached(tmp_path):
    llm = smollm()
    ls = load_labels(["riding a bike", "swimming", "playing guitar"])
    path = tmp_path / "custom.descriptions.json"
    path.write_text(json.dumps({"swimming": "A swimmer moves through the water of a pool, splashing loudly."}))
    out = d.describe_to_file(llm, ls, path, batch=2)
    assert list(out) == list(ls.labels) and all(out.values())
    assert out["swimming"].startswith("A swimmer")  # resumed, not regenerated
    assert json.loads(path.read_text()) == out

    got = d.label_descriptions(ls, tmp_path, llm=lambda: llm, encoder=encoder())
    assert set(got) == set(ls.labels)
    cached = d.cache_path(tmp_path, ls)
    assert cached.exists() and cached.parent.name == "descriptions"
    assert d.label_descriptions(ls, tmp_path, generate=False) == got  # read back without an LLM


def test_descriptions_copied_from_a_neighbour_are_rejected():
    names = ["hula hoop", "ice dancing", "jump rope", "jumping jack"]
    assert not d.on_topic("A woman performing a hula hoop.", "ice dancing", names)
    assert not d.on_topic("A woman performing a jump rope.", "jumping jack", names)
    assert d.on_topic("A man spins a hula hoop around his waist.", "hula hoop", names)
    assert d.on_topic("A cyclist pedals around a track.", "biking", names)


def test_clean_strips_repeated_numbers_ellipses_and_the_typical_video_frame():
    assert d.clean("1. A man brushes his hair with a brush in front of a mirror.", "brush hair").startswith("A man brushes")
    assert d.clean("A man ... arranging flowers in a vase on a kitchen table.", "arranging flowers") == (
        "A man arranging flowers in a vase on a kitchen table."
    )
    assert d.clean("A typical video of a hug shows two people holding each other close and smiling.", "hug").startswith("Two people")


@pytest.mark.slow
def test_a_shifted_batch_answer_is_detected_and_asked_again_alone():
    from vidsense.agents.describe_labels import embedding_similarity

    class Scripted:
        """Answers a numbered batch one line off (the failure seen with Qwen), and single prompts well."""

        def __init__(self):
            self.prompts = []

        def generate(self, messages, max_tokens=0, **kw):
            user = messages[-1]["content"]
            self.prompts.append(user)
            if user.startswith("Classes:"):
                return "1. A man kicks a football across a grass field.\n2. A woman laughs loudly at a joke.\n3. A person pours water into a tall glass."
            name = user.split("\n", 1)[0].removeprefix("Class: ")
            return {"kiss someone": "Two people lean in and kiss each other on the lips.", "laugh": "A woman laughs loudly at a joke among friends."}.get(name, "")

    sim = embedding_similarity(encoder())
    assert d.misaligned(["A woman kisses a man.", "A child laughs at a cartoon."], ["laugh", "kiss someone"], sim) == {0, 1}
    llm = Scripted()
    out = d.generate_descriptions(llm, load_labels(["kick ball", "kiss someone", "laugh"]), batch=3, similarity=sim)
    assert out["kick ball"].startswith("A man kicks")
    assert "kiss" in out["kiss someone"] and "laughs" in out["laugh"]
    assert len(llm.prompts) == 3  # the batch, then kiss and laugh alone


@pytest.mark.slow
def test_review_reasks_a_description_written_for_another_label_and_keeps_the_better_one(monkeypatch):
    from vidsense.agents.describe_labels import embedding_similarity

    names = ["ice dancing", "hula hoop", "archery", "rowing", "knitting", "diving", "juggling", "fencing"]

    class Single:
        def __init__(self):
            self.asked = []

        def generate(self, messages, max_tokens=0, **kw):
            name = messages[-1]["content"].split("\n", 1)[0].removeprefix("Class: ")
            self.asked.append(name)
            return "A couple glides across an ice rink, spinning and lifting each other to music."

    good = {lab: f"A video of people {lab} with their whole body, clearly doing {lab}." for lab in names}
    done = {**good, "ice dancing": "A woman spins a hula hoop around her waist in a backyard."}
    llm = Single()
    monkeypatch.setattr(d, "REVIEW_RANK", 1)  # a set this small: only the best rank passes
    d._review(llm, load_labels(names), done, embedding_similarity(encoder()))
    assert llm.asked == ["ice dancing"]
    assert "ice rink" in done["ice dancing"]
    assert {k: v for k, v in done.items() if k != "ice dancing"} == {k: v for k, v in good.items() if k != "ice dancing"}


def test_part_of_a_bundled_set_reads_its_bundled_descriptions_without_an_llm(tmp_path):
    ucf = load_labels("ucf101")
    part = load_labels(["Biking", "Archery"])
    sub = type(part)("ucf101", part.labels, part.readable)  # what occlusion re-scores: a shortlist of ucf101

    def no_llm():
        raise AssertionError("the LLM must not be loaded for a bundled set's labels")

    got = d.label_descriptions(sub, tmp_path, llm=no_llm)
    full = d.label_descriptions(ucf, tmp_path, llm=no_llm)
    assert got == {"Biking": full["Biking"], "Archery": full["Archery"]}
    assert not (tmp_path / "descriptions").exists()
