"""Camera and object motion per window, from dense optical flow.

OpenCV's Farneback flow runs on pairs of neighbouring frames of the shared
motion clip, shrunk to :data:`FLOW_WIDTH` pixels wide. Each pair's flow is
split into the camera's part, a similarity motion (shift + zoom) fitted to
the whole frame, and the residual: pixels that move against the background.
:func:`camera_words` and :func:`object_words` turn a window's pairs into
words with the thresholds below: ``camera panning left``, ``camera
shaking``, ``camera zooming in``, ``moving part in the centre (12% of the
frame) moving right``, ``cut to a new shot``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from vidsense.services.media.motion_clip import CLIP_FRAMES, GROUP_S, MotionClip, motion_clips
from vidsense.services.media.video import Media
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig
from vidsense.services.perception.turns import TURNS, set_cv2_threads
from vidsense.services.timeline import Observation, Window

FLOW_WIDTH = 160
# Width at which :func:`camera_path` compares frames: a whole-frame shift survives the
# smaller size, and Farneback costs about 1.5 ms a pair there instead of 4.
CAMERA_WIDTH = 96
# Camera: scene shift in frame widths (heights) per second, zoom in relative scale per second.
PAN = 0.05
ZOOM = 0.04
# Shaking: per-pair shifts scatter around their median by this much (frame sides per second).
SHAKE = 0.12
# A pixel moves against the background when its residual flow exceeds this (frame widths per second) ...
MOVING = 0.08
# ... and at least 0.6 px per pair, the noise floor of Farneback at this size.
MOVING_PX = 0.6
# Share of the frame that must move to be mentioned; above LARGE it is "much of the frame".
MIN_SHARE = 0.01
LARGE_SHARE = 0.3
# Two frames are a cut, not motion, when their grey histograms differ by CUT_HIST (half L1,
# in [0, 1]), or by CUT_HIST_WITH_DIFF while their mean absolute difference exceeds CUT_DIFF.
# Motion alone barely changes the histogram, so fast pans and shakes are not cuts.
CUT_HIST = 0.3
CUT_HIST_WITH_DIFF = 0.15
CUT_DIFF = 0.18


@dataclass(frozen=True)
class PairMotion:
    """Motion between two frames.

    Attributes:
        t: time of the pair's midpoint (s).
        pan / tilt: scene shift in frame widths / heights per second (+ = content moves right / down).
        zoom: relative scale change per second (+ = content grows: zooming in).
        moving_share: share of the frame moving against the background.
        object_x / object_y: centre of the moving part, in [0, 1] of the frame.
        object_dx / object_dy: its mean motion against the background, frame widths per second.
        cut: the two frames belong to different shots (the other fields are 0).
    """

    t: float
    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0
    moving_share: float = 0.0
    object_x: float = 0.5
    object_y: float = 0.5
    object_dx: float = 0.0
    object_dy: float = 0.0
    cut: bool = False


def to_gray(frame: np.ndarray, width: int = FLOW_WIDTH) -> np.ndarray:
    """RGB uint8 -> grey uint8 ``width`` pixels wide (aspect kept)."""
    import cv2

    h, w = frame.shape[:2]
    size = (width, max(8, round(h * width / w)))
    return cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)


def is_cut(a: np.ndarray, b: np.ndarray) -> bool:
    """True when grey frames ``a`` and ``b`` look like two different shots (see :data:`CUT_HIST`)."""
    import cv2

    ha, hb = (cv2.calcHist([g], [0], None, [32], [0, 256]).ravel() for g in (a, b))
    hist = 0.5 * float(np.abs(ha / ha.sum() - hb / hb.sum()).sum())
    diff = float(np.mean(cv2.absdiff(a, b))) / 255.0
    return hist >= CUT_HIST or (hist >= CUT_HIST_WITH_DIFF and diff >= CUT_DIFF)


def pair_motion(a: np.ndarray, b: np.ndarray, t: float, dt: float) -> PairMotion:
    """Camera and object motion between grey frames ``a`` and ``b`` taken ``dt`` seconds apart."""
    import cv2

    if is_cut(a, b):
        return PairMotion(t=t, cut=True)
    with TURNS.light():
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    h, w = a.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rx, ry = xs - (w - 1) / 2, ys - (h - 1) / 2
    u, v = flow[..., 0], flow[..., 1]
    keep = np.ones((h, w), bool)
    # Fit shift + zoom, then refit without the pixels the first fit explains worst
    # (the moving objects), so they do not drag the camera estimate.
    for _ in range(2):
        tx, ty = float(np.median(u[keep])), float(np.median(v[keep]))
        den = float(np.sum(rx[keep] ** 2 + ry[keep] ** 2)) or 1.0
        s = float(np.sum(rx[keep] * (u[keep] - tx) + ry[keep] * (v[keep] - ty))) / den
        res = np.hypot(u - tx - s * rx, v - ty - s * ry)
        keep = res <= np.quantile(res, 0.8)
    threshold = max(MOVING * w * dt, MOVING_PX)
    moving = res > threshold
    share = float(moving.mean())
    if share > 0:
        ox, oy = float(xs[moving].mean() / w), float(ys[moving].mean() / h)
        odx = float(np.mean(u[moving] - tx - s * rx[moving])) / (w * dt)
        ody = float(np.mean(v[moving] - ty - s * ry[moving])) / (w * dt)
    else:
        ox = oy = 0.5
        odx = ody = 0.0
    return PairMotion(t, tx / (w * dt), ty / (h * dt), s / dt, share, ox, oy, odx, ody)


def camera_words(pairs: list[PairMotion]) -> str:
    """``camera static`` / ``camera panning left`` / ``tilting up`` / ``zooming in`` / ``shaking``.

    Medians over the window's pairs: content moving left at >= 0.05 frame
    widths/s means the camera pans right (and so on); the camera shakes when
    the pairs' shifts scatter by >= 0.12 frame sides/s around their median and
    by more than the median itself. Several movements are joined with "and".
    """
    pairs = [p for p in pairs if not p.cut]
    if not pairs:
        return ""
    pan = np.array([p.pan for p in pairs])
    tilt = np.array([p.tilt for p in pairs])
    zoom = float(np.median([p.zoom for p in pairs]))
    mp, mt = float(np.median(pan)), float(np.median(tilt))
    words = []
    if abs(mp) >= PAN:
        words.append("panning right" if mp < 0 else "panning left")
    if abs(mt) >= PAN:
        words.append("tilting down" if mt < 0 else "tilting up")
    if abs(zoom) >= ZOOM:
        words.append("zooming in" if zoom > 0 else "zooming out")
    jitter = float(np.median(np.hypot(pan - mp, tilt - mt))) if len(pairs) >= 3 else 0.0
    if jitter >= SHAKE and jitter > np.hypot(mp, mt):
        words.append("shaking")
    return "camera " + (" and ".join(words) if words else "static")


def _where(x: float, y: float) -> str:
    col = "left" if x < 1 / 3 else "right" if x > 2 / 3 else ""
    row = "upper" if y < 1 / 3 else "lower" if y > 2 / 3 else ""
    return f"{row} {col}".strip() or "centre"


def _direction(dx: float, dy: float) -> str:
    horizontal = "right" if dx > 0 else "left"
    vertical = "down" if dy > 0 else "up"
    if abs(dx) >= 2 * abs(dy):
        return horizontal
    if abs(dy) >= 2 * abs(dx):
        return vertical
    return f"{vertical} and {horizontal}"


def object_words(pairs: list[PairMotion]) -> str:
    """Where the frame moves against the background and which way, e.g.

    ``moving part in the lower left (12% of the frame) moving right``;
    ``much of the frame moving`` above 30%; ``''`` below 1%.
    Uses the median share and the share-weighted mean direction and position.
    """
    pairs = [p for p in pairs if not p.cut]
    if not pairs:
        return ""
    shares = np.array([p.moving_share for p in pairs])
    share = float(np.median(shares))
    if share < MIN_SHARE:
        return ""
    if share >= LARGE_SHARE:
        return "much of the frame moving"
    wts = shares / shares.sum()
    x = float(np.dot(wts, [p.object_x for p in pairs]))
    y = float(np.dot(wts, [p.object_y for p in pairs]))
    dx = float(np.dot(wts, [p.object_dx for p in pairs]))
    dy = float(np.dot(wts, [p.object_dy for p in pairs]))
    where = _where(x, y)
    text = f"moving part {'in the ' + where if where != 'centre' else 'in the centre'} ({share:.0%} of the frame)"
    if np.hypot(dx, dy) >= MOVING:
        text += f" moving {_direction(dx, dy)}"
    return text


def window_words(pairs: list[PairMotion]) -> str:
    """The motion clause of one window: camera, moving part, and any cut."""
    parts = [camera_words(pairs), object_words(pairs)]
    if any(p.cut for p in pairs):
        parts.append("cut to a new shot")
    return "; ".join(p for p in parts if p)


class FlowDescriber:
    """Perception model ``flow``: camera motion and moving parts per window."""

    card: ClassVar[ModelCard] = ModelCard(name="flow", version="1", modalities=("sight",), cost=0.4)
    clip_rate: ClassVar[float | None] = None  # the group's span: the clips pose reads too

    def __init__(self, pairs_per_s: float = 5.0, clip_frames: int = CLIP_FRAMES, group_s: float = GROUP_S, threads: int | None = None):
        """Flow needs no model file: only its sampling.

        Args:
            pairs_per_s: frame pairs measured per second of video.
            clip_frames / group_s: the shared motion clips (see :mod:`vidsense.services.media.motion_clip`).
            threads: OpenCV's threads (None: its default).
        """
        self.threads = threads
        self.pairs_per_s = pairs_per_s
        self.clip_frames = clip_frames
        self.group_s = group_s

    @classmethod
    def from_config(cls, config: PerceptionConfig) -> "FlowDescriber":
        """The registry's ``flow`` model (it reads only the threads it may use from the config)."""
        return cls(threads=config.light_threads)

    def params(self) -> dict[str, Any]:
        import cv2

        return {
            "opencv": cv2.__version__,
            "flow_width": FLOW_WIDTH,
            "pairs_per_s": self.pairs_per_s,
            "clip_frames": self.clip_frames,
            "group_s": self.group_s,
            "thresholds": [PAN, ZOOM, SHAKE, MOVING, MOVING_PX, MIN_SHARE, LARGE_SHARE, CUT_HIST, CUT_HIST_WITH_DIFF, CUT_DIFF],
        }

    def describe(self, media: Media, windows: tuple[Window, ...]) -> Perception:
        """One ``motion`` observation per window."""
        return Perception(o for clip in motion_clips(media, windows, self.clip_frames, self.group_s) for o in self.describe_clip(clip))

    def describe_clip(self, clip: MotionClip) -> list[Observation]:
        """The ``motion`` observations of one clip's windows."""
        set_cv2_threads(self.threads)
        pairs = clip_pairs(clip, self.pairs_per_s)
        out = []
        for w in clip.windows:
            text = window_words([p for p in pairs if w.start_s <= p.t < w.end_s])
            if text:
                out.append(Observation(w.index, w.start_s, w.end_s, "sight", self.card.name, text, 1.0, "motion"))
        return out


