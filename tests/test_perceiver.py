"""The Perceiver: models over windows, caching, partial timelines, bad input."""

import os
from dataclasses import replace

import pytest
from media_fixtures import sine, write_audio_only, write_video

from vidsense.services.errors import InputError, ProcessingError
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig
from vidsense.services.perception.cache import PerceptionCache
from vidsense.services.perception.motion.flow import FlowDescriber
from vidsense.services.perception.perceiver import Perceiver
from vidsense.services.settings import load_settings
from vidsense.services.timeline import Observation


class CountingFlow:
    """Wraps the real optical-flow describer, counts its runs and adds ``notes`` to what it returns."""

    def __init__(self, inner, notes=()):
        self.inner = inner
        self.card = inner.card
        self.calls = 0
        self.notes = tuple(notes)

    def params(self):
        return self.inner.params()

    def describe(self, media, windows):
        self.calls += 1
        found = self.inner.describe(media, windows)
        return Perception(found.observations, found.notes + self.notes)


def _config(names, **kw) -> PerceptionConfig:
    return PerceptionConfig.from_settings(load_settings(perception=names, **kw))


def _perceiver(names, **kw):
    return Perceiver(_config(names, **kw))


def test_config_from_settings_holds_the_perception_part():
    settings = load_settings(perception=["flow", "ocr"], window_s=1.5, frames_per_window=3, device="cpu", cache=False, speech_model="whisper-base")
    config = PerceptionConfig.from_settings(settings)
    assert config.models == ("flow", "ocr")
    assert config.env == ModelEnv(home=settings.home, device="cpu", allow_hub=False)
    assert (config.window_s, config.window_count, config.frames_per_window, config.frame_max_side) == (1.5, None, 3, 640)
    assert config.cache is False and config.speech_model == "whisper-base" and config.speech_backend == "faster-whisper"
    # The profile's defaults arrive through Settings.
    assert PerceptionConfig.from_settings(load_settings(profile="embedded")).models == tuple(load_settings(profile="embedded").perception)
    with pytest.raises(AttributeError):
        config.window_s = 3.0  # frozen


def test_timeline_from_real_flow_model_and_cache(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=4.0, fps=10)
    config = _config(["flow"])
    counting = CountingFlow(FlowDescriber())
    p = Perceiver(config, models={"flow": counting})
    assert p.model("flow") is counting
    tl = p.describe(video)
    assert counting.calls == 1
    assert [w.index for w in tl.windows] == [0, 1]
    assert tl.models == ("flow",)
    assert tl.observations and all(o.modality == "sight" for o in tl.observations)
    assert "no audio track" in " ".join(tl.notes)
    assert set(tl.timings) == {"flow"} and tl.timings["flow"] > 0
    again = p.describe(video)
    assert counting.calls == 1, "a second run of the same video must not call the model"
    assert again.observations == tl.observations
    assert again == tl, "timings take no part in equality"
    assert "timings" not in tl.to_dict()
    # A parameter that changes the windows changes the key: the model runs again.
    Perceiver(replace(config, window_s=1.0), models={"flow": counting}).describe(video)
    assert counting.calls == 2


def test_cache_can_be_disabled(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=2.0)
    counting = CountingFlow(FlowDescriber())
    p = Perceiver(_config(["flow"], cache=False), models={"flow": counting})
    assert p.cache is None
    p.describe(video)
    p.describe(video)
    assert counting.calls == 2


def test_an_injected_cache_is_used(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=2.0)
    cache = PerceptionCache(tmp_path / "own.sqlite")
    counting = CountingFlow(FlowDescriber())
    p = Perceiver(_config(["flow"], home=tmp_path / "home"), cache=cache, models={"flow": counting})
    assert p.cache is cache
    p.describe(video)
    Perceiver(_config(["flow"], home=tmp_path / "home"), cache=cache, models={"flow": counting}).describe(video)
    assert counting.calls == 1
    assert cache.stats().per_model == {"flow": 1, "probe": 1}
    assert not (tmp_path / "home" / "cache" / "perception.sqlite").exists()


