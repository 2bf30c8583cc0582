"""Rules that turn body keypoint trajectories into plain words.

Pure functions over numpy arrays, no model: the pose describer feeds them one
person's keypoints over one window and joins what they return. Keypoints are
the 17 COCO points MoveNet emits, as ``[N, 17, 3]`` arrays of ``(x, y, score)``
with x and y in units of the frame's height (y grows downwards), so distances
compare across frames of any size. A point whose score is below
:data:`MIN_SCORE` counts as unseen.

Lengths are measured in torso lengths (shoulder centre to hip centre), speeds
in body heights per second (a body is about :data:`BODY_PER_TORSO` torsos
tall), so the rules do not depend on how far the person is from the camera.
Each rule says which words it emits and when; the thresholds are module
constants so tests and readers see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

# COCO keypoint order used by MoveNet.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 11, 12, 13, 14, 15, 16
HEAD = (NOSE, L_EYE, R_EYE, L_EAR, R_EAR)

MIN_SCORE = 0.25
BODY_PER_TORSO = 3.3

# Posture: angle of the torso (hips -> shoulders) from straight up, in degrees.
BENT_DEG = 30.0
LYING_DEG = 60.0
UPSIDE_DOWN_DEG = 135.0
# Crouched: hips this close above the ankles (in torsos); standing legs are ~1.6 torsos.
CROUCH_LEG = 0.9
# A pose rule that holds in at least this share of the frames describes the window.
MAJORITY = 0.5
# Repetition: a limb stroke counts when it travels this far (torsos) relative to the body.
STROKE = 0.35
# Locomotion, in body heights per second of horizontal travel.
STILL_SPEED = 0.15
RUN_SPEED = 1.3
SLOW_SPEED = 0.4
FAST_SPEED = 2.0
GLIDE_SPEED = 0.5
# Feet apart fore-and-aft changing by this much (torsos, std) means legs are stepping.
STEPPING = 0.12
# Repetition: this many cycles of one limb movement.
MIN_CYCLES = 3


@dataclass(frozen=True)
class Track:
    """One person's keypoints over time.

    Attributes:
        times: ``[N]`` seconds.
        keypoints: ``[N, 17, 3]`` ``(x, y, score)``, x and y in frame heights.
        person: the track's number in its clip (1-based; 0 when not tracked).
    """

    times: np.ndarray
    keypoints: np.ndarray
    person: int = 0

    # Every rule reads the same few points and the torso length: they are computed once per
    # track (the gesture rules ask hundreds of times per window of a crowded scene).
    @cached_property
    def _positions(self) -> np.ndarray:
        return _seen(self.keypoints)

    @cached_property
    def _mids(self) -> dict[tuple[int, int], np.ndarray]:
        return {}

    @cached_property
    def torso(self) -> float:
        """Median shoulder-centre to hip-centre distance (NaN when never seen)."""
        d = np.linalg.norm(self.mid(L_SHOULDER, R_SHOULDER) - self.mid(L_HIP, R_HIP), axis=1)
        d = d[np.isfinite(d) & (d > 1e-6)]
        return float(np.median(d)) if len(d) else float("nan")

    def point(self, index: int) -> np.ndarray:
        """``[N, 2]`` positions of one keypoint, NaN where unseen (read-only)."""
        return self._positions[:, index]

    def mid(self, a: int, b: int) -> np.ndarray:
        """``[N, 2]`` midpoint of two keypoints, falling back to whichever is seen (read-only)."""
        if (a, b) not in self._mids:
            self._mids[(a, b)] = _nanmean2(self.point(a), self.point(b))
        return self._mids[(a, b)]


def _seen(kp: np.ndarray) -> np.ndarray:
    xy = kp[..., :2].astype(float).copy()
    xy[kp[..., 2] < MIN_SCORE] = np.nan
    xy.setflags(write=False)
    return xy


def _nanmean2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both = np.stack([a, b])
    count = np.sum(~np.isnan(both), axis=0)
    total = np.nansum(both, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def torso_length(track: Track) -> float:
    """Median shoulder-centre to hip-centre distance (NaN when never seen)."""
    return track.torso


def torso_angles(track: Track) -> np.ndarray:
    """Per frame angle (degrees) of hips -> shoulders from straight up; NaN when unseen."""
    v = track.mid(L_SHOULDER, R_SHOULDER) - track.mid(L_HIP, R_HIP)
    # Image y grows downwards, so "up" is -y.
    return np.degrees(np.arctan2(np.abs(v[:, 0]), -v[:, 1]))


def posture(track: Track) -> str | None:
    """``upright``, ``bent``, ``crouched``, ``lying`` or ``upside down`` (majority of frames).

    Rules per frame: torso angle from vertical >= 135 deg is upside down,
    >= 60 lying, >= 30 bent; otherwise crouched when the hips are less than
    0.9 torsos above the ankles, else upright. None when the torso is unseen in
    most frames.
    """
    angles = torso_angles(track)
    scale = torso_length(track)
    hip_y = track.mid(L_HIP, R_HIP)[:, 1]
    ankle_y = track.mid(L_ANKLE, R_ANKLE)[:, 1]
    labels = []
    for a, hy, ay in zip(angles, hip_y, ankle_y):
        if np.isnan(a):
            continue
        if a >= UPSIDE_DOWN_DEG:
            labels.append("upside down")
        elif a >= LYING_DEG:
            labels.append("lying")
        elif a >= BENT_DEG:
            labels.append("bent")
        elif np.isfinite(ay) and np.isfinite(hy) and (ay - hy) < CROUCH_LEG * scale:
            labels.append("crouched")
        else:
            labels.append("upright")
    if len(labels) < MAJORITY * len(angles) or not labels:
        return None
    values, counts = np.unique(labels, return_counts=True)
    return str(values[np.argmax(counts)])


def count_strokes(signal: np.ndarray, min_travel: float) -> int:
    """Number of one-way strokes in ``signal`` that travel at least ``min_travel``.

    Hysteresis: a stroke ends where the signal turns back by ``min_travel``
    from its extreme, so jitter smaller than that is never counted. NaNs are
    skipped.
    """
    s = signal[np.isfinite(signal)]
    if len(s) < 2:
        return 0
    lo = hi = extreme = float(s[0])
    direction = 0  # +1 rising, -1 falling, 0 not yet moved min_travel
    reversals = 0
    for v in map(float, s[1:]):
        if direction == 0:
            lo, hi = min(lo, v), max(hi, v)
            if hi - lo >= min_travel:
                direction = 1 if v == hi else -1
                extreme = v
        elif direction * (v - extreme) > 0:
            extreme = v
        elif abs(v - extreme) >= min_travel:
            reversals += 1
            direction, extreme = -direction, v
    # Every stroke but the last ends in a reversal; the last one, once started, already counts.
    return reversals + 1 if direction else 0


def body_speed(track: Track) -> tuple[float, float]:
    """Horizontal and vertical velocity of the hip centre, in body heights per second.

    A least-squares line through the seen positions; (0, 0) with fewer than
    two seen frames.
    """
    scale = torso_length(track) * BODY_PER_TORSO
    hip = track.mid(L_HIP, R_HIP)
    ok = np.isfinite(hip).all(axis=1)
    if ok.sum() < 2 or not np.isfinite(scale) or np.ptp(track.times[ok]) <= 0:
        return 0.0, 0.0
    t = track.times[ok]
    vx = np.polyfit(t, hip[ok, 0], 1)[0] / scale
    vy = np.polyfit(t, hip[ok, 1], 1)[0] / scale
    return float(vx), float(vy)


def legs_stepping(track: Track) -> bool | None:
    """Whether the feet swap places fore-and-aft (the spread between ankles varies).

    None when the ankles are seen together in fewer than 3 frames.
    """
    scale = torso_length(track)
    spread = track.point(L_ANKLE)[:, 0] - track.point(R_ANKLE)[:, 0]
    spread = spread[np.isfinite(spread)]
    if len(spread) < 3 or not np.isfinite(scale):
        return None
    return bool(np.std(spread) >= STEPPING * scale)


def locomotion(track: Track) -> str | None:
    """``gliding left``, ``moving right slowly`` ...: travel without stepping legs, with a speed word.

    Horizontal hip speed below 0.15 body heights/s is no locomotion. Stepping
    legs are a gait, and gaits are gestures (:func:`vidsense.services.perception.motion.gestures.walking_or_running`),
    so this rule says nothing then. Moving with still legs is gliding (skating,
    riding, being carried) from 0.5 body/s; with the feet unseen, or still at a
    slower pace, it is just moving. Speed words: ``slowly`` under 0.4 body/s,
    ``fast`` over 2. Directions are as seen on screen.
    """
    vx, _ = body_speed(track)
    speed = abs(vx)
    if speed < STILL_SPEED:
        return None
    stepping = legs_stepping(track)
    if stepping:
        return None
    side = "right" if vx > 0 else "left"
    # Still feet at a slow pace are more often a shuffle the sparse frames missed than a glide.
    gait = "gliding" if stepping is not None and speed >= GLIDE_SPEED else "moving"
    pace = " slowly" if speed < SLOW_SPEED else " fast" if speed > FAST_SPEED else ""
    return f"{gait} {side}{pace} ({speed:.1f} body heights/s)"


def repetition(track: Track) -> str | None:
    """``repeating an up-and-down hand movement N times`` (or leg) when a limb cycles >= 3 times.

    A cycle is two strokes (up and back) of the wrist or ankle, relative to
    the shoulders or hips, of at least 0.35 torsos.
    """
    scale = torso_length(track)
    if not np.isfinite(scale):
        return None
    shoulder_y = track.mid(L_SHOULDER, R_SHOULDER)[:, 1]
    hip_y = track.mid(L_HIP, R_HIP)[:, 1]
    parts = {"hand": ((L_WRIST, R_WRIST), shoulder_y), "leg": ((L_ANKLE, R_ANKLE), hip_y)}
    for part, (points, ref) in parts.items():
        cycles = max(count_strokes(track.point(p)[:, 1] - ref, STROKE * scale) for p in points) // 2
        if cycles >= MIN_CYCLES:
            return f"repeating an up-and-down {part} movement {cycles} times"
    return None


# Order of the clauses in a description: body first, then limbs, then travel. Named gestures
# (waving, jumping, walking, kicking ...) are :mod:`vidsense.services.perception.motion.gestures`'.
RULES = (posture, repetition, locomotion)


def describe_track(track: Track) -> list[str]:
    """Every rule's words for one person over one window, in :data:`RULES` order."""
    return [words for rule in RULES if (words := rule(track))]
