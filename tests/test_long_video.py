"""Long videos: motion clips and audio are read span by span, so memory does not grow with length."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from long_fixtures import Brightness, loop_video, tone_piece
from media_fixtures import write_video

from vidsense import InputError, Pipeline
from vidsense.app import cli
from vidsense.services.media import video
from vidsense.services.media.motion_clip import motion_clips
from vidsense.services.media.video import SAMPLE_RATE, Media, decode_audio, decode_audio_span
from vidsense.services.perception import PerceptionConfig, speech
from vidsense.services.perception.motion.flow import FlowDescriber
from vidsense.services.perception.perceiver import Perceiver
from vidsense.services.perception.speech import DetectedLanguage, Segment, Transcript, Word
from vidsense.services.settings import load_settings
from vidsense.services.timeline import make_windows

# Describes a short video (libraries imported, decoders warm), then the long one through the
# Perceiver, and prints the peak RSS after each. The real optical flow, sparsely sampled, and
# two stand-ins that read every motion clip and every window's audio: YAMNet and MoveNet over
# two hours take far too long for a test, and what grew with length was the frames and
# audio handed to models, not the models. VmHWM, not ru_maxrss: Linux carries ru_maxrss
# over from the forking parent across exec.
MEASURE = """
import json, sys
from long_fixtures import Brightness, Loudness
from vidsense.services.perception.motion.flow import FlowDescriber
from vidsense.services.perception.perceiver import Perceiver
from vidsense.services.perception import PerceptionConfig
from vidsense.services.settings import load_settings


def peak_mb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024


models = {"flow": FlowDescriber(pairs_per_s=0.2, clip_frames=8), "brightness": Brightness(), "loudness": Loudness()}
perceiver = Perceiver(PerceptionConfig.from_settings(load_settings(perception=list(models), cache=False)), models=models)
perceiver.describe(sys.argv[1])
warm_mb = peak_mb()
tl = perceiver.describe(sys.argv[2])
print(json.dumps({"warm_mb": warm_mb, "long_mb": peak_mb(), "models": list(tl.models), "windows": len(tl.windows),
                  "counts": {m: sum(o.source_model == m for o in tl.observations) for m in models}}))
