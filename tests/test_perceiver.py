"""The Perceiver: models over windows, caching, partial timelines, bad input."""

import pytest

from media_fixtures import sine, write_audio_only, write_video
from vidsense.services.errors import InputError, ProcessingError
from vidsense.services.perceiver import Perceiver
from vidsense.services.settings import load_settings


class CountingFlow:
    """Wraps the real optical-flow describer and counts how often it runs."""

    def __init__(self, inner):
        self.inner = inner
        self.card = inner.card
        self.calls = 0

    def params(self):
        return self.inner.params()

    def describe(self, media, windows):
        self.calls += 1
        return self.inner.describe(media, windows)


def _perceiver(names, **kw):
    return Perceiver(load_settings(perception=names, **kw))


def test_timeline_from_real_flow_model_and_cache(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=4.0, fps=10)
    p = _perceiver(["flow"])
    counting = CountingFlow(p.model("flow"))
    p._models["flow"] = counting
    tl = p.describe(video)
    assert counting.calls == 1
    assert [w.index for w in tl.windows] == [0, 1]
    assert tl.models == ("flow",)
    assert tl.observations and all(o.modality == "sight" for o in tl.observations)
    assert "no audio track" in " ".join(tl.notes)
    again = p.describe(video)
    assert counting.calls == 1, "a second run of the same video must not call the model"
    assert again.observations == tl.observations
    # A parameter that changes the windows changes the key: the model runs again.
    p.settings = load_settings(perception=["flow"], window_s=1.0)
    p.describe(video)
    assert counting.calls == 2


def test_cache_can_be_disabled(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=2.0)
    p = _perceiver(["flow"], cache=False)
    counting = CountingFlow(p.model("flow"))
    p._models["flow"] = counting
    p.describe(video)
    p.describe(video)
    assert counting.calls == 2


def test_modalities_select_models(tmp_path):
    p = _perceiver(["flow", "audio-tags"])
    assert p.selected(["sound"]) == ["audio-tags"]
    assert p.selected(["sight"]) == ["flow"]
    with pytest.raises(InputError, match="smell"):
        p.selected(["smell"])


def test_audio_only_input_skips_sight_models(tmp_path):
    audio = write_audio_only(tmp_path / "tone.m4a", sine(440, 3.0))
    tl = _perceiver(["flow"]).describe(audio)
    assert tl.observations == () and tl.models == ()
    assert "no video stream" in " ".join(tl.notes)
    assert not tl.video.has_video


def test_one_failing_model_keeps_the_others(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=2.0)
    p = _perceiver(["flow", "pose"], cache=False)

    class Broken:
        card = p.model("pose").card

        def params(self):
            return {}

        def describe(self, media, windows):
            raise RuntimeError("simulated crash")

    p._models["pose"] = Broken()
    tl = p.describe(video)
    assert tl.models == ("flow",)
    assert any("pose" in n and "simulated crash" in n for n in tl.notes)


def test_unknown_model_and_bad_files(tmp_path):
    with pytest.raises(InputError, match="unknown perception model 'nope'"):
        _perceiver(["nope"])
    p = _perceiver(["flow"])
    with pytest.raises(InputError, match="no such file"):
        p.describe(tmp_path / "missing.mp4")
    bad = tmp_path / "text.mp4"
    bad.write_text("hello\n" * 100)
    with pytest.raises(ProcessingError, match="text.mp4"):
        p.describe(bad)


def _cannot_load(settings):
    raise ImportError("No module named 'rapidocr_onnxruntime'")


def test_a_model_that_cannot_load_is_a_note_not_a_crash(tmp_path, monkeypatch):
    from vidsense.services import perception

    monkeypatch.setitem(perception.PERCEPTION_MODELS, "unloadable", f"{__name__}:_cannot_load")
    video = write_video(tmp_path / "square.mp4", seconds=2.0)
    p = _perceiver(["flow", "unloadable"], cache=False)
    with pytest.raises(ImportError):
        p.selected(["text"])  # needs the card, which only loading could give
    tl = p.describe(video)
    assert tl.models == ("flow",)
    assert any("unloadable: cannot load" in n and "rapidocr" in n for n in tl.notes)


def test_models_side_by_side_give_the_same_timeline(tmp_path):
    video = write_video(tmp_path / "tone.mp4", seconds=4.0, fps=10, audio_hz=440.0)
    names = ["flow", "audio-tags", "visual-tags"]
    one = _perceiver(names, cache=False, perception_threads=1).describe(video)
    two = _perceiver(names, cache=False, perception_threads=3).describe(video)
    assert two.models == one.models == tuple(names)
    assert two.observations == one.observations and two.notes == one.notes


def test_notes_a_model_leaves_survive_a_cache_hit(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=4.0, fps=10)
    p = _perceiver(["flow"], home=tmp_path / "home")
    counting = CountingFlow(p.model("flow"))
    counting.language = "en (0.98)"  # what the speech model reports after a run
    p._models["flow"] = counting
    first = p.describe(video)
    counting.language = None
    again = Perceiver(p.settings, ["flow"], _models={"flow": counting}).describe(video)  # fresh process-like perceiver
    assert counting.calls == 1
    assert "speech language: en (0.98)" in first.notes and "speech language: en (0.98)" in again.notes
