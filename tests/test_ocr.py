"""Tests of on-screen text reading (PP-OCRv4 through rapidocr_onnxruntime)."""

from __future__ import annotations

import pytest
from visual_fixtures import text_frame, title_card_video, write_audio_only

from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import PerceptionConfig, create
from vidsense.services.perception.ocr import OcrParams, ScreenText, changed_fraction, frame_stride, normalise, thumbnail
from vidsense.services.settings import load_settings
from vidsense.services.timeline import make_windows


def test_normalise_ignores_case_and_spacing():
    assert normalise("  Hello \n World ") == normalise("hello world") == "hello world"


def test_frame_stride_bounds_the_frames_read():
    assert frame_stride(10, 60) == 1
    assert frame_stride(3600, 60) == 60
    assert len(range(0, 3601, frame_stride(3601, 60))) <= 61


@pytest.fixture(scope="module")
def reader():
    model = create("ocr", PerceptionConfig.from_settings(load_settings(device="cpu")))
    assert isinstance(model, ScreenText) and model.params()["frame_max_side"] == 640
    return model


@pytest.mark.slow
def test_reads_each_title_once_and_skips_unchanged_windows(reader, tmp_path, monkeypatch):
    path = title_card_video(tmp_path / "titles.mp4", [("HELLO WORLD", 4.0), ("VIDSENSE 42", 2.0)])
    media = Media.open(path)
    windows = make_windows(media.info.duration_s, 2.0)
    assert len(windows) == 3
    calls = []
    real_read = ScreenText.read
    monkeypatch.setattr(ScreenText, "read", lambda self, rgb: calls.append(1) or real_read(self, rgb))
    obs = reader.describe(media, windows).observations
    assert [(o.window, normalise(o.text)) for o in obs] == [(0, "hello world"), (2, "vidsense 42")]
    assert all(o.modality == "text" and o.source_model == "ocr" and o.score >= 0.6 for o in obs)
    assert len(calls) == 2  # window 1 shows the same card as window 0: not read again


@pytest.mark.slow
def test_text_that_returns_is_reported_again(reader, tmp_path):
    path = title_card_video(tmp_path / "again.mp4", [("HELLO WORLD", 2.0), ("VIDSENSE 42", 2.0), ("HELLO WORLD", 2.0)])
    media = Media.open(path)
    obs = reader.describe(media, make_windows(media.info.duration_s, 2.0)).observations
    assert [normalise(o.text) for o in obs] == ["hello world", "vidsense 42", "hello world"]


@pytest.mark.slow
def test_min_score_and_params(tmp_path):
    strict = ScreenText(ModelEnv(home=load_settings().home), OcrParams(min_score=0.9999999), frame_max_side=480)
    media = Media.open(title_card_video(tmp_path / "t.mp4", [("HELLO WORLD", 2.0)]))
    assert strict.describe(media, make_windows(media.info.duration_s, 2.0)).observations == ()
    assert strict.params()["min_score"] == 0.9999999 and len(strict.params()["det_sha256"]) == 64
    assert strict.params()["frame_max_side"] == 480


@pytest.mark.slow
def test_audio_only_media_has_no_screen_text(reader, tmp_path):
    media = Media.open(write_audio_only(tmp_path / "tone.wav"))
    assert reader.describe(media, make_windows(media.info.duration_s, 2.0)).observations == ()


def test_new_text_on_a_still_background_counts_as_a_change():
    a, b = thumbnail(text_frame("HELLO WORLD")), thumbnail(text_frame("VIDSENSE 42"))
    assert changed_fraction(a, a) == 0.0
    assert changed_fraction(a, b) > OcrParams().change_threshold
