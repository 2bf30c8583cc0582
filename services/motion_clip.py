"""The frames the motion models share: one evenly sampled clip per group of windows.

Pose, optical flow and the action recogniser all read motion from the same
frames, so they ask for them here and the video is decoded once per group
instead of three times (decoding a 10 s clip costs about as much as the
flow itself). Windows are grouped into spans of at most ``group_s`` seconds;
each group becomes ``frames`` evenly spaced frames scaled to a short side of
256 pixels, the size the action recogniser crops from.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from vidsense.services.timeline import Window
from vidsense.services.video import Media, sample_times

CLIP_FRAMES = 64
GROUP_S = 10.0
SHORT_SIDE = 256

_LOCK = threading.Lock()


@dataclass(frozen=True)
class MotionClip:
    """Frames of one group of windows.

    Attributes:
        windows: the windows the clip covers, in order.
        times: time of each frame in seconds.
        frames: RGB uint8 ``[T, H, W, 3]``, short side 256 (or the video's own,
            if smaller); read-only, shared between models.
    """

    windows: tuple[Window, ...]
    times: tuple[float, ...]
    frames: np.ndarray

    @property
    def start_s(self) -> float:
        return self.windows[0].start_s

    @property
    def end_s(self) -> float:
        return self.windows[-1].end_s


def group_windows(windows: tuple[Window, ...], group_s: float = GROUP_S) -> list[tuple[Window, ...]]:
    """Consecutive windows packed greedily into groups spanning at most ``group_s`` seconds.

    A window longer than ``group_s`` forms a group of its own.
    """
    groups: list[list[Window]] = []
    for w in windows:
        if groups and w.end_s - groups[-1][0].start_s <= group_s + 1e-6:
            groups[-1].append(w)
        else:
            groups.append([w])
    return [tuple(g) for g in groups]


def motion_clips(media: Media, windows: tuple[Window, ...], frames: int = CLIP_FRAMES, group_s: float = GROUP_S) -> list[MotionClip]:
    """One :class:`MotionClip` per group of ``windows`` (decoded once per process and group)."""
    info = media.info
    long_side = max(info.width, info.height)
    short_side = max(1, min(info.width, info.height))
    max_side = round(long_side * SHORT_SIDE / short_side) if short_side > SHORT_SIDE else None
    clips = []
    for group in group_windows(windows, group_s):
        times = tuple(round(t, 4) for t in sample_times(group[0].start_s, group[-1].end_s, frames))
        clips.append(MotionClip(group, times, _decode(media, times, max_side)))
    return clips


# (video sha256, times, max_side) -> frames, most recent last. Keyed on content,
# so an edited file is decoded afresh; a few entries cover one video's groups
# while its three motion models run one after another.
_DECODED: OrderedDict[tuple[str, tuple[float, ...], int | None], np.ndarray] = OrderedDict()
_CACHE_ENTRIES = 8


def _decode(media: Media, times: tuple[float, ...], max_side: int | None) -> np.ndarray:
    key = (media.info.sha256, times, max_side)
    with _LOCK:
        if key in _DECODED:
            _DECODED.move_to_end(key)
            return _DECODED[key]
    frames = media.frames_at(list(times), max_side=max_side)
    frames.setflags(write=False)
    with _LOCK:
        _DECODED[key] = frames
        while len(_DECODED) > _CACHE_ENTRIES:
            _DECODED.popitem(last=False)
    return frames
