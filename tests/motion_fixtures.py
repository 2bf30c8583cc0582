"""Synthetic people for the motion tests: COCO-17 keypoints built from a few body measures."""

from __future__ import annotations

import numpy as np

from vidsense.services import motion_words as mw


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
    names = {"l_wrist": mw.L_WRIST, "r_wrist": mw.R_WRIST, "l_ankle": mw.L_ANKLE, "r_ankle": mw.R_ANKLE, "l_elbow": mw.L_ELBOW, "r_elbow": mw.R_ELBOW}
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