def camera_path(frames: Sequence[np.ndarray], times: Sequence[float], width: int = CAMERA_WIDTH) -> np.ndarray:
    """Cumulative shift of the scene at each frame, ``[N, 2]`` in frame heights (+x: content moved right).

    The camera's part of :func:`pair_motion` between consecutive frames,
    integrated; a cut adds nothing. The pose describer subtracts it from the
    keypoints so that a pan does not make people walk. Frames are compared at
    ``width`` pixels (the camera's motion is a whole-frame shift, which small
    frames keep).
    """
    path = np.zeros((len(frames), 2))
    if len(frames) < 2:
        return path
    grays = [to_gray(f, width) for f in frames]
    h, w = grays[0].shape
    for i in range(1, len(frames)):
        dt = max(float(times[i] - times[i - 1]), 1e-3)
        m = pair_motion(grays[i - 1], grays[i], float(times[i]), dt)
        path[i] = path[i - 1] + (m.pan * dt * w / h, m.tilt * dt)
    return path


def clip_pairs(clip: MotionClip, pairs_per_s: float) -> list[PairMotion]:
    """Motion of neighbouring frame pairs, about ``pairs_per_s`` per second of the clip."""
    n = len(clip.times)
    if n < 2:
        return []
    span = max(clip.end_s - clip.start_s, 1e-3)
    stride = max(1, int((n - 1) // max(1, round(span * pairs_per_s))))
    grays: dict[int, np.ndarray] = {}

    def gray(i: int) -> np.ndarray:
        if i not in grays:
            grays[i] = to_gray(clip.frames[i])
        return grays[i]

    out = []
    for i in range(stride // 2, n - 1, stride):
        a, b = clip.times[i], clip.times[i + 1]
        out.append(pair_motion(gray(i), gray(i + 1), (a + b) / 2, max(b - a, 1e-3)))
    return out
