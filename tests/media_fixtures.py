"""Synthetic media written with PyAV: small, deterministic, made inside the tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_square_frames(n: int, w: int = 160, h: int = 120) -> list[np.ndarray]:
    """A white square moving left to right over a dark background, one frame per step."""
    frames = []
    for i in range(n):
        img = np.full((h, w, 3), 30, np.uint8)
        x = int((w - 30) * i / max(n - 1, 1))
        img[40:70, x : x + 30] = 255
        # A 16x16 top-left block of brightness 6*i tells tests which frame they got
        # (big and flat so that compression keeps its value).
        img[0:16, 0:16] = min(255, 6 * i)
        frames.append(img)
    return frames


def write_video(path: Path, seconds: float = 3.0, fps: int = 10, audio_hz: float | None = None, size=(160, 120), codec: str = "mpeg4", faststart: bool = False, pix_fmt: str = "yuv420p") -> Path:
    """An mp4 with a moving square, optionally a sine tone as audio.

    ``codec="gif", pix_fmt="rgb8"`` writes an animated GIF instead.

    ``faststart`` puts the index at the front, as streaming files do, so a file cut
    short keeps its header and loses only its tail.
    """
    n = max(1, int(round(seconds * fps)))
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height = size
        vs.pix_fmt = pix_fmt
        ast = None
        if audio_hz is not None:
            ast = c.add_stream("aac", rate=16000)
            ast.layout = "mono"
        for img in moving_square_frames(n, *size):
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        if ast is not None:
            write_audio_stream(c, ast, sine(audio_hz, seconds))
    return path


def sine(hz: float, seconds: float, sr: int = 16000, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write_audio_stream(container, stream, samples: np.ndarray, sr: int = 16000) -> None:
    frame_size = stream.codec_context.frame_size or 1024
    pts = 0
    for start in range(0, len(samples), frame_size):
        chunk = samples[start : start + frame_size]
        if len(chunk) < frame_size:
            chunk = np.pad(chunk, (0, frame_size - len(chunk)))
        fr = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
        fr.sample_rate = sr
        fr.pts = pts
        fr.time_base = Fraction(1, sr)
        pts += len(chunk)
        for p in stream.encode(fr):
            container.mux(p)
    for p in stream.encode(None):
        container.mux(p)


def write_audio_only(path: Path, samples: np.ndarray, sr: int = 16000) -> Path:
    """An m4a with only an audio stream."""
    with av.open(str(path), "w", format="mp4") as c:
        st = c.add_stream("aac", rate=sr)
        st.layout = "mono"
        write_audio_stream(c, st, samples, sr)
    return path
