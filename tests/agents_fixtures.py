"""Fixtures for the reasoning tests: real speech (espeak-ng) muxed over a real clip, and small timelines."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidsense.services.timeline import Observation, Timeline, VideoInfo, make_windows

HAS_ESPEAK = shutil.which("espeak-ng") is not None


def espeak(text: str, rate_hz: int = 16000) -> np.ndarray:
    """``text`` spoken by espeak-ng as mono float32 at ``rate_hz``."""
    wav = subprocess.run(["espeak-ng", "-s", "150", "--stdout", text], check=True, capture_output=True).stdout
    import io
    import wave

    with wave.open(io.BytesIO(wav)) as w:
        src_rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    n = int(round(len(pcm) * rate_hz / src_rate))
    return np.interp(np.linspace(0, len(pcm) - 1, n), np.arange(len(pcm)), pcm).astype(np.float32)


def speech_over_clip(video: Path, text: str, out: Path, start_s: float = 1.0) -> Path:
    """Copy ``video`` (re-encoded) with ``text`` spoken by espeak-ng from ``start_s`` as its audio track."""
    import av

    rate = 16000
    with av.open(str(video), metadata_errors="ignore") as src:
        vin = src.streams.video[0]
        fps = vin.average_rate or Fraction(25)
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(vin)]
    duration = len(frames) / float(fps)
    audio = np.zeros(int(duration * rate), np.float32)
    speech = espeak(text, rate)
    a = int(start_s * rate)
    audio[a : a + len(speech)] = speech[: max(0, len(audio) - a)]
    with av.open(str(out), "w") as dst:
        vs = dst.add_stream("libx264", rate=fps)
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt = "yuv420p"
        aus = dst.add_stream("aac", rate=rate)
        aus.layout = "mono"
        for img in frames:
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                dst.mux(pkt)
        for pkt in vs.encode():
            dst.mux(pkt)
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        step = 1024
        for i in range(0, len(pcm), step):
            frame = av.AudioFrame.from_ndarray(pcm[None, i : i + step], format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for pkt in aus.encode(frame):
                dst.mux(pkt)
        for pkt in aus.encode():
            dst.mux(pkt)
    return out


def timeline(observations: list[tuple[int, str, str, str, float]], duration_s: float = 6.0) -> Timeline:
    """A timeline from ``(window, modality, kind, text, score)`` tuples over 2 s windows."""
    windows = make_windows(duration_s, 2.0)
    obs = tuple(
        Observation(w, windows[w].start_s, windows[w].end_s, mod, "fixture", text, score, kind) for w, mod, kind, text, score in observations
    )
    info = VideoInfo("fixture.mp4", "0" * 64, duration_s, 25.0, 320, 240, True, True)
    return Timeline(info, windows, obs)


# Five everyday labels and what each looks and sounds like.
LABELS = ["riding a bike", "swimming", "playing guitar", "archery", "cooking"]
DESCRIPTIONS = {
    "riding a bike": "A person pedals a bicycle along a road, wheels turning, traffic noise around.",
    "swimming": "A swimmer moves arms and legs through pool water with splashing sounds.",
    "playing guitar": "A person strums a guitar with one hand while fretting chords, music playing.",
    "archery": "A person draws a bow, aims and releases an arrow at a round target.",
    "cooking": "A person chops food and stirs a pan on a stove, sizzling sounds.",
}


CYCLING = [
    (0, "sight", "objects", "person", 0.93),
    (0, "sight", "objects", "bicycle", 0.91),
    (0, "sight", "scene", "street, road", 0.6),
    (0, "sight", "action", "riding a bike", 0.72),
    (1, "sight", "objects", "bicycle", 0.88),
    (1, "sight", "pose", "one person, legs pedalling", 1.0),
    (1, "sight", "action", "riding a bike", 0.65),
    (2, "sight", "objects", "person", 0.9),
    (2, "sight", "objects", "bicycle", 0.86),
    (2, "sight", "action", "riding a bike", 0.7),
]


def store_model(name: str) -> Path:
    """A model of the store (assembled from its installed carrier on first use)."""
    from vidsense.services import model_store
    from vidsense.services.settings import load_settings

    return Path(model_store.ensure(name, load_settings().home))


def smollm(n_ctx: int = 2048):
    """The tiny SmolLM2-135M chat model (plumbing tests only: it is weak at the task)."""
    from vidsense.agents.llm import LlamaCppModel

    return LlamaCppModel(store_model("smollm2-135m"), n_ctx=n_ctx, n_threads=1)


_ENCODERS: dict[str, object] = {}


def encoder():
    """The bundled all-MiniLM-L6-v2 sentence encoder, loaded once per test session."""
    from vidsense.agents.embeddings import SentenceEncoder

    if "minilm" not in _ENCODERS:
        _ENCODERS["minilm"] = SentenceEncoder(str(store_model("minilm-l6-v2")), "cpu", name="minilm-l6-v2")
    return _ENCODERS["minilm"]


def label_index():
    """Label embeddings over :func:`encoder` (a fresh memo per call)."""
    from vidsense.agents.shortlist import LabelIndex

    return LabelIndex(encoder())


def llm_reasoner(llm, descriptions=None, **kw):
    """An :class:`~vidsense.agents.scoring.LLMReasoner` on ``llm`` and the bundled encoder."""
    from vidsense.agents.scoring import LLMReasoner

    return LLMReasoner(llm, label_index(), descriptions or (lambda ls: {}), **kw)


def embedding_reasoner(descriptions=None):
    """An :class:`~vidsense.agents.scoring.EmbeddingReasoner` on the bundled encoder."""
    from vidsense.agents.scoring import EmbeddingReasoner

    return EmbeddingReasoner(label_index(), descriptions or (lambda ls: {}))


def reasoning_room(llm=None, **config):
    """A :class:`~vidsense.agents.reasoner.Reasoner` with the bundled encoder, bundled descriptions and ``llm``."""
    from vidsense.agents.reasoner import Reasoner, ReasonerConfig
    from vidsense.services.settings import load_settings

    return Reasoner(ReasonerConfig(**config), load_settings(device="cpu").model_env(), llm=llm, encoder=encoder())