"""


@pytest.fixture
def decoded(monkeypatch):
    """The first time of every decode through ``Media.frames_at``, in order."""
    firsts: list[float] = []
    real = Media.frames_at
    monkeypatch.setattr(Media, "frames_at", lambda self, times, max_side=None: firsts.append(times[0]) or real(self, times, max_side))
    return firsts


def test_motion_clips_decode_one_group_at_a_time(tmp_path, decoded):
    m = Media.open(write_video(tmp_path / "a.mp4", seconds=25.0, fps=4))
    windows = make_windows(m.info.duration_s)
    clips = motion_clips(m, windows, frames=8)
    assert len(clips) == 3 and len(decoded) == 1, "only the first group is decoded up front"
    it = iter(clips)
    first = next(it)
    assert first.end_s <= 10.0 and len(decoded) == 1, "the first group comes from the Media, not a second decode"
    second = next(it)
    assert second.start_s >= first.end_s and len(decoded) == 2 and decoded[-1] >= 10.0
    assert [c.start_s for c in it] == [20.0] and len(decoded) == 3


def test_clip_models_run_together_one_decode_per_group_same_observations(tmp_path, monkeypatch, decoded):
    clip = write_video(tmp_path / "a.mp4", seconds=35.0, fps=4)
    # The Media keeps one stack only: sharing must come from running the models together.
    monkeypatch.setattr(video, "SHARED_FRAMES", 1)
    config = PerceptionConfig.from_settings(load_settings(perception=["flow", "brightness"], cache=False))
    models = {"flow": FlowDescriber(clip_frames=8), "brightness": Brightness()}
    together = Perceiver(config, models=models).describe(clip)
    assert len(decoded) == 4, "one decode per group for both models"
    alone = [Perceiver(replace(config, models=(n,)), models=models).describe(clip) for n in ("flow", "brightness")]
    assert len(decoded) == 12, "alone, each model decodes every group (the Media keeps just one)"
    assert together.observations == tuple(sorted(alone[0].observations + alone[1].observations, key=lambda o: (o.window, o.start_s, o.source_model != "flow")))
    assert set(together.timings) == {"flow", "brightness"}
    broken = Perceiver(config, models={**models, "brightness": Brightness(fail_at=10.0)}).describe(clip)
    assert broken.models == ("flow",) and broken.failures == ("brightness: RuntimeError: simulated crash",)
    assert list(broken.observations) == [o for o in together.observations if o.source_model == "flow"]


def test_a_clip_model_at_a_rate_of_its_own_reads_its_own_clips(tmp_path, monkeypatch, decoded):
    clip = write_video(tmp_path / "a.mp4", seconds=35.0, fps=4)
    monkeypatch.setattr(video, "SHARED_FRAMES", 1)
    at_rate = Brightness()
    at_rate.clip_rate = 4.0  # its 8 frames: 2 s around each group's middle
    models = {"flow": FlowDescriber(clip_frames=8), "brightness": at_rate}
    config = PerceptionConfig.from_settings(load_settings(perception=list(models), cache=False))
    both = Perceiver(config, models=models).describe(clip)
    # Four groups (0-10, 10-20, 20-30, 30-35 s), each decoded for flow (spread over the group) and
    # apart for the model at 4 frames/s (from 1 s before the group's middle). Side by side with
    # the Media keeping one stack, a unit may decode its first group twice: compare the set.
    assert sorted(set(decoded)) == [0.625, 4.125, 10.625, 14.125, 20.625, 24.125, 30.3125, 31.625]
    alone = Perceiver(replace(config, models=("brightness",)), models=models).describe(clip)
    assert [o for o in both.observations if o.source_model == "brightness"] == list(alone.observations)
    assert {o.window for o in alone.observations} == {w.index for w in make_windows(35.0)}


def test_side_by_side_the_clip_models_of_a_one_group_video_share_one_decode(tmp_path, monkeypatch, decoded):
    clip = write_video(tmp_path / "a.mp4", seconds=8.0, fps=4)
    # The Media keeps nothing between requests: the clip the separate units share is kept for them.
    monkeypatch.setattr(video, "SHARED_FRAMES", 1)
    models = {"flow": FlowDescriber(clip_frames=8), "brightness": Brightness()}
    config = PerceptionConfig.from_settings(load_settings(perception=list(models), cache=False))
    side = Perceiver(replace(config, perception_threads=2), models=models).describe(clip)
    assert len(decoded) == 1, "one decode for both models, each in its own lane"
    one = Perceiver(replace(config, perception_threads=1), models=models).describe(clip)
    assert side.observations == one.observations and side.models == one.models


def test_shared_frames_stay_under_their_byte_budget(tmp_path, monkeypatch):
    m = Media.open(write_video(tmp_path / "a.mp4", seconds=4.0, fps=10))
    one = m.shared_frames((0.05, 1.05), max_side=80)
    monkeypatch.setattr(video, "SHARED_BYTES", int(one.nbytes * 1.5))
    m.shared_frames((2.05, 3.05), max_side=80)
    assert m.shared_frames((0.05, 1.05), max_side=80) is not one, "the older stack went to keep within the budget"


def test_audio_between_decodes_only_the_blocks_of_its_span(tmp_path, monkeypatch):
    p = write_video(tmp_path / "tone.mp4", seconds=12.0, fps=2, audio_hz=440.0)
    whole = decode_audio(p)
    monkeypatch.setattr(video, "AUDIO_BLOCK_S", 2.0)
    spans = []
    monkeypatch.setattr(video, "decode_audio_span", lambda path, a, b: spans.append((a, b)) or decode_audio_span(path, a, b))
    m = Media.open(p)
    got = m.audio_between(6.5, 7.5)
    assert spans == [(6.0, 8.0)]
    # A seek lands on the same samples a decode from the start gives.
    np.testing.assert_allclose(got, whole[104000:120000], atol=1e-4)
    assert len(m.audio_between(7.0, 7.9)) == 14400 and spans == [(6.0, 8.0)], "a kept block is not decoded again"
    across = m.audio_between(7.5, 8.5)
    assert spans == [(6.0, 8.0), (8.0, 10.0)]
    np.testing.assert_allclose(across, whole[120000:136000], atol=1e-4)
    assert len(m.audio_between(11.0, 20.0)) == len(whole) - 176000, "past the end is shorter, as before"


def test_a_track_within_one_block_is_the_whole_track_decode(tmp_path):
    p = write_video(tmp_path / "tone.mp4", seconds=3.0, fps=2, audio_hz=440.0)
    whole = decode_audio(p)
    m = Media.open(p)
    assert np.array_equal(m.audio_between(0.0, 3.0), whole[:48000])
    assert np.array_equal(m.audio_between(1.25, 2.5), whole[20000:40000])
    assert np.array_equal(decode_audio_span(p, 0.0, 1.0), whole[:16000])


class MidpointEngine:
    """A speech backend that hears one word at the middle of whatever audio it is given."""

    name = "midpoint"

    def __init__(self):
        self.heard_s: list[float] = []

    def fingerprint(self):
        return {}

    def transcribe(self, audio, vad):
        mid = len(audio) / SAMPLE_RATE / 2
        self.heard_s.append(len(audio) / SAMPLE_RATE)
        word = Word(" hello", mid - 0.1, mid + 0.1, 0.9)
        language = DetectedLanguage("en" if len(self.heard_s) == 2 else "fr", 0.9)
        return Transcript((Segment("hello", mid - 0.1, mid + 0.1, -0.1, 0.0, 1.0, (word,)),), language)


def test_speech_hears_a_long_track_in_overlapping_spans(tmp_path, monkeypatch):
    m = Media.open(write_video(tmp_path / "tone.mp4", seconds=25.0, fps=2, audio_hz=440.0))
    windows = make_windows(m.info.duration_s)
    engine = MidpointEngine()
    one = speech.SpeechRecognizer(engine).describe(m, windows)
    assert engine.heard_s == [pytest.approx(25.0, abs=0.1)], "a short video is heard whole"
    assert [o.start_s for o in one.observations] == [pytest.approx(12.4, abs=0.1)]
    monkeypatch.setattr(speech, "SPEECH_SPAN_S", 10.0)
    engine = MidpointEngine()
    found = speech.SpeechRecognizer(engine).describe(m, windows)
    # Spans of windows [0, 10), [10, 20), [20, 25), each heard with 5 s more either side.
    assert engine.heard_s == [pytest.approx(s, abs=0.1) for s in (15.0, 20.0, 10.0)]
    # Each span keeps the words of its own windows, on the video's clock.
    assert [o.start_s for o in found.observations] == [pytest.approx(t, abs=0.1) for t in (7.4, 14.9, 19.9)]
    assert [o.window for o in found.observations] == [3, 7, 10]
    assert found.notes == ("speech language: fr (0.90)",), "the language of the span with the most speech; ties go to the first"


def test_a_video_over_max_duration_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    clip = write_video(tmp_path / "three.mp4", seconds=3.0)
    with pytest.raises(InputError, match=r"three\.mp4: 3 s long, over the max_duration_s limit of 2 s"):
        Pipeline(perception=["flow"], max_duration_s=2.0, cache=False).describe(clip)
    monkeypatch.setenv("VIDSENSE_PERCEPTION", '["flow"]')
    monkeypatch.setenv("VIDSENSE_MAX_DURATION_S", "2.5")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["describe", str(clip), "--no-cache"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and str(clip) in err and "limit of 2.5 s" in err and "VIDSENSE_MAX_DURATION_S" in err
    assert Pipeline(perception=["flow"], max_duration_s=3.5, cache=False).describe(clip).models == ("flow",)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command")
def test_describing_two_hours_keeps_memory_flat(tmp_path):
    piece = tone_piece(tmp_path / "piece.mp4")
    long = loop_video(piece, tmp_path / "long.mp4", 7200)
    short = loop_video(piece, tmp_path / "short.mp4", 60)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    res = subprocess.run([sys.executable, "-c", MEASURE, str(short), str(long)], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["models"] == ["flow", "brightness", "loudness"] and got["windows"] >= 3600
    assert got["counts"]["brightness"] == got["counts"]["loudness"] == got["windows"] and got["counts"]["flow"] > 0
    # Holding the whole track (460 MB at 16 kHz, twice that while it was joined) and every
    # motion clip (330 MB here), as before, grew the peak by over a gigabyte.
    assert got["long_mb"] - got["warm_mb"] < 150, got
