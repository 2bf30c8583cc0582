"""The keypoint-to-words rules, on synthetic people whose motion is known."""

from __future__ import annotations

import numpy as np
import pytest
from motion_fixtures import body, track

from vidsense.services import motion_words as mw


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


def test_arm_raised_above_head_uses_the_persons_own_side() -> None:
    assert mw.arms_raised(track([body(r_wrist=(0, -1.9))] * 4)) == "right arm raised above the head"
    assert mw.arms_raised(track([body(r_wrist=(0, -1.9), l_wrist=(0, -1.9))] * 4)) == "both arms raised above the head"
    assert mw.arms_raised(track([body()] * 4)) is None
    # Raised in only one frame of four: not the window's description.
    assert mw.arms_raised(track([body(r_wrist=(0, -1.9))] + [body()] * 3)) is None


def test_count_strokes_ignores_jitter_and_counts_each_way() -> None:
    assert mw.count_strokes(np.array([0.0, 1, 0, 1, 0, 1, 0]), 0.9) == 6
    assert mw.count_strokes(np.array([0.0, 1, 0.5, 1, 0]), 0.9) == 2  # the dip to 0.5 is jitter
    assert mw.count_strokes(0.2 * np.sin(np.arange(40)), 1.0) == 0
    assert mw.count_strokes(np.array([0.0, np.nan, 2.0, np.nan]), 1.0) == 1
    assert mw.count_strokes(np.array([1.0]), 0.1) == 0


def test_waving_hand_side_to_side() -> None:
    # Right forearm up (wrist above elbow), wrist swinging +-0.4 torsos: 5 strokes.
    xs = [0.4, -0.4, 0.4, -0.4, 0.4, -0.4]
    frames = [body(r_wrist=(x, -0.9)) for x in xs]
    assert mw.hand_side_to_side(track(frames, fps=8)) == "hand moving side to side 5 times"


def test_walking_arm_swing_is_not_waving() -> None:
    # Same swing with the hand hanging below the elbow, as when walking.
    frames = [body(r_wrist=(x, 0.0), l_wrist=(-x, 0.0)) for x in [0.4, -0.4] * 3]
    assert mw.hand_side_to_side(track(frames, fps=8)) is None


def test_legs_kicking() -> None:
    kick = body(r_ankle=(0.3, -1.3))
    assert mw.legs_kicking(track([body(), kick, body(), kick])) == "legs kicking"
    assert mw.legs_kicking(track([body(), kick, body(), body()])) is None


def test_jumping_counts_landings() -> None:
    up = 0.7 * 0.2  # 0.7 torsos, in frame heights
    ys = [0.6, 0.6, 0.6 - up, 0.6, 0.6, 0.6 - up, 0.6]
    assert mw.jumping(track([body(hip_y=y) for y in ys])) == "jumping 2 times"
    assert mw.jumping(track([body(hip_y=y) for y in ys[:4]])) == "jumping"


def test_drifting_up_the_frame_is_not_jumping() -> None:
    # Walking away from the camera: the whole body moves steadily up the image.
    assert mw.jumping(track([body(hip_y=0.8 - 0.05 * i) for i in range(8)])) is None


def _walk(speed_body_s: float, steps: bool, fps: float = 4.0, n: int = 8) -> mw.Track:
    torso = 0.2
    per_frame = speed_body_s * mw.BODY_PER_TORSO * torso / fps
    frames = []
    for i in range(n):
        stride = 0.3 * (1 if i % 2 else -1) if steps else 0.0
        frames.append(body(cx=0.5 + per_frame * i, torso=torso, l_ankle=(stride, 0), r_ankle=(-stride, 0)))
    return track(frames, fps)


@pytest.mark.parametrize(
    ("speed", "steps", "words"),
    [
        (0.8, True, "walking right (0.8 body heights/s)"),
        (-0.8, True, "walking left (0.8 body heights/s)"),
        (1.6, True, "running right (1.6 body heights/s)"),
        (2.5, True, "running right fast (2.5 body heights/s)"),
        (0.3, True, "walking right slowly (0.3 body heights/s)"),
        (1.0, False, "gliding right (1.0 body heights/s)"),
        (0.3, False, "moving right slowly (0.3 body heights/s)"),
    ],
)
def test_locomotion(speed: float, steps: bool, words: str) -> None:
    assert mw.locomotion(_walk(speed, steps)) == words


def test_standing_still_is_no_locomotion() -> None:
    assert mw.locomotion(_walk(0.0, True)) is None
    assert mw.body_speed(track([body()])) == (0.0, 0.0)


def test_speed_is_relative_to_body_size() -> None:
    near = _walk(0.8, True)
    far = mw.Track(near.times, near.keypoints.copy())
    far.keypoints[:, :, :2] *= 0.25  # same walk, four times further away
    assert mw.body_speed(near)[0] == pytest.approx(mw.body_speed(far)[0])


def test_unseen_feet_make_gait_unknown() -> None:
    t = _walk(0.8, True)
    t.keypoints[:, [mw.L_ANKLE, mw.R_ANKLE], 2] = 0.0
    assert mw.locomotion(t) == "moving right (0.8 body heights/s)"


def test_repetition_of_an_up_and_down_hand() -> None:
    frames = [body(r_wrist=(0, dy)) for dy in [0.0, -0.6] * 4]
    assert mw.repetition(track(frames, fps=8)) == "repeating an up-and-down hand movement 3 times"
    assert mw.repetition(track([body()] * 8)) is None


def test_describe_track_orders_body_then_limbs_then_travel() -> None:
    frames = [body(cx=0.5 + 0.13 * i, r_wrist=(0, -1.9), l_ankle=(0.3 * (-1) ** i, 0), r_ankle=(-0.3 * (-1) ** i, 0)) for i in range(8)]
    assert mw.describe_track(track(frames)) == ["upright", "right arm raised above the head", "walking right (0.8 body heights/s)"]
