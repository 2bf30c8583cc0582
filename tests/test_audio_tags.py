"""YAMNet audio tags: the numpy log-mel front end, the graph's quantisation, real tags on synthetic audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import ESPEAK, NO_ESPEAK, mux_mp4, noise, silence, speak, tone

from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import PerceptionConfig, PerceptionModel, create
from vidsense.services.perception.audio_tags import (
    MEL_BANDS,
    PATCH_FRAMES,
    PATCH_HOP_FRAMES,
    PATCH_SAMPLES,
    STFT_HOP,
    Quantisation,
    YamnetTagger,
    graph_quantisation,
    log_mel,
    mel_matrix,
    patches,
)
from vidsense.services.settings import load_settings
from vidsense.services.timeline import make_windows


def test_mel_matrix_is_yamnets_filter_bank() -> None:
    m = mel_matrix()
    assert m.shape == (257, MEL_BANDS)
    assert (m >= 0).all() and m.max() <= 1.0
    assert not m[0].any()  # DC carries no weight
    hz = np.linspace(0, 8000, 257)
    covered = hz[m.sum(axis=1) > 0]
    assert 125 < covered.min() < 160 and 7400 < covered.max() < 7500
    # Band centres rise with the band index.
    assert (np.diff(m.argmax(axis=0)) >= 0).all()


def test_log_mel_shapes_and_values() -> None:
    assert log_mel(np.zeros(399, np.float32)).shape == (0, MEL_BANDS)
    spec = log_mel(silence(1.0))
    assert spec.shape == (1 + (16000 - 400) // 160, MEL_BANDS)  # 98 frames, not centred
    assert np.allclose(spec, np.log(0.001))  # silence sits at the log offset
    # A 1 kHz tone: the loudest band is the one whose triangle peaks nearest 1 kHz.
    spec = log_mel(tone(1.0, hz=1000.0, amplitude=0.5))
    band = int(np.median(spec.argmax(axis=1)))
    assert abs(np.linspace(0, 8000, 257)[mel_matrix()[:, band].argmax()] - 1000) < 60
    # Magnitude (not power) spectrum: doubling the amplitude adds log 2 in the peak band.
    louder = log_mel(tone(1.0, hz=1000.0, amplitude=1.0))
    assert np.median(louder[:, band] - spec[:, band]) == pytest.approx(np.log(2), abs=0.01)


def test_patches_pad_short_audio_and_overlap_by_half() -> None:
    assert patches(tone(0.3)).shape == (1, PATCH_FRAMES, MEL_BANDS)
    assert patches(np.zeros(PATCH_SAMPLES, np.float32)).shape == (1, PATCH_FRAMES, MEL_BANDS)
    two_s = patches(noise(2.0))
    assert two_s.shape == (3, PATCH_FRAMES, MEL_BANDS)
    assert np.array_equal(two_s[0, 48:], two_s[1, :48])


def test_quantisation_round_trip() -> None:
    q = Quantisation(scale=0.05, zero_point=144)
    x = np.array([-100.0, -6.9, 0.0, 1.234, 100.0], np.float32)
    codes = q.quantise(x)
    assert codes.dtype == np.uint8 and codes[0] == 0 and codes[-1] == 255 and codes[2] == 144
    assert q.dequantise(codes)[3] == pytest.approx(1.234, abs=0.025)


@pytest.fixture(scope="module")
def tagger() -> YamnetTagger:
    model = create("audio-tags", PerceptionConfig.from_settings(load_settings(device="cpu")))
    assert isinstance(model, PerceptionModel) and isinstance(model, YamnetTagger)
    return model


@pytest.mark.slow
def test_graph_quantisation_is_read_from_the_model(tagger: YamnetTagger) -> None:
    q_in, q_out = graph_quantisation(tagger.folder / "model.onnx", "audio", "class_scores")
    # The input range must span YAMNet's log-mel range: log(0.001) at the bottom.
    assert q_in.dequantise(np.array([0], np.uint8))[0] == pytest.approx(np.log(0.001), abs=q_in.scale)
    assert q_in.dequantise(np.array([255], np.uint8))[0] > 4.0
    assert 0 < q_out.scale < 2 and 0 <= q_out.zero_point <= 255


@pytest.mark.slow
def test_synthetic_sounds_get_plausible_tags(tagger: YamnetTagger) -> None:
    def names(audio: np.ndarray) -> list[str]:
        return [name for name, _ in tagger.tags(audio)]

    assert names(silence(2.0))[:1] == ["silence"]
    assert {"sine wave", "beep/bleep", "tone", "dial tone", "telephone", "busy signal"} & set(names(tone(2.0, 1000.0)))
    assert {"white noise", "noise", "static", "pink noise"} & set(names(noise(2.0, amplitude=0.3)))
    # The scores are the model's own, one row per 0.96-s patch at a 0.48-s hop: each patch scored
    # alone gives its row, and every score is the sigmoid of a dequantised output code. (Scores
    # recorded on one machine are not: ONNX Runtime's integer kernels round differently with and
    # without AVX-512 VNNI, and seeded noise sits near the model's edges. The same noise scored
    # 0.68/0.82/0.68 at most per patch on one CPU, 0.50/0.32/0.82 on another.)
    audio = noise(2.0)
    scores = tagger.scores(audio)
    assert scores.shape == (3, 521)
    hop = PATCH_HOP_FRAMES * STFT_HOP
    for i, row in enumerate(scores):
        np.testing.assert_array_equal(tagger.scores(audio[i * hop : i * hop + PATCH_SAMPLES])[0], row)
    _, q_out = graph_quantisation(tagger.folder / "model.onnx", "audio", "class_scores")
    p = scores.astype(np.float64)
    inner = p[(p > 1e-6) & (p < 1 - 1e-6)]
    codes = np.log(inner / (1 - inner)) / q_out.scale + q_out.zero_point
    assert len(inner) > 100 and np.abs(codes - np.rint(codes)).max() < 0.02
    assert {"white noise", "noise", "static", "pink noise"} & set(names(audio))


@pytest.mark.slow
@pytest.mark.skipif(ESPEAK is None, reason=NO_ESPEAK)
def test_describe_tags_speech_and_silence_windows(tagger: YamnetTagger, tmp_path: Path) -> None:
    speech = speak("Okay, one more time. Put the cup on the table and turn it around slowly.")
    audio = np.concatenate([silence(2.0), speech[: 4 * 16000], silence(2.0)])
    media = Media.open(mux_mp4(tmp_path / "v.mp4", audio))
    windows = make_windows(media.info.duration_s)
    obs = tagger.describe(media, windows).observations
    by_window = {w.index: [o.text for o in obs if o.window == w.index] for w in windows}
    assert by_window[0][:1] == ["silence"]
    assert "speech" in by_window[1] and "speech" in by_window[2]
    assert by_window[len(windows) - 1][:1] == ["silence"]
    assert all(o.modality == "sound" and o.kind == "sound" and 0.2 <= o.score < 1 for o in obs)
    assert all(len([o for o in obs if o.window == w.index]) <= tagger.top_k for w in windows)
    params = tagger.params()
    assert params["weights"].startswith("cf149c90") and params["threshold"] == 0.2


@pytest.mark.slow
def test_video_without_audio_gets_no_tags(tagger: YamnetTagger, example_video: Path) -> None:
    media = Media.open(example_video)
    assert not media.info.has_audio
    assert tagger.describe(media, make_windows(media.info.duration_s)).observations == ()


def test_unknown_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown pool"):
        YamnetTagger(ModelEnv(home=load_settings().home), pool="median")
