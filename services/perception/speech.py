"""Speech to text per window, with guards against invented speech.

Whisper models are known to "hear" words in silence, noise and music. Three
guards keep that out of the timeline:

1. voice activity detection (Silero VAD, shipped inside faster-whisper) decides
   where speech is at all; audio without any is never decoded;
2. every decoded segment passes a :class:`SpeechGate` on Whisper's own
   confidence signals: ``no_speech_prob``, ``avg_logprob`` and the compression
   ratio (a repetition loop compresses too well);
3. segments whose text has no letters (``"..."``, ``"♪"``) are dropped.

Segments are mapped to windows by **word timestamps**: each word goes to the
window holding its midpoint, and the consecutive words of one segment that land
in the same window become one observation. So a sentence that spans a window
boundary is split at the word where the boundary falls, never duplicated.

Two backends, picked by the ``speech_backend`` setting from :data:`BACKENDS`:
``faster-whisper`` (default: the bundled tiny.en / base CTranslate2 models, a
local CTranslate2 folder, or an opt-in hub id) and ``openai-whisper`` (a ``.pt``
checkpoint the user has). The language the model detected comes back with the
observations of each call, as the note ``speech language: en (0.98)``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from vidsense.services import model_store
from vidsense.services.errors import InputError, ModelError, ProcessingError, VidsenseError
from vidsense.services.media.motion_clip import group_windows
from vidsense.services.media.video import SAMPLE_RATE, Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig
from vidsense.services.timeline import Observation, Window, window_of

log = logging.getLogger(__name__)

# Whisper hears a long track in spans of this length (38 MB of 16 kHz audio each), cut
# at window edges, with SPEECH_OVERLAP_S more audio either side so that a word cut by
# an edge is heard whole; each span keeps only the words of its own windows.
SPEECH_SPAN_S = 600.0
SPEECH_OVERLAP_S = 5.0

_HAS_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Word:
    """One decoded word with its time span (seconds) and probability."""

    text: str
    start_s: float
    end_s: float
    probability: float


@dataclass(frozen=True)
class Segment:
    """One decoded segment and Whisper's confidence signals for it."""

    text: str
    start_s: float
    end_s: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class DetectedLanguage:
    """The language the model heard (ISO 639-1 code) and how sure it was."""

    code: str
    probability: float

    def __str__(self) -> str:
        return f"{self.code} ({self.probability:.2f})"


@dataclass(frozen=True)
class Transcript:
    """What a backend returns: segments in seconds from the start of the audio given."""

    segments: tuple[Segment, ...]
    language: DetectedLanguage | None


@dataclass(frozen=True)
class SpeechGate:
    """Rejects segments that Whisper itself is unsure are speech.

    Whisper's own rule drops a segment only when ``no_speech_prob`` is high
    *and* ``avg_logprob`` is low; here either is enough, because a wrong word
    in the timeline misleads the classifier more than a missing one.

    Attributes:
        max_no_speech_prob: above this the decoder thinks the audio is not speech.
        min_avg_logprob: below this the decoder is guessing.
        max_compression_ratio: above this the text is a repetition loop.
    """

    max_no_speech_prob: float = 0.6
    min_avg_logprob: float = -1.0
    max_compression_ratio: float = 2.4

    def passes(self, segment: Segment) -> bool:
        """True when ``segment`` is trusted as real speech."""
        return (
            segment.no_speech_prob <= self.max_no_speech_prob
            and segment.avg_logprob >= self.min_avg_logprob
            and segment.compression_ratio <= self.max_compression_ratio
            and bool(_HAS_LETTER.search(segment.text))
        )


@dataclass(frozen=True)
class VadSettings:
    """Silero VAD settings (faster-whisper's ``VadOptions`` fields)."""

    threshold: float = 0.5
    min_silence_duration_ms: int = 1000
    speech_pad_ms: int = 400


class SpeechEngine(Protocol):
    """A speech backend: audio in, gated-or-not segments out."""

    name: str

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the weights and decoding settings (for the cache key)."""
        ...

    def transcribe(self, audio: np.ndarray, vad: VadSettings) -> Transcript:
        """Decode 16 kHz mono audio; times are relative to its first sample."""
        ...


# ------------------------------------------------------------------ helpers


def speech_spans(audio: np.ndarray, vad: VadSettings) -> list[tuple[float, float]]:
    """Where Silero VAD hears speech, as ``(start_s, end_s)`` pairs."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(audio) == 0:
        return []
    chunks = get_speech_timestamps(audio, VadOptions(**asdict(vad)), sampling_rate=SAMPLE_RATE)
    return [(c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE) for c in chunks]


