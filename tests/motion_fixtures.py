"""Synthetic people for the motion tests: COCO-17 keypoints built from a few body measures."""

from __future__ import annotations

import numpy as np

from vidsense.services.perception.motion import motion_words as mw

KEYPOINTS = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)  # fmt: skip


def body(cx: float = 1.0, hip_y: float = 0.6, torso: float = 0.2, angle_deg: float = 0.0, leg: float = 1.6, **moves: tuple[float, float]) -> np.ndarray:
    """One upright person's ``[17, 3]`` keypoints (x, y, score), rotated ``angle_deg`` about the hips.

    ``leg`` is the hips-to-ankles height in torsos; ``moves`` shift named points
    (``r_wrist=(dx, dy)`` in torsos) before the rotation.
    """
    t = torso
    pts = {
        mw.NOSE: (0, -1.45), mw.L_EYE: (0.05, -1.5), mw.R_EYE: (-0.05, -1.5), mw.L_EAR: (0.1, -1.45), mw.R_EAR: (-0.1, -1.45),
        mw.L_SHOULDER: (0.25, -1.0), mw.R_SHOULDER: (-0.25, -1.0), mw.L_ELBOW: (0.3, -0.5), mw.R_ELBOW: (-0.3, -0.5),
        mw.L_WRIST: (0.3, -0.05), mw.R_WRIST: (-0.3, -0.05), mw.L_HIP: (0.15, 0.0), mw.R_HIP: (-0.15, 0.0),
        mw.L_KNEE: (0.15, leg / 2), mw.R_KNEE: (-0.15, leg / 2), mw.L_ANKLE: (0.15, leg), mw.R_ANKLE: (-0.15, leg),
    }
    names = {name: index for index, name in enumerate(KEYPOINTS)}
    for name, (dx, dy) in moves.items():
        x, y = pts[names[name]]
        pts[names[name]] = (x + dx, y + dy)
    a = np.radians(angle_deg)
    kp = np.zeros((17, 3), np.float32)
    for i, (x, y) in pts.items():
        rx, ry = x * np.cos(a) - y * np.sin(a), x * np.sin(a) + y * np.cos(a)
        kp[i] = (cx + rx * t, hip_y + ry * t, 0.9)
    return kp


def track(frames: list[np.ndarray], fps: float = 4.0) -> mw.Track:
    """A :class:`motion_words.Track` of the given keypoint frames, ``fps`` apart."""
    return mw.Track(times=np.arange(len(frames)) / fps, keypoints=np.stack(frames))


def walk(speed_body_s: float, steps: bool, fps: float = 4.0, n: int = 8) -> mw.Track:
    """A person travelling right at ``speed_body_s`` body heights/s, legs stepping or still."""
    torso = 0.2
    per_frame = speed_body_s * mw.BODY_PER_TORSO * torso / fps
    frames = []
    for i in range(n):
        stride = 0.3 * (1 if i % 2 else -1) if steps else 0.0
        frames.append(body(cx=0.5 + per_frame * i, torso=torso, l_ankle=(stride, 0), r_ankle=(-stride, 0)))
    return track(frames, fps)