def test_default_cache_lives_under_the_config_home(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=2.0)
    home = tmp_path / "home"
    Perceiver(_config(["flow"], home=home), models={"flow": CountingFlow(FlowDescriber())}).describe(video)
    assert PerceptionCache.for_home(home).stats().per_model.get("flow") == 1


def test_modalities_select_models(tmp_path):
    p = _perceiver(["flow", "audio-tags"])
    assert p.model_names == ["flow", "audio-tags"]
    assert p.selected(["sound"]) == ["audio-tags"]
    assert p.selected(["sight"]) == ["flow"]
    with pytest.raises(InputError, match="smell") as e:
        p.selected(["smell"])
    assert str(e.value).startswith("unknown modality 'smell'; choose from sight, speech, sound, text")
    assert "--" not in str(e.value), "a library error must not name CLI flags"


def test_audio_only_input_skips_sight_models(tmp_path):
    audio = write_audio_only(tmp_path / "tone.m4a", sine(440, 3.0))
    tl = _perceiver(["flow"]).describe(audio)
    assert tl.observations == () and tl.models == () and tl.timings == {}
    assert "no video stream" in " ".join(tl.notes)
    assert not tl.video.has_video


def test_one_failing_model_keeps_the_others(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=2.0)
    config = _config(["flow", "pose"], cache=False)

    class Broken:
        card = Perceiver(config).card("pose")

        def params(self):
            return {}

        def describe(self, media, windows):
            raise RuntimeError("simulated crash")

    tl = Perceiver(config, models={"pose": Broken()}).describe(video)
    assert tl.models == ("flow",)
    assert tl.failures == ("pose: RuntimeError: simulated crash",) and not any("simulated crash" in n for n in tl.notes)
    assert set(tl.timings) == {"flow"}


def test_a_model_that_breaks_the_contract_is_a_failure_note(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=2.0)

    class OldStyle:
        card = FlowDescriber.card

        def params(self):
            return {}

        def describe(self, media, windows):
            return [Observation(0, 0.0, 2.0, "sight", "old", "a list, not a Perception")]

    with pytest.raises(ProcessingError, match="flow: TypeError: describe returned a list, expected a Perception"):
        Perceiver(_config(["flow"], cache=False), models={"flow": OldStyle()}).describe(video)


def test_unregistered_models_can_be_injected(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=2.0)

    class Fake:
        card = ModelCard(name="fake", version="1", modalities=("text",), note="a fake model")

        def params(self):
            return {"k": 1}

        def describe(self, media, windows):
            return Perception([Observation(w.index, w.start_s, w.end_s, "text", "fake", "hello", 0.5, "ocr") for w in windows], ("fake note",))

    p = Perceiver(_config(["fake"], cache=False), models={"fake": Fake()})
    assert p.selected(["text"]) == ["fake"] and p.selected(["sight"]) == []
    tl = p.describe(video)
    assert tl.models == ("fake",) and [o.text for o in tl.observations] == ["hello"]
    assert tl.notes[-2:] == ("fake note", "a fake model")


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


def _cannot_load(config):
    assert isinstance(config, PerceptionConfig)
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
    assert len(tl.failures) == 1 and tl.failures[0].startswith("unloadable: cannot load (ImportError") and "rapidocr" in tl.failures[0]
    assert not any("unloadable" in n for n in tl.notes)
    assert type(tl).from_dict(tl.to_dict()).failures == tl.failures
    # load() leaves it out too, and says why, instead of stopping the models that do load.
    assert p.load() == {"unloadable": "cannot load (ImportError: No module named 'rapidocr_onnxruntime')"}
    assert p.load_failures == p.load() and "flow" in p._models


