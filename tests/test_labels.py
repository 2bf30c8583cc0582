import numpy as np
import pytest

from vidsense.agents.labels import BUNDLED, load_labels
from vidsense.services.errors import InputError
from vidsense.services.schema import LabelSet, readable


@pytest.mark.parametrize(
    "raw, want",
    [
        ("SoccerJuggling", "soccer juggling"),
        ("draw_sword", "draw sword"),
        ("ApplyEyeMakeup", "apply eye makeup"),
        ("YoYo", "yo yo"),
        ("playing guitar", "playing guitar"),
        ("Putting something on a surface", "putting something on a surface"),
        ("PlayingDaf", "playing daf"),
        ("TaiChi", "tai chi"),
        ("Skijet", "skijet"),
        ("shoot_ball", "shoot ball"),
    ],
)
def test_readable_forms(raw, want):
    assert readable(raw) == want


@pytest.mark.parametrize("name, n", [("ucf101", 101), ("hmdb51", 51), ("kinetics400", 400), ("kinetics700", 700), ("ssv2", 174)])
def test_bundled_sets_have_their_size_and_no_duplicates(name, n):
    ls = load_labels(name)
    assert len(ls) == n == len(set(ls.labels)) == len(ls.readable)


@pytest.mark.parametrize("name", ["ucf101", "hmdb51", "kinetics400"])
def test_plain_words_variants_match_their_sets_line_for_line(name):
    from importlib import resources

    # The benchmarks rank each bundled row's label again in plain words (benchmarks/plain_labels.py),
    # found by its line: a missing, empty or repeated line would pair a clip with another label.
    path = resources.files("vidsense.agents").joinpath(f"labelsets/{name}.plain.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    original = load_labels(name)
    assert len(lines) == len(original) and all(ln.strip() == ln and ln for ln in lines)
    assert len({ln.lower() for ln in lines}) == len(lines)
    with resources.as_file(path) as file:
        assert len(load_labels(str(file))) == len(original)
    # Written as a user would, not the names again: most lines differ from the readable names.
    assert sum(ln.lower() != r.lower() for ln, r in zip(lines, original.readable)) >= 0.6 * len(lines)


def test_bundled_sets_keep_exact_spelling():
    assert "SoccerJuggling" in load_labels("ucf101").labels
    assert "draw_sword" in load_labels("hmdb51").labels
    assert "juggling soccer ball" in load_labels("k400").labels
    assert load_labels("kinetics400").labels[0] == "abseiling"
    assert set(BUNDLED) == {"ucf101", "hmdb51", "kinetics400", "kinetics700", "ssv2"}


def test_inline_list_and_file(tmp_path, caplog):
    ls = load_labels("running, swimming ,  ,cooking")
    assert ls.labels == ("running", "swimming", "cooking")
    f = tmp_path / "mine.txt"
    f.write_text("Diving\n\nDiving\nHorseRiding\n")
    with caplog.at_level("WARNING"):
        ls = load_labels(str(f))
    assert ls.name == "mine" and ls.labels == ("Diving", "HorseRiding")
    assert ls.readable == ("diving", "horse riding")
    assert "duplicate" in caplog.text


def test_list_argument_is_taken_as_labels():
    assert load_labels(["a b", "c"]).labels == ("a b", "c")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("ucf1010", "unknown label set 'ucf1010'"),
        ("", "label list is empty"),
        (" , ,", "label list is empty"),
        ("missing/labels.txt", "label file not found"),
    ],
)
def test_bad_label_specs_raise_one_line_input_errors(spec, message):
    with pytest.raises(InputError) as e:
        load_labels(spec)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_empty_label_file(tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("\n\n")
    with pytest.raises(InputError, match="empty.txt: label list is empty"):
        load_labels(str(f))


def test_directory_as_label_file(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        load_labels(str(tmp_path))


def test_labelset_hash_depends_on_content():
    a = LabelSet.from_labels("x", ["a", "b"])
    b = LabelSet.from_labels("x", ["b", "a"])
    assert a.sha256 != b.sha256


class _Counting:
    """The bundled MiniLM, counting how many texts it is asked to embed."""

    def __init__(self) -> None:
        from agents_fixtures import encoder

        self.inner, self.name, self.texts = encoder(), "minilm-l6-v2", 0

    def encode(self, texts):
        self.texts += len(texts)
        return self.inner.encode(texts)


@pytest.mark.slow
def test_label_embeddings_are_kept_on_disk_for_the_next_process(tmp_path, caplog):
    from vidsense.agents.shortlist import LabelIndex

    labels = load_labels("hmdb51")  # 51 labels: a list of any size is kept
    first = _Counting()
    matrix = LabelIndex(first, cache_dir=tmp_path).matrix(labels)
    assert first.texts == 51 and len(list((tmp_path / "minilm-l6-v2").glob("*.vectors"))) == 1
    # A new process (a new index) reads them instead of embedding 51 texts again.
    second = _Counting()
    assert np.array_equal(LabelIndex(second, cache_dir=tmp_path).matrix(labels), matrix) and second.texts == 0
    # A list that is no label set's stays in memory only.
    LabelIndex(second, cache_dir=tmp_path).embed(["riding a bike", "juggling"])
    assert len(list(tmp_path.rglob("*.vectors"))) == 1
    # A damaged file (one flipped byte) is found by its hash, said and replaced.
    stored = next(tmp_path.rglob("*.vectors"))
    raw = bytearray(stored.read_bytes())
    raw[200] ^= 0xFF
    stored.write_bytes(bytes(raw))
    third = _Counting()
    assert np.allclose(LabelIndex(third, cache_dir=tmp_path).matrix(labels), matrix, atol=1e-5) and third.texts == 51
    assert "unreadable" in caplog.text and "SHA-256" in caplog.text
    fourth = _Counting()
    assert np.array_equal(LabelIndex(fourth, cache_dir=tmp_path).matrix(labels), matrix) and fourth.texts == 0


def _no_encoder():
    raise AssertionError("the encoder was loaded")


@pytest.mark.slow
def test_a_cached_rerun_loads_no_encoder(tmp_path):
    """The vocabulary, the label names and a clip's text are read back from disk by a new index that
    is never given an encoder it could load."""
    from vidsense.agents.shortlist import LabelIndex
    from vidsense.agents.vocabulary import transfer_vocabulary

    labels = load_labels("ucf101")
    vocab = lambda: ("riding a bike", "juggling balls", "bicycle", "eating, drinking or smoking")  # noqa: E731
    first = _Counting()
    index = LabelIndex(first, cache_dir=tmp_path, name="minilm-l6-v2", vocabulary=vocab)
    classes = index.embed(["bicycle", "riding a bike"])
    names, query = index.names(labels), index.query("objects: bicycle; movement looks like: riding a bike")
    assert first.texts == 4 + 101 + 1  # the whole vocabulary once, the names, the text
    again = LabelIndex(_no_encoder, cache_dir=tmp_path, name="minilm-l6-v2", vocabulary=vocab)
    assert np.array_equal(again.embed(["bicycle", "riding a bike"]), classes)
    assert np.array_equal(again.names(labels), names)
    assert np.array_equal(again.query("objects: bicycle; movement looks like: riding a bike"), query)
    # Rows read from the vocabulary are the vectors the encoder gives the names alone.
    assert np.allclose(classes, _Counting().encode(["bicycle", "riding a bike"]), atol=1e-5)
    # A name outside the vocabulary needs the encoder.
    with pytest.raises(AssertionError, match="encoder was loaded"):
        again.embed(["bicycle", "a unicycle"])
    # Clip texts' vectors are bounded: past the limit the least recently written go.
    import os

    queries = tmp_path / "minilm-l6-v2" / "queries"
    os.utime(next(queries.glob("*/*.vectors")), (0, 0))  # the first clip's text, written long ago
    for i in range(1, 6):
        index.query(f"clip number {i}")
        os.utime(max(queries.glob("*/*.vectors"), key=lambda f: f.stat().st_mtime_ns), (i, i))  # then one a second
    assert again.prune_queries(keep=3) == 3
    kept = sorted(f.stat().st_mtime for f in queries.glob("*/*.vectors"))
    assert kept == [3, 4, 5]
    # The shipped vocabulary holds every gesture as the scorer embeds it (by its meaning).
    assert "eating, drinking or smoking" in transfer_vocabulary() and "hand to mouth" not in transfer_vocabulary()
