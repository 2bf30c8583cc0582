"""Synthetic audio for the speech and audio-tag tests: espeak-ng speech, tones, noise, and mp4 muxing.

Everything is generated at test time (no files from outside the repository).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from media_fixtures import write_audio_stream

SR = 16000

ESPEAK = shutil.which("espeak-ng")
NO_ESPEAK = "espeak-ng is not installed (apt-get install espeak-ng): no synthetic speech to test with"


def speak(text: str, voice: str = "en-us", words_per_minute: int = 150) -> np.ndarray:
    """``text`` spoken by espeak-ng, as 16 kHz mono float32."""
    from vidsense.services.media.video import decode_audio

    assert ESPEAK, NO_ESPEAK
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run([ESPEAK, "-v", voice, "-s", str(words_per_minute), "-w", str(wav), text], check=True, capture_output=True)
        return decode_audio(wav)


def silence(seconds: float) -> np.ndarray:
    """Digital silence."""
    return np.zeros(int(seconds * SR), np.float32)


def tone(seconds: float, hz: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    """A pure sine tone."""
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def noise(seconds: float, amplitude: float = 0.1, seed: int = 0) -> np.ndarray:
    """Gaussian white noise."""
    return (amplitude * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def melody(seconds: float, amplitude: float = 0.2) -> np.ndarray:
    """A crude instrument: plucked harmonic notes of a major arpeggio, 4 per second."""
    out = np.zeros(int(seconds * SR), np.float32)
    note = SR // 4
    t = np.arange(note) / SR
    envelope = np.exp(-6 * t)
    for i, start in enumerate(range(0, len(out) - note + 1, note)):
        f0 = 220.0 * 2 ** ((0, 4, 7, 12)[i % 4] / 12)
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
        out[start : start + note] = amplitude * envelope * wave / 2
    return out


def write_wav(path: Path, audio: np.ndarray, sr: int = SR) -> Path:
    """Write mono float audio as 16-bit PCM WAV."""
    import wave

    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return path


def mux_mp4(path: Path, audio: np.ndarray, *, video: bool = True, sr: int = SR, fps: int = 10, size: tuple[int, int] = (64, 48)) -> Path:
    """An mp4 with ``audio`` as its AAC track and (optionally) a grey MPEG-4 video as long as the audio."""
    import av

    with av.open(str(path), "w") as out:
        vstream = None
        if video:
            vstream = out.add_stream("mpeg4", rate=fps)
            vstream.width, vstream.height = size
            vstream.pix_fmt = "yuv420p"
        astream = out.add_stream("aac", rate=sr)
        astream.layout = "mono"
        if vstream is not None:
            n_frames = max(1, int(round(len(audio) / sr * fps)))
            for i in range(n_frames):
                img = np.full((size[1], size[0], 3), 60 + (i * 7) % 120, np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                for packet in vstream.encode(frame):
                    out.mux(packet)
            for packet in vstream.encode():
                out.mux(packet)
        write_audio_stream(out, astream, np.asarray(audio, dtype=np.float32), sr)
    return path
