"""The frames the motion models share: one evenly sampled clip per group of windows.

Pose, optical flow and the action recogniser all read motion from the same
frames, so they ask for them here and the video is decoded once per group
instead of three times (decoding a 10 s clip costs about as much as the
flow itself). Windows are grouped into spans of at most ``group_s`` seconds;
each group becomes ``frames`` evenly spaced frames scaled to a short side of
256 pixels, the size the action recogniser crops from. The decoded frames are
kept on the video's :class:`~vidsense.services.video.Media`
(:meth:`~vidsense.services.video.Media.shared_frames`), so they go when the
video does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidsense.services.timeline import Window
from vidsense.services.video import Media, sample_times

CLIP_FRAMES = 64
GROUP_S = 10.0
SHORT_SIDE = 256


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
    """One :class:`MotionClip` per group of ``windows`` (decoded once per video and group)."""
    info = media.info
    long_side = max(info.width, info.height)
    short_side = max(1, min(info.width, info.height))
    max_side = round(long_side * SHORT_SIDE / short_side) if short_side > SHORT_SIDE else None
    clips = []
    for group in group_windows(windows, group_s):
        times = tuple(round(t, 4) for t in sample_times(group[0].start_s, group[-1].end_s, frames))
        clips.append(MotionClip(group, times, media.shared_frames(times, max_side=max_side)))
    return clips
