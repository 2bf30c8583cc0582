"""Speech to text: gating, window mapping, real faster-whisper on synthetic speech, openai-whisper backend."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from audio_fixtures import ESPEAK, NO_ESPEAK, melody, mux_mp4, noise, silence, speak, tone

from vidsense.services.errors import InputError
from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import Perception, PerceptionConfig, PerceptionModel, create
from vidsense.services.perception.speech import (
    DetectedLanguage,
    Segment,
    SpeechGate,
    SpeechRecognizer,
    Transcript,
    VadSettings,
    Word,
    make_speech,
    segments_to_observations,
)
from vidsense.services.settings import load_settings
from vidsense.services.timeline import make_windows

needs_espeak = pytest.mark.skipif(ESPEAK is None, reason=NO_ESPEAK)
SENTENCE = "Okay, one more time. Put the cup on the table and turn it around slowly."


def _seg(text: str = " put the cup down", **kw: float) -> Segment:
    values = {"start_s": 0.0, "end_s": 1.0, "avg_logprob": -0.3, "no_speech_prob": 0.1, "compression_ratio": 1.2, **kw}
    return Segment(text=text, **values)


def test_gate_rejects_each_kind_of_doubt() -> None:
    gate = SpeechGate()
    assert gate.passes(_seg())
    assert not gate.passes(_seg(no_speech_prob=0.8))  # decoder thinks it is not speech
    assert not gate.passes(_seg(avg_logprob=-1.4))  # decoder is guessing
    assert not gate.passes(_seg(compression_ratio=3.1))  # repetition loop
    assert not gate.passes(_seg(text=" ♪ ... ♪"))  # no words at all
    assert SpeechGate(max_no_speech_prob=0.9).passes(_seg(no_speech_prob=0.8))


def test_words_split_at_window_boundaries_by_midpoint() -> None:
    windows = make_windows(6.0)  # 0-2, 2-4, 4-6
    words = (
        Word(" put", 1.2, 1.5, 0.9),
        Word(" the", 1.6, 1.9, 0.8),
        Word(" cup", 1.9, 2.3, 0.7),  # midpoint 2.1: second window
        Word(" down.", 2.4, 2.9, 0.6),
    )
    seg = Segment(" put the cup down.", 1.2, 2.9, -0.2, 0.05, 1.1, words)
    obs = segments_to_observations([seg], windows, offset_s=0.0, source_model="speech")
    assert [(o.window, o.text) for o in obs] == [(0, "put the"), (1, "cup down.")]
    assert obs[0].start_s == 1.2 and obs[0].end_s == 1.9
    assert obs[1].score == pytest.approx(0.65)
    assert all(o.modality == "speech" and o.kind == "speech" for o in obs)
    # An offset moves everything; words beyond the last window are dropped.
    shifted = segments_to_observations([seg], windows, offset_s=3.5, source_model="speech")
    assert [(o.window, o.text) for o in shifted] == [(2, "put the cup")]
    # Without word timings a segment goes to the window of its midpoint.
    bare = Segment(" hello there", 2.5, 3.0, -0.1, 0.0, 1.0)
    assert [(o.window, o.text) for o in segments_to_observations([bare], windows, 0.0, "speech")] == [(1, "hello there")]


def _config(**kw) -> PerceptionConfig:
    return PerceptionConfig.from_settings(load_settings(**kw))


def test_bad_model_references_are_one_line_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a bundled model name or an existing path"):
        make_speech(_config(home=tmp_path, speech_model=str(tmp_path / "missing-model")))
    with pytest.raises(InputError, match=r"not a \.pt checkpoint"):
        make_speech(_config(home=tmp_path, speech_backend="openai-whisper", speech_model="whisper-tiny-en"))
    with pytest.raises(InputError, match="unknown speech backend 'vosk'"):
        make_speech(PerceptionConfig(ModelEnv(tmp_path), speech_backend="vosk"))


class ScriptedEngine:
    """A speech backend that returns a fixed transcript."""

    name = "scripted"

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript

    def fingerprint(self) -> dict:
        return {"weights": "none"}

    def transcribe(self, audio: np.ndarray, vad: VadSettings) -> Transcript:
        return self.transcript


def test_language_is_a_note_of_the_call_that_heard_it(tmp_path: Path) -> None:
    words = (Word(" hello", 0.5, 0.9, 0.9), Word(" there", 1.0, 1.4, 0.8))
    heard = Transcript((Segment(" hello there", 0.5, 1.4, -0.2, 0.05, 1.1, words),), DetectedLanguage("en", 0.98))
    media = Media.open(mux_mp4(tmp_path / "x.mp4", tone(4.0)))
    windows = make_windows(media.info.duration_s)
    found = SpeechRecognizer(ScriptedEngine(heard)).describe(media, windows)
    assert isinstance(found, Perception)
    assert [o.text for o in found.observations] == ["hello there"]
    assert found.notes == ("speech language: en (0.98)",)
    # Segments the gate drops take the language with them: no note. And the same model, having
    # heard English in the call before, does not carry that language into this one.
    doubtful = Transcript((Segment(" hello there", 0.5, 1.4, -0.2, 0.9, 1.1, words),), DetectedLanguage("fr", 0.97))
    engine = ScriptedEngine(heard)
    model = SpeechRecognizer(engine)
    assert model.describe(media, windows).notes == ("speech language: en (0.98)",)
    engine.transcript = doubtful
    assert model.describe(media, windows) == Perception()


@pytest.fixture(scope="module")
def tiny_en() -> SpeechRecognizer:
    model = make_speech(_config(speech_model="whisper-tiny-en", device="cpu"))
    assert isinstance(model, PerceptionModel)
    return model


@pytest.fixture(scope="module")
def spoken_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if ESPEAK is None:
        pytest.skip(NO_ESPEAK)
    # 2.5 s of silence first: the first window must stay empty.
    audio = np.concatenate([silence(2.5), speak(SENTENCE), silence(1.0)])
    return mux_mp4(tmp_path_factory.mktemp("speech") / "spoken.mp4", audio)


@pytest.mark.slow
@needs_espeak
def test_tiny_en_transcribes_synthetic_speech_into_the_right_windows(tiny_en: SpeechRecognizer, spoken_mp4: Path) -> None:
    media = Media.open(spoken_mp4)
    windows = make_windows(media.info.duration_s)
    found = tiny_en.describe(media, windows)
    obs = found.observations
    text = " ".join(o.text for o in obs).lower()
    for word in ("one more time", "cup", "table", "turn"):
        assert word in text, text
    assert all(o.window != 0 for o in obs), "speech invented in the silent first window"
    assert min(o.start_s for o in obs) >= 2.0
    assert all(windows[o.window].start_s - 0.5 <= o.start_s <= windows[o.window].end_s for o in obs)
    assert all(0 < o.score < 1 and o.source_model == "speech" and o.modality == "speech" for o in obs)
    assert len(found.notes) == 1 and found.notes[0].startswith("speech language: en (")
    params = tiny_en.params()
    assert params["backend"] == "faster-whisper" and params["compute_type"] == "int8"
    assert params["weights"] == "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,audio",
    [
        ("silence", silence(6.0)),
        ("tone", tone(6.0)),
        ("white noise", noise(6.0, amplitude=0.2)),
        ("melody", melody(6.0)),
    ],
)
def test_no_speech_is_invented_in_non_speech(tiny_en: SpeechRecognizer, tmp_path: Path, name: str, audio: np.ndarray) -> None:
    media = Media.open(mux_mp4(tmp_path / "x.mp4", audio))
    found = tiny_en.describe(media, make_windows(media.info.duration_s))
    assert found.observations == (), name
    assert found.notes == (), "no speech, so no language note"


@pytest.mark.slow
@needs_espeak
def test_audio_only_file_and_window_subset(tiny_en: SpeechRecognizer, tmp_path: Path) -> None:
    first = speak("The red bicycle is fast.")
    assert len(first) < 3.5 * 16000
    # The second sentence starts at 4 s: the first window of the subset asked for.
    audio = np.concatenate([first, silence(4.0 - len(first) / 16000), speak("Where is my green bottle?")])
    media = Media.open(mux_mp4(tmp_path / "audio_only.mp4", audio, video=False))
    assert not media.info.has_video
    windows = make_windows(media.info.duration_s)
    later = windows[2:]
    obs = tiny_en.describe(media, later).observations
    assert obs and all(o.window >= later[0].index for o in obs)
    assert "green" in " ".join(o.text for o in obs).lower()
    assert "bicycle" not in " ".join(o.text for o in obs).lower()


def _tiny_openai_whisper(path: Path) -> Path:
    """A randomly initialised multilingual Whisper, saved as an openai-whisper checkpoint.

    Its output head is tilted towards end-of-text: a purely random decoder never
    stops and emits random timestamps that make openai-whisper crawl through the
    audio a few frames per decode (minutes on a CPU). Everything else is random.
    """
    import torch
    import whisper
    from whisper.model import ModelDimensions, Whisper
    from whisper.tokenizer import get_tokenizer

    torch.manual_seed(0)
    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=32,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=51865,
        n_text_ctx=448,
        n_text_state=32,
        n_text_head=2,
        n_text_layer=1,
    )
    model = Whisper(dims)
    eot = get_tokenizer(multilingual=True).eot
    with torch.no_grad():
        # openai-whisper allocates the decoder's positional embedding with torch.empty
        # (a real checkpoint overwrites it); uninitialised memory can hold NaN.
        model.decoder.positional_embedding.normal_(0.0, 0.02)
        # logits = ln(x) @ E.T; with ln's weight 0 its output is its bias, so logits = E @ bias.
        direction = torch.nn.functional.normalize(torch.randn(dims.n_text_state), dim=0)
        model.decoder.token_embedding.weight[eot] = 50 * direction
        model.decoder.ln.weight.zero_()
        model.decoder.ln.bias.copy_(direction)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    assert whisper.load_model(str(path), device="cpu").dims == dims
    return path


@pytest.mark.slow
@needs_espeak
def test_openai_whisper_backend_with_a_tiny_random_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("whisper")
    import whisper

    ckpt = _tiny_openai_whisper(tmp_path / "tiny-random.pt")
    config = _config(home=tmp_path, speech_backend="openai-whisper", speech_model=str(ckpt), device="cpu")
    model = create("speech", config)
    params = model.params()
    assert params["backend"] == "openai-whisper" and params["fp16"] is False
    assert len(params["weights"]) == 64

    # Silence: VAD finds no speech, so the checkpoint is not even loaded.
    quiet = Media.open(mux_mp4(tmp_path / "quiet.mp4", silence(4.0)))
    assert model.describe(quiet, make_windows(quiet.info.duration_s)) == Perception()
    assert "model" not in vars(model.engine)

    # Speech after 2 s of silence: only the VAD's spans are decoded, so every raw
    # segment lies after the silence, and the language comes from the checkpoint.
    audio = np.concatenate([silence(2.0), speak("Hello there, this is a test.")])
    raw = model.engine.transcribe(audio, model.vad)
    assert "model" in vars(model.engine)
    assert raw.language is not None and raw.language.code in whisper.tokenizer.LANGUAGES
    assert 0 <= raw.language.probability <= 1
    assert raw.segments and all(1.5 <= s.start_s < len(audio) / 16000 for s in raw.segments)

    # Its segments hold no words (end-of-text at once), so the gate lets nothing through.
    media = Media.open(mux_mp4(tmp_path / "spoken.mp4", audio))
    assert model.describe(media, make_windows(media.info.duration_s)) == Perception()  # no observations, no language note
