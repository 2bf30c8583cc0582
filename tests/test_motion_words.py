"""The keypoint-to-words rules, on synthetic people whose motion is known."""

from __future__ import annotations

import numpy as np
import pytest
from motion_fixtures import body, track, walk

from vidsense.services.perception.motion import motion_words as mw


@pytest.mark.parametrize(
    ("angle", "leg", "word"),
    [(0, 1.6, "upright"), (10, 1.6, "upright"), (45, 1.6, "bent"), (90, 1.6, "lying"), (-90, 1.6, "lying"), (180, 1.6, "upside down"), (0, 0.6, "crouched")],
)
def test_posture(angle: float, leg: float, word: str) -> None:
    assert mw.posture(track([body(angle_deg=angle, leg=leg)] * 4)) == word


def test_posture_needs_a_seen_torso() -> None:
    kp = body()
    kp[[mw.L_SHOULDER, mw.R_SHOULDER], 2] = 0.0
    assert mw.posture(track([kp] * 4)) is None


def test_count_strokes_ignores_jitter_and_counts_each_way() -> None:
    assert mw.count_strokes(np.array([0.0, 1, 0, 1, 0, 1, 0]), 0.9) == 6
    assert mw.count_strokes(np.array([0.0, 1, 0.5, 1, 0]), 0.9) == 2  # the dip to 0.5 is jitter
    assert mw.count_strokes(0.2 * np.sin(np.arange(40)), 1.0) == 0
    assert mw.count_strokes(np.array([0.0, np.nan, 2.0, np.nan]), 1.0) == 1
    assert mw.count_strokes(np.array([1.0]), 0.1) == 0


@pytest.mark.parametrize(
    ("speed", "steps", "words"),
    [
        (1.0, False, "gliding right (1.0 body heights/s)"),
        (-1.0, False, "gliding left (1.0 body heights/s)"),
        (2.5, False, "gliding right fast (2.5 body heights/s)"),
        (0.3, False, "moving right slowly (0.3 body heights/s)"),
        # Stepping legs are a gait: a gesture (see test_gestures), not a pose word.
        (0.8, True, None),
    ],
)
def test_locomotion(speed: float, steps: bool, words: str | None) -> None:
    assert mw.locomotion(walk(speed, steps)) == words


def test_standing_still_is_no_locomotion() -> None:
    assert mw.locomotion(walk(0.0, False)) is None
    assert mw.body_speed(track([body()])) == (0.0, 0.0)


def test_speed_is_relative_to_body_size() -> None:
    near = walk(0.8, True)
    far = mw.Track(near.times, near.keypoints.copy())
    far.keypoints[:, :, :2] *= 0.25  # same walk, four times further away
    assert mw.body_speed(near)[0] == pytest.approx(mw.body_speed(far)[0])


def test_unseen_feet_make_gait_unknown() -> None:
    t = walk(0.8, True)
    t.keypoints[:, [mw.L_ANKLE, mw.R_ANKLE], 2] = 0.0
    assert mw.locomotion(t) == "moving right (0.8 body heights/s)"


def test_repetition_of_an_up_and_down_hand() -> None:
    frames = [body(r_wrist=(0, dy)) for dy in [0.0, -0.6] * 4]
    assert mw.repetition(track(frames, fps=8)) == "repeating an up-and-down hand movement 3 times"
    assert mw.repetition(track([body()] * 8)) is None


def test_describe_track_orders_body_then_limbs_then_travel() -> None:
    frames = [body(cx=0.5 + 0.13 * i, r_wrist=(0, -0.6 * (i % 2))) for i in range(8)]
    assert mw.describe_track(track(frames, fps=4)) == ["upright", "repeating an up-and-down hand movement 3 times", "gliding right (0.8 body heights/s)"]