def segments_to_observations(
    segments: list[Segment] | tuple[Segment, ...],
    windows: tuple[Window, ...],
    offset_s: float,
    source_model: str,
) -> list[Observation]:
    """Split segments into per-window observations by word midpoints.

    Args:
        segments: gated segments, times relative to ``offset_s``.
        windows: the windows to fill (only words inside their span are kept).
        offset_s: absolute time of the segments' zero.
        source_model: registry name written on each observation.

    Returns:
        One observation per (segment, window) piece, ordered by time; its score
        is the mean word probability of the piece.
    """
    lo, hi = windows[0].start_s, windows[-1].end_s
    out: list[Observation] = []
    for seg in segments:
        # A segment without word timings is one "word" spanning the segment.
        words = seg.words or (Word(seg.text, seg.start_s, seg.end_s, float(np.exp(seg.avg_logprob))),)
        pieces: list[tuple[int, list[Word]]] = []
        for word in words:
            mid = offset_s + (word.start_s + word.end_s) / 2
            if not (lo <= mid <= hi) or not word.text.strip():
                continue
            w = window_of(mid, windows)
            if pieces and pieces[-1][0] == w:
                pieces[-1][1].append(word)
            else:
                pieces.append((w, [word]))
        for w, piece in pieces:
            text = "".join(x.text for x in piece).strip() if seg.words else seg.text.strip()
            if not _HAS_LETTER.search(text):
                continue
            out.append(
                Observation(
                    window=w,
                    start_s=round(offset_s + piece[0].start_s, 2),
                    end_s=round(offset_s + piece[-1].end_s, 2),
                    modality="speech",
                    source_model=source_model,
                    text=text,
                    # The timeline renders 1.0 as "no score"; a transcript is never certain.
                    score=min(round(float(np.mean([x.probability for x in piece])), 2), 0.99),
                    kind="speech",
                )
            )
    return out


# ---------------------------------------------------------------- backends


class FasterWhisperEngine:
    """faster-whisper (CTranslate2): int8 on CPU, float16 on CUDA."""

    name = "faster-whisper"

    def __init__(self, model: str | None, env: ModelEnv, *, beam_size: int = 1) -> None:
        """Resolve the model reference now (cheap); load the weights on first use.

        Args:
            model: a bundled model name, a CTranslate2 folder or (hub access on) a hub id;
                None: ``whisper-tiny-en``.
            env: where models are found and run.
            beam_size: decoding beam width.

        Raises:
            InputError: a model reference that is no bundled name, no path, and hub access is off.
            CorruptModelError: a bundled model whose files fail the store's check.
        """
        ref = model or "whisper-tiny-en"
        self.ref = ref
        self.model_dir = env.resolve(ref, role="speech")
        self.device = env.device
        self.compute_type = "float16" if self.device == "cuda" else "int8"
        self.beam_size = beam_size
        # The bytes on disk, verified (bundled) or stamped (local): damaged weights never key the cache.
        self._weights = model_store.weights_sha256(ref, env.home)

    def fingerprint(self) -> dict[str, Any]:
        """Weights identity, compute type and beam size."""
        return {"weights": self._weights, "compute_type": self.compute_type, "beam_size": self.beam_size}

    @cached_property
    def model(self) -> Any:
        """The loaded ``faster_whisper.WhisperModel``."""
        from faster_whisper import WhisperModel

        try:
            return WhisperModel(
                self.model_dir,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=os.cpu_count() or 0,
            )
        except Exception as exc:  # noqa: BLE001 - CTranslate2 raises plain RuntimeErrors
            raise ModelError(f"speech model {self.ref}: cannot be loaded by faster-whisper ({exc})") from exc

    def transcribe(self, audio: np.ndarray, vad: VadSettings) -> Transcript:
        """Decode with faster-whisper's built-in VAD (times come back on the original clock)."""
        # faster-whisper still runs language detection (seconds on a CPU) when its VAD
        # removes everything; checking first skips that for silent or music-only clips.
        if not speech_spans(audio, vad):
            return Transcript((), None)
        segments, info = self.model.transcribe(
            audio,
            beam_size=self.beam_size,
            vad_filter=True,
            vad_parameters=asdict(vad),
            word_timestamps=True,
            # Conditioning on earlier text lets one hallucination seed the next.
            condition_on_previous_text=False,
        )
        segs = tuple(
            Segment(
                text=s.text,
                start_s=s.start,
                end_s=s.end,
                avg_logprob=s.avg_logprob,
                no_speech_prob=s.no_speech_prob,
                compression_ratio=s.compression_ratio,
                words=tuple(Word(w.word, w.start, w.end, w.probability) for w in (s.words or ())),
            )
            for s in segments
        )
        language = DetectedLanguage(info.language, round(float(info.language_probability), 3)) if info.language else None
        return Transcript(segs, language)


