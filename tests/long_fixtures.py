"""Long synthetic videos made in seconds, and stand-in models that read every clip and every window's audio."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from vidsense.services.media.motion_clip import motion_clips
from vidsense.services.perception import ModelCard, Perception
from vidsense.services.timeline import Observation


class Brightness:
    """A clip model: each window's mean clip brightness; ``fail_at`` raises on the clip starting there."""

    card = ModelCard(name="brightness", version="1", modalities=("sight",))
    clip_frames, group_s, clip_rate = 8, 10.0, None

    def __init__(self, fail_at: float | None = None):
        self.fail_at = fail_at

    def params(self):
        return {}

    def describe(self, media, windows):
        return Perception(o for clip in motion_clips(media, windows, self.clip_frames, self.group_s, rate=self.clip_rate) for o in self.describe_clip(clip))

    def describe_clip(self, clip):
        if clip.start_s == self.fail_at:
            raise RuntimeError("simulated crash")
        return [Observation(w.index, w.start_s, w.end_s, "sight", "brightness", f"{clip.frames.mean():.1f}", 1.0, "brightness") for w in clip.windows]


class Loudness:
    """An audio model: each window's RMS, read window by window like the sound taggers."""

    card = ModelCard(name="loudness", version="1", modalities=("sound",), needs_video=False, needs_audio=True)

    def params(self):
        return {}

    def describe(self, media, windows):
        out = []
        for w in windows:
            rms = float(np.sqrt(np.mean(media.audio_between(w.start_s, w.end_s) ** 2)))
            out.append(Observation(w.index, w.start_s, w.end_s, "sound", "loudness", f"rms {rms:.2f}", 1.0, "loudness"))
        return Perception(out)


def tone_piece(path: Path) -> Path:
    """10 s of a 160x120 test pattern at 1 fps with a 440 Hz tone (8 kHz AAC: half the frames to decode)."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=1",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000", "-t", "10",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-c:a", "aac", "-b:a", "24k", "-ac", "1", str(path)],
        check=True,
    )
    return path


def loop_video(piece: Path, out: Path, seconds: float) -> Path:
    """A 10 s ``piece`` repeated (stream copy, so it takes seconds) to about ``seconds`` long."""
    loops = int(seconds // 10) - 1
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", str(loops), "-i", str(piece), "-c", "copy", str(out)], check=True)
    return out
