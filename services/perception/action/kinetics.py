"""Kinetics-400 action recognition per window with Inception-I3D.

Each group of windows (at most 10 s, :mod:`vidsense.services.media.motion_clip`) becomes
one clip for I3D (:mod:`vidsense.services.perception.action.i3d`): 64 consecutive frames
at 25 frames/s, the rate it was trained at, centred on the group (2.56 s; all of a
shorter group). Reading the same 64 frames spread over the whole group instead
(6.4 frames/s for 10 s) cost 8 of 85 top-1 answers on the development set at the
same cost (docs/routes-and-accuracy.md, "The action recogniser's frame rate");
reading every 2-s window at 32 frames/s costs five runs per 10 s and was no
better. The network's logits at each temporal position are averaged over the
positions that fall inside a window, so a window gets the classes of its own
part of the clip; a window the clip's frames do not reach gets no observation
(on a 10-s group, the first and last: the recogniser did not look there). The
classes are Kinetics-400's, not the user's label set: the reasoning layer
maps them, and the model card's note tells the evaluation that a
Kinetics-trained recogniser contributed.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vidsense.services.media.motion_clip import CLIP_FRAMES, GROUP_S, MotionClip, motion_clips
from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig
from vidsense.services.perception.action import i3d
from vidsense.services.timeline import Observation, Window

# How the registry's recogniser reads its clips (see the module's docstring); a benchmark sets
# these to measure the alternatives (benchmarks/routes.py --action-rate / --action-group-s).
CLIP_RATE: float | None = i3d.TRAINED_FPS
CLIP_GROUP_S = GROUP_S

# Frames per temporal logit position (three stride-2 stages) and where the first one is centred.
POSITION_STRIDE = 8
POSITION_CENTRE = 7.5


@lru_cache(maxsize=1)
def kinetics_labels() -> tuple[str, ...]:
    """The 400 Kinetics class names, in the order of the model's logits."""
    text = resources.files("vidsense.services").joinpath("data/kinetics400.txt").read_text(encoding="utf-8")
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(labels) != i3d.NUM_CLASSES:
        raise RuntimeError(f"kinetics400.txt holds {len(labels)} labels, expected {i3d.NUM_CLASSES}")
    return labels


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def position_times(times: tuple[float, ...], n_positions: int) -> np.ndarray:
    """Time each temporal logit position is centred on (I3D reduces time 8x, then pools pairs)."""
    idx = np.clip(np.arange(n_positions) * POSITION_STRIDE + POSITION_CENTRE, 0, len(times) - 1)
    return np.interp(idx, np.arange(len(times)), np.asarray(times))


def window_logits(logits: np.ndarray, centres: np.ndarray, window: Window, times: tuple[float, ...]) -> np.ndarray | None:
    """Mean logits of the positions centred inside ``window`` (the nearest one if none is), or
    None when the clip's frames (``times``) do not reach the window: the recogniser did not see it."""
    if not (times[0] < window.end_s and times[-1] >= window.start_s):
        return None
    inside = (centres >= window.start_s) & (centres < window.end_s)
    if not inside.any():
        mid = (window.start_s + window.end_s) / 2
        inside = np.abs(centres - mid) == np.abs(centres - mid).min()
    return logits[inside].mean(axis=0)


def top_classes(probs: np.ndarray, labels: tuple[str, ...], k: int, min_prob: float) -> list[tuple[str, float]]:
    """The ``k`` most probable classes at or above ``min_prob`` (always at least the best one)."""
    order = np.argsort(-probs)[:k]
    return [(labels[i], float(probs[i])) for j, i in enumerate(order) if j == 0 or probs[i] >= min_prob]


class KineticsActions:
    """Perception model ``action``: the Kinetics-400 classes a window's movement looks like."""

    card: ClassVar[ModelCard] = ModelCard(
        name="action",
        version="3",
        modalities=("sight",),
        note="action: an Inception-I3D recogniser trained on Kinetics-400 contributed "
        "(results on Kinetics-400 itself are not zero-shot)",
        cost=2.3,
        heavy=True,
    )

    def __init__(
        self,
        env: ModelEnv,
        top_k: int = 3,
        min_prob: float = 0.05,
        backend: str = "onnx",
        clip_frames: int = CLIP_FRAMES,
        group_s: float = GROUP_S,
        clip_rate: float | None = i3d.TRAINED_FPS,
    ):
        """Remember where I3D is and how to run it; it loads on first use.

        Args:
            env: where the model store is and the device to run on.
            top_k / min_prob: at most ``top_k`` classes per window, those at or above ``min_prob``
                (always the best one).
            backend: ``onnx`` or ``torch`` (a CUDA device always uses torch).
            clip_frames / group_s: frames per clip and the longest group of windows a clip covers
                (see :mod:`vidsense.services.media.motion_clip`).
            clip_rate: the clip's frames per second, a run centred on its group; None spreads
                them over the group, as pose and flow read them.
        """
        self.home = Path(env.home)
        self.device = env.device
        self.top_k = top_k
        self.min_prob = min_prob
        # ONNX Runtime is the faster CPU path; torch is used on a GPU (and when export fails).
        self.backend = "torch" if env.device == "cuda" else backend
        self.clip_frames = clip_frames
        self.group_s = group_s
        self.clip_rate = clip_rate
        self._runtime: i3d.Runtime | None = None

    @classmethod
    def from_config(cls, config: PerceptionConfig) -> "KineticsActions":
        """The registry's ``action`` model (its clips as :data:`CLIP_RATE` and :data:`CLIP_GROUP_S` say)."""
        return cls(config.env, group_s=CLIP_GROUP_S, clip_rate=CLIP_RATE)

    def params(self) -> dict[str, Any]:
        from vidsense.services import model_store

        return {
            "sha256": model_store.weights_sha256(i3d.MODEL_NAME, self.home),
            "top_k": self.top_k,
            "min_prob": self.min_prob,
            "clip_frames": self.clip_frames,
            "group_s": self.group_s,
            "clip_rate": self.clip_rate,
            "crop": [i3d.SHORT_SIDE, i3d.CROP],
        }

    @property
    def runtime(self) -> i3d.Runtime:
        if self._runtime is None:
            self._runtime = i3d.load_runtime(self.home, self.backend, self.clip_frames, self.device)
        return self._runtime

    def load(self) -> None:
        """Load the recogniser's runtime now (idempotent): ``Perceiver.load`` calls it, so a server builds it before its first request."""
        _ = self.runtime

    def describe(self, media: Media, windows: tuple[Window, ...]) -> Perception:
        """Per window, one ``action`` observation per likely Kinetics class (text = class name, score = probability)."""
        clips = motion_clips(media, windows, self.clip_frames, self.group_s, rate=self.clip_rate)
        return Perception(o for clip in clips for o in self.describe_clip(clip))

    def describe_clip(self, clip: MotionClip) -> list[Observation]:
        """The ``action`` observations of one clip's windows."""
        logits = self.runtime.run(i3d.preprocess(clip.frames))
        centres = position_times(clip.times, len(logits))
        labels = kinetics_labels()
        out = []
        for w in clip.windows:
            seen = window_logits(logits, centres, w, clip.times)
            if seen is None:
                continue  # outside the 2.56 s the clip covers: no reading rather than a neighbour's
            best = top_classes(softmax(seen), labels, self.top_k, self.min_prob)
            # One observation per class, like every tagger: the renderer merges them into
            # "movement looks like: a 0.91, b 0.03" and the summary can count each class.
            out.extend(Observation(w.index, w.start_s, w.end_s, "sight", self.card.name, name, round(p, 4), "action") for name, p in best)
        return out
