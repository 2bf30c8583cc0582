"""The frames the motion models read: one clip per group of windows.

Pose and optical flow read motion from the same frames, so they ask for them
here and the video is decoded once per group instead of twice (decoding a
10 s clip costs about as much as the flow itself). Windows are grouped into
spans of at most ``group_s`` seconds; each group becomes ``frames`` evenly
spaced frames scaled to a short side of 256 pixels, the size the action
recogniser crops from.

A model that needs its frames at a given rate asks for ``rate``: its clip of
a group is ``frames`` consecutive frames at that rate, centred on the group
(the whole group when it is shorter). The action recogniser does: I3D reads
motion at the 25 frames/s it was trained on, and the same 64 frames spread
over a 10 s group (6.4 frames/s) cost it 8 of 85 top-1 answers on the
development set (docs/routes-and-accuracy.md). Clips at another rate are
decoded apart from the shared ones.

Clips are decoded one group at a time, as they are read (:class:`MotionClips`),
so memory holds a group's frames, never a whole video's. The perceiver hands
each group to every :class:`ClipModel` reading the same clips before decoding
the next; a model run on its own reads the groups through
:meth:`~vidsense.services.media.video.Media.shared_frames`, which keeps the last
few on the video's :class:`~vidsense.services.media.video.Media`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from vidsense.services.media.video import Media, sample_times
from vidsense.services.timeline import Observation, Window

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


def clip_times(start_s: float, end_s: float, frames: int, rate: float | None = None) -> list[float]:
    """The times of a group's clip of ``frames`` frames: evenly over ``[start_s, end_s)``, or, at
    ``rate`` frames/s, a run of consecutive frames centred on it (evenly over it when it is shorter)."""
    if rate:
        span = min(end_s - start_s, frames / rate)
        mid = (start_s + end_s) / 2
        start_s, end_s = mid - span / 2, mid + span / 2
    return sample_times(start_s, end_s, frames)


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


class MotionClips:
    """The motion clips of a video's windows, decoded group by group as they are read.

    Iterating decodes each group when it is reached and keeps no clip once it
    is handed out, so however long the video, one group's frames are in
    memory (plus the few :meth:`~vidsense.services.media.video.Media.shared_frames`
    keeps). Indexing decodes that group (or takes it from the Media's shared
    frames).
    """

    def __init__(
        self, media: Media, windows: tuple[Window, ...], frames: int = CLIP_FRAMES, group_s: float = GROUP_S, keep: bool = False, rate: float | None = None
    ) -> None:
        info = media.info
        # keep: every clip decoded stays here (for models that read a one-group video's clip in turn).
        self._kept: dict[int, MotionClip] | None = {} if keep else None
        long_side = max(info.width, info.height)
        short_side = max(1, min(info.width, info.height))
        self.media = media
        self.groups = group_windows(windows, group_s)
        self.frames = frames
        self.rate = rate
        self.max_side = round(long_side * SHORT_SIDE / short_side) if short_side > SHORT_SIDE else None
        # The first group is decoded now, as when every clip was decoded here: an
        # undecodable video still fails at this call. Its frames wait on the Media.
        if self.groups:
            self.clip(0)

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> MotionClip:
        return self.clip(index)

    def clip(self, index: int) -> MotionClip:
        """The clip of group ``index`` (decoded now unless the Media still holds its frames)."""
        if self._kept is not None and index in self._kept:
            return self._kept[index]
        group = self.groups[index]
        times = tuple(round(t, 4) for t in clip_times(group[0].start_s, group[-1].end_s, self.frames, self.rate))
        clip = MotionClip(group, times, self.media.shared_frames(times, max_side=self.max_side))
        if self._kept is not None:
            self._kept[index] = clip
        return clip

    def __iter__(self) -> Iterator[MotionClip]:
        for i in range(len(self.groups)):
            yield self.clip(i)


def motion_clips(
    media: Media, windows: tuple[Window, ...], frames: int = CLIP_FRAMES, group_s: float = GROUP_S, keep: bool = False, rate: float | None = None
) -> MotionClips:
    """The :class:`MotionClip` of each group of ``windows``, decoded lazily, one group at a time
    (``keep``: each clip, once decoded, stays with the returned object; ``rate``: see :func:`clip_times`)."""
    return MotionClips(media, windows, frames, group_s, keep, rate)


def clip_key(model: "ClipModel") -> tuple[int, float, float | None]:
    """What makes two clip models read the same clips (and so share one decode)."""
    return (model.clip_frames, model.group_s, model.clip_rate)


@runtime_checkable
class ClipModel(Protocol):
    """A perception model that reads motion clips and can take them one group at a time.

    The perceiver runs the clip models that share ``clip_frames``, ``group_s``
    and ``clip_rate`` (:func:`clip_key`) together: each group is decoded once
    and handed to each model before the next is decoded. Their observations
    are those of ``describe``.
    """

    clip_frames: int
    group_s: float
    clip_rate: float | None  # None: the group's span; a rate: see clip_times

    def describe_clip(self, clip: MotionClip) -> list[Observation]:
        """The observations of the windows of one clip."""
        ...