class OpenAIWhisperEngine:
    """openai-whisper (PyTorch) from a ``.pt`` checkpoint; fp16 only on CUDA.

    openai-whisper has no VAD of its own: Silero VAD (from faster-whisper)
    finds the speech and only those spans are decoded (``clip_timestamps``),
    so timestamps stay absolute and silence is never fed to the decoder.
    """

    name = "openai-whisper"

    def __init__(self, model: str | None, env: ModelEnv) -> None:
        """Check the checkpoint reference now; load it on first use.

        Args:
            model: a ``.pt`` checkpoint file, or (hub access on) an official model name.
            env: where models are found and run (official models download under ``env.home``).

        Raises:
            InputError: the package is missing, or ``model`` is not a ``.pt`` file
                (official model names are accepted only with hub access on).
        """
        try:
            import whisper
        except ImportError:
            raise InputError(
                "speech backend openai-whisper: the openai-whisper package is not installed (pip install 'vidsense[openai-whisper]' && pip install --no-deps openai-whisper==20250625)"
            ) from None
        ref = model or ""
        self.ref = ref
        self.device = env.device
        self.download_root = str(Path(env.home) / "models" / "openai-whisper")
        path = Path(ref).expanduser()
        if path.is_file():
            self.checkpoint = str(path)
            self._weights = model_store.weights_sha256(str(path), env.home)
        elif env.allow_hub and ref in whisper.available_models():
            self.checkpoint = ref
            self._weights = f"hub:{ref}"
        else:
            raise InputError(
                f"speech backend openai-whisper: speech_model {ref!r} is not a .pt checkpoint file "
                "(official names download only with allow_hub = true)"
            )

    def fingerprint(self) -> dict[str, Any]:
        """Checkpoint identity and precision."""
        return {"weights": self._weights, "fp16": self.device == "cuda"}

    @cached_property
    def model(self) -> Any:
        """The loaded ``whisper.Whisper`` model."""
        import whisper

        try:
            return whisper.load_model(self.checkpoint, device=self.device, download_root=self.download_root)
        except Exception as exc:  # noqa: BLE001 - torch.load / state-dict errors
            raise ModelError(f"speech model {self.ref}: cannot be loaded by openai-whisper ({exc})") from exc

    def _language(self, audio: np.ndarray) -> DetectedLanguage:
        import whisper

        model = self.model
        if not model.is_multilingual:
            return DetectedLanguage("en", 1.0)
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(audio), model.dims.n_mels).to(model.device)
        _, probs = model.detect_language(mel)
        code = max(probs, key=probs.get)
        return DetectedLanguage(code, round(float(probs[code]), 3))

    def transcribe(self, audio: np.ndarray, vad: VadSettings) -> Transcript:
        """Decode only the spans VAD marks as speech."""
        spans = speech_spans(audio, vad)
        if not spans:
            return Transcript((), None)
        # Detect on speech only: leading silence otherwise dominates the first 30 s.
        speech = np.concatenate([audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] for a, b in spans])
        language = self._language(speech)
        result = self.model.transcribe(
            audio,
            language=language.code,
            clip_timestamps=[t for span in spans for t in span],
            word_timestamps=True,
            condition_on_previous_text=False,
            fp16=self.device == "cuda",
            verbose=None,
        )
        segs = tuple(
            Segment(
                text=s["text"],
                start_s=float(s["start"]),
                end_s=float(s["end"]),
                avg_logprob=float(s["avg_logprob"]),
                no_speech_prob=float(s["no_speech_prob"]),
                compression_ratio=float(s["compression_ratio"]),
                words=tuple(Word(w["word"], float(w["start"]), float(w["end"]), float(w["probability"])) for w in s.get("words", ())),
            )
            for s in result["segments"]
        )
        return Transcript(segs, language)