def test_registry_builds_models_from_the_config():
    from vidsense.services import perception
    from vidsense.services.perception.motion.pose import PoseDescriber

    config = _config(["pose"], frames_per_window=3, home="/tmp/some-home")
    pose = perception.create("pose", config)
    assert isinstance(pose, PoseDescriber) and str(pose.home) == "/tmp/some-home"
    assert perception.card_of("flow", config) is FlowDescriber.card
    # Side by side on two cores the light models are built with one thread each; one at a time,
    # their runtimes keep their own defaults.
    lanes = replace(config, perception_threads=2)
    assert lanes.light_threads == (1 if (os.cpu_count() or 1) <= 3 else (os.cpu_count() or 1) // 2)
    for name in ("pose", "flow", "visual-tags", "ocr"):
        assert perception.create(name, lanes).threads == lanes.light_threads, name
        assert perception.create(name, replace(config, perception_threads=1)).threads is None, name
    assert perception.card_of("action", config).heavy and not perception.card_of("pose", config).heavy


@pytest.mark.slow
def test_models_side_by_side_give_the_same_timeline(tmp_path):
    video = write_video(tmp_path / "tone.mp4", seconds=4.0, fps=10, audio_hz=440.0)
    names = ["flow", "audio-tags", "visual-tags", "pose", "action"]
    one = _perceiver(names, cache=False, perception_threads=1).describe(video)
    two = _perceiver(names, cache=False, perception_threads=3).describe(video)
    assert two.models == one.models == tuple(names)
    assert two.observations == one.observations and two.notes == one.notes
    assert set(two.timings) == set(names)


class Stepper:
    """A fake model that works in timed steps, heavy (one run, alone) or light (steps in light turns)."""

    def __init__(self, name, *, heavy, steps, step_s, log):
        self.card = ModelCard(name=name, version="1", modalities=("sight",), cost=2.0 if heavy else 1.0, heavy=heavy)
        self.steps, self.step_s, self.log = steps, step_s, log

    def params(self):
        return {}

    def describe(self, media, windows):
        import time

        from vidsense.services.perception.turns import TURNS

        for _ in range(self.steps):
            if self.card.heavy:  # the Perceiver holds its heavy turn around the whole run
                self.log.append((self.card.name, time.perf_counter(), time.sleep(self.step_s) or time.perf_counter()))
                continue
            with TURNS.light():
                self.log.append((self.card.name, time.perf_counter(), time.sleep(self.step_s) or time.perf_counter()))
        return Perception([Observation(w.index, w.start_s, w.end_s, "sight", self.card.name, self.card.name, 1.0, "objects") for w in windows])


def test_side_by_side_a_heavy_model_runs_alone_and_the_light_ones_fill_the_rest(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=2.0)
    log: list[tuple[str, float, float]] = []
    models = {
        "heavy": Stepper("heavy", heavy=True, steps=1, step_s=0.4, log=log),
        "light1": Stepper("light1", heavy=False, steps=10, step_s=0.02, log=log),
        "light2": Stepper("light2", heavy=False, steps=10, step_s=0.02, log=log),
    }
    config = replace(_config(list(models), cache=False), perception_threads=2)
    tl = Perceiver(config, models=models).describe(video)
    assert tl.models == tuple(models) and not tl.failures
    (_, h0, h1), = [e for e in log if e[0] == "heavy"]
    light = [e for e in log if e[0] != "heavy"]
    assert len(light) == 20
    assert all(end <= h0 or start >= h1 for _, start, end in light), "no light step while the heavy model runs"
    assert any(a[0] != b[0] and a[1] < b[2] and b[1] < a[2] for a in light for b in light), "the light models overlap"
    # A model's time is its own: the light one that waited out the heavy run is not charged for it.
    assert tl.timings["heavy"] >= 0.4 and all(tl.timings[n] < 0.35 for n in ("light1", "light2"))


def test_notes_a_model_returns_survive_a_cache_hit(tmp_path):
    video = write_video(tmp_path / "square.mp4", seconds=4.0, fps=10)
    config = _config(["flow"], home=tmp_path / "home")
    # What the speech model returns beside its observations.
    noting = CountingFlow(FlowDescriber(), notes=["speech language: en (0.98)"])
    first = Perceiver(config, models={"flow": noting}).describe(video)
    # A fresh, process-like perceiver whose model would leave no note: the note comes from the cache.
    silent = CountingFlow(FlowDescriber())
    again = Perceiver(config, models={"flow": silent}).describe(video)
    assert noting.calls == 1 and silent.calls == 0
    assert "speech language: en (0.98)" in first.notes and "speech language: en (0.98)" in again.notes
    assert first.notes == again.notes
