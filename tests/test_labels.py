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

    labels = load_labels("ucf101")
    first = _Counting()
    matrix = LabelIndex(first, cache_dir=tmp_path).matrix(labels)
    assert first.texts == 101 and len(list(tmp_path.glob("minilm-l6-v2-*.npy"))) == 1
    # A new process (a new index) reads them instead of embedding 101 texts again.
    second = _Counting()
    assert np.array_equal(LabelIndex(second, cache_dir=tmp_path).matrix(labels), matrix) and second.texts == 0
    # A clip's few class names stay in memory only.
    LabelIndex(second, cache_dir=tmp_path).embed(["riding a bike", "juggling"])
    assert len(list(tmp_path.glob("*.npy"))) == 1
    # A damaged file is said and replaced.
    next(tmp_path.glob("*.npy")).write_bytes(b"not an array")
    third = _Counting()
    assert np.allclose(LabelIndex(third, cache_dir=tmp_path).matrix(labels), matrix, atol=1e-5) and third.texts == 101
    assert "unreadable" in caplog.text
    assert np.allclose(np.load(next(tmp_path.glob("*.npy"))), matrix, atol=1e-5)