# backend name -> engine class, called with (model reference, ModelEnv).
BACKENDS: dict[str, Callable[[str | None, ModelEnv], SpeechEngine]] = {
    "faster-whisper": FasterWhisperEngine,
    "openai-whisper": OpenAIWhisperEngine,
}


# --------------------------------------------------------- perception model


class SpeechRecognizer:
    """The ``speech`` perception model: gated Whisper transcripts per window."""

    card = ModelCard(
        name="speech",
        version="1",
        modalities=("speech",),
        needs_video=False,
        needs_audio=True,
        cost=2.0,
        heavy=True,
    )

    def __init__(self, engine: SpeechEngine, *, gate: SpeechGate | None = None, vad: VadSettings | None = None) -> None:
        """Wrap a backend with the gate and VAD settings."""
        self.engine = engine
        self.gate = gate or SpeechGate()
        self.vad = vad or VadSettings()

    def params(self) -> dict[str, Any]:
        """Backend, weights, decoding settings, VAD and gate thresholds."""
        return {"backend": self.engine.name, **self.engine.fingerprint(), "vad": asdict(self.vad), "gate": asdict(self.gate)}

    def transcript(self, audio: np.ndarray) -> Transcript:
        """The gated transcript of 16 kHz mono audio (no language when no segment passed the gate)."""
        try:
            raw = self.engine.transcribe(np.ascontiguousarray(audio, dtype=np.float32), self.vad)
        except VidsenseError:
            raise
        except Exception as exc:  # noqa: BLE001 - a decoder failure must reach the user as one line
            raise ProcessingError(f"speech ({self.engine.name}): transcription failed ({type(exc).__name__}: {exc})") from exc
        kept = tuple(s for s in raw.segments if self.gate.passes(s))
        for s in raw.segments:
            if s not in kept:
                log.debug(
                    "speech gate dropped %r (no_speech %.2f, logprob %.2f, compression %.2f)",
                    s.text, s.no_speech_prob, s.avg_logprob, s.compression_ratio,
                )
        return Transcript(kept, raw.language if kept else None)

    def describe(self, media: Media, windows: tuple[Window, ...]) -> Perception:
        """Speech observations for ``windows`` (none for silence, noise or music).

        When speech was heard, the note ``speech language: <code> (<probability>)`` comes with them.
        """
        observations: list[Observation] = []
        heard: list[tuple[int, DetectedLanguage]] = []
        # A long track is heard in spans of SPEECH_SPAN_S, so Whisper never holds all of it;
        # a video no longer than one span is transcribed whole.
        for part in group_windows(windows, SPEECH_SPAN_S):
            start = max(windows[0].start_s, part[0].start_s - SPEECH_OVERLAP_S)
            end = min(windows[-1].end_s, part[-1].end_s + SPEECH_OVERLAP_S)
            audio = media.audio_between(start, end)
            if len(audio) < SAMPLE_RATE // 10:
                continue
            transcript = self.transcript(audio)
            observations.extend(segments_to_observations(transcript.segments, part, start, self.card.name))
            if transcript.language is not None:
                heard.append((len(transcript.segments), transcript.language))
        # The language of the span with the most speech speaks for the video.
        notes = (language_note(max(heard, key=lambda h: h[0])[1]),) if heard else ()
        return Perception(observations, notes)


def language_note(language: DetectedLanguage) -> str:
    """The timeline note for the language speech was heard in, e.g. ``speech language: en (0.98)``."""
    return f"speech language: {language}"


def speech_recognizer(backend: str, model: str | None, env: ModelEnv) -> SpeechRecognizer:
    """A :class:`SpeechRecognizer` on the backend named ``backend`` (a key of :data:`BACKENDS`).

    Raises:
        InputError: an unknown backend name or an unusable model reference.
    """
    try:
        engine = BACKENDS[backend]
    except KeyError:
        raise InputError(f"unknown speech backend {backend!r}; known: {', '.join(BACKENDS)}") from None
    return SpeechRecognizer(engine(model, env))


def make_speech(config: PerceptionConfig) -> SpeechRecognizer:
    """The ``speech`` perception model: ``config.speech_backend`` with ``config.speech_model``.

    Raises:
        InputError: an unknown backend name or an unusable model reference.
    """
    return speech_recognizer(config.speech_backend, config.speech_model, config.env)
