"""Gesture rules on synthetic keypoint tracks: each gesture, and the near misses that must stay silent."""

from __future__ import annotations

import numpy as np
import pytest
from motion_fixtures import body, track, walk

from vidsense.services.perception.motion import gestures as g
from vidsense.services.perception.motion import motion_words as mw

FPS = 6.4  # the motion clip's frame rate, which dense pose frames follow
T = 0.2  # torso length of the fixture's people, in frame heights


def _names(found: list[g.Gesture]) -> list[str]:
    return [x.name for x in found]


def _wave(raised: bool = True, amplitude: float = 0.3, hz: float = 2.0, n: int = 13) -> mw.Track:
    t = np.arange(n) / FPS
    # The hand beside the head (0.3 torsos further out than it hangs), or hanging.
    x0, lift = (-0.3, -1.4) if raised else (0.0, 0.0)
    return track([body(r_wrist=(x0 + amplitude * np.sin(2 * np.pi * hz * ti), lift)) for ti in t], FPS)


def test_waving_a_raised_hand_side_to_side() -> None:
    found = g.waving(_wave())
    assert found is not None and found.name == "waving"
    assert found.detail.startswith("right hand, ") and int(found.detail.split(", ")[1].split()[0]) >= 2


@pytest.mark.parametrize(
    "near_miss",
    [
        _wave(amplitude=0.0),  # raised hand held still
        _wave(raised=False),  # the same swing with the hand hanging, as when walking
        _wave(amplitude=0.05),  # a tremble below the stroke length
    ],
)
def test_not_waving(near_miss: mw.Track) -> None:
    assert g.waving(near_miss) is None


def test_an_occluded_hand_does_not_wave() -> None:
    t = _wave()
    t.keypoints[::2, mw.R_WRIST, 2] = 0.0  # wrist unseen in 7 of 13 frames
    t.keypoints[1, mw.R_WRIST, 2] = 0.0
    assert g.waving(t) is None


def _hands(gap: float) -> dict[str, tuple[float, float]]:
    """Both wrists at chest height, ``gap`` torsos apart."""
    return {"l_wrist": (gap / 2 - 0.3, -0.55), "r_wrist": (0.3 - gap / 2, -0.55)}


def test_clapping_counts_meetings() -> None:
    frames = [body(**_hands(0.8 if i % 2 == 0 else 0.05)) for i in range(7)]
    found = g.clapping(track(frames, FPS))
    assert found is not None and found.detail == "3 claps"


def test_hands_held_together_or_apart_are_not_clapping() -> None:
    assert g.clapping(track([body(**_hands(0.05))] * 7, FPS)) is None
    assert g.clapping(track([body(**_hands(0.8))] * 7, FPS)) is None
    # Meeting at the knees, below the hips: not in front of the body.
    low = [body(l_wrist=(0.3 - 0.3 * (i % 2), 0.4), r_wrist=(-0.3 + 0.3 * (i % 2), 0.4)) for i in range(7)]
    assert g.clapping(track(low, FPS)) is None


# Right arm straight out to the side at shoulder height.
ARM_OUT = {"r_elbow": (-0.45, -0.5), "r_wrist": (-0.95, -0.95)}


def test_pointing_is_a_straight_arm_held_still() -> None:
    found = g.pointing(track([body(**ARM_OUT)] * 8, FPS))
    assert found is not None and found.detail.startswith("right arm, held")


def test_a_swinging_arm_or_both_arms_out_is_not_pointing() -> None:
    swing = [body(r_elbow=(-0.45, -0.5), r_wrist=(-0.95, -0.95 + (0.5 if i % 2 else -0.3))) for i in range(8)]
    assert g.pointing(track(swing, FPS)) is None
    both = body(**ARM_OUT, l_elbow=(0.45, -0.5), l_wrist=(0.95, -0.95))
    assert g.pointing(track([both] * 8, FPS)) is None
    assert g.pointing(track([body()] * 8, FPS)) is None  # arms hanging


MOUTH = {"r_wrist": (0.3, -1.25)}  # right wrist at the mouth (0.15 torsos below the nose)


def test_hand_to_mouth_counts_each_approach() -> None:
    # Two sips, the cup at the mouth for a second each time (7 frames at 6.4 fps).
    frames = [body(**MOUTH) if 3 <= i % 10 else body() for i in range(20)]
    found = g.hand_to_mouth(track(frames, FPS))
    assert found is not None and found.detail == "right hand, 2 times"


def test_a_hand_passing_the_mouth_is_not_hand_to_mouth() -> None:
    # One frame at the mouth each time (a wave or a scratch passing by): on real clips the largest
    # source of false gestures, so the hand must stay there MOUTH_HOLD_S.
    frames = [body(**MOUTH) if i % 2 else body() for i in range(20)]
    assert g.hand_to_mouth(track(frames, FPS)) is None


def test_hand_near_the_chest_is_not_at_the_mouth() -> None:
    frames = [body(r_wrist=(0.3, -0.7)) if i % 2 else body() for i in range(6)]
    assert g.hand_to_mouth(track(frames, FPS)) is None


def test_both_hands_at_the_face_are_hands_on_face_not_eating() -> None:
    face = track([body(r_wrist=(0.25, -1.4), l_wrist=(-0.25, -1.4))] * 6, FPS)
    assert g.hands_on_face(face) is not None
    assert g.hand_to_mouth(face) is None
    assert g.hands_on_face(track([body(**MOUTH)] * 6, FPS)) is None


def test_raising_arms_above_the_head() -> None:
    up = track([body(r_wrist=(0, -1.9), l_wrist=(0, -1.9))] * 4, FPS)
    assert g.arms_raised(up) == g.Gesture("raising arms", "both", 1.0)
    assert g.arms_raised(track([body(r_wrist=(0, -1.9))] * 4, FPS)).detail == "right"
    assert g.arms_raised(track([body(r_wrist=(0, -1.9))] + [body()] * 3, FPS)) is None


STANDING = body()
# Seated: hips 0.5 torsos lower, knees up at hip level (thigh 0.2 torsos tall), feet where they were.
SEATED = body(hip_y=0.6 + 0.5 * T, l_knee=(0, -0.6), r_knee=(0, -0.6), l_ankle=(0, -0.5), r_ankle=(0, -0.5))
HALF = body(hip_y=0.6 + 0.25 * T, l_knee=(0, -0.3), r_knee=(0, -0.3), l_ankle=(0, -0.25), r_ankle=(0, -0.25))


def test_sitting_down_and_standing_up() -> None:
    down = [STANDING] * 3 + [HALF] * 2 + [SEATED] * 3
    assert g.sitting_or_standing(track(down, FPS)).name == "sitting down"
    assert g.sitting_or_standing(track(down[::-1], FPS)).name == "standing up"


def _person(frames: list[np.ndarray], start_s: float, person: int = 1) -> mw.Track:
    return mw.Track(start_s + np.arange(len(frames)) / FPS, np.stack(frames), person)


def test_standing_up_across_a_window_boundary_is_read_over_both_windows() -> None:
    # The thigh unfolds at the end of one window and the hips rise at the start of the next: neither
    # window alone shows the change (KARD's stand-up, as the development set films it).
    first = _person([SEATED] * 9 + [HALF] * 3, 0.0)
    second = _person([HALF] * 3 + [STANDING] * 9, 2.0)
    assert "standing up" not in _names(g.window_gestures([first])) + _names(g.window_gestures([second]))
    found = g.clip_gestures([[first], [second]])
    assert found[0] == g.window_gestures([first]) and [x.phrase() for x in found[1]] == ["person 1 standing up"]
    # Not across two people, nor a window named already, nor for gestures other than the posture changes.
    assert g.clip_gestures([[first], [_person([HALF] * 3 + [STANDING] * 9, 2.0, person=2)]])[1] == []
    whole = _person([SEATED] * 3 + [HALF] * 2 + [STANDING] * 7, 2.0)
    assert _names(g.clip_gestures([[first], [whole]])[1]).count("standing up") == 1
    jump = [body(hip_y=0.6 - 0.6 * T, l_ankle=(0, -0.6), r_ankle=(0, -0.6))]
    hop_a, hop_b = _person([STANDING] * 11 + jump, 0.0), _person(jump + [STANDING] * 11, 2.0)
    assert "jumping" in _names(g.person_gestures(g.joined(hop_a, hop_b), 1))
    assert g.span_gestures([[hop_a], [hop_b]]) == []


def test_a_slow_sit_is_read_over_three_windows() -> None:
    # Standing, half way down, seated: 6 s in all; no single window nor two neighbours hold the whole change.
    windows = [[_person([frame] * 12, 2.0 * k)] for k, frame in enumerate((STANDING, HALF, SEATED))]
    assert all(g.span_gestures(windows[k : k + 2]) == [] for k in range(2))
    found = g.clip_gestures(windows)
    assert [_names(f) for f in found] == [[], [], ["sitting down"]]


def test_a_squat_that_comes_back_up_or_walking_towards_the_camera_is_not_sitting() -> None:
    squat = [STANDING] * 3 + [SEATED] * 2 + [STANDING] * 3
    assert g.sitting_or_standing(track(squat, FPS)) is None
    towards = [body(hip_y=0.5 + 0.03 * i) for i in range(8)]  # hips drift down the frame, legs straight
    assert g.sitting_or_standing(track(towards, FPS)) is None


def test_falling_is_a_fast_drop_that_ends_lying() -> None:
    fall = [body()] * 4 + [body(angle_deg=90, hip_y=0.9)] * 4
    found = g.falling(track(fall, 8.0))
    assert found is not None and found.name == "falling"
    # The fall explains the bend and the folded legs: nothing else is reported for it.
    assert _names(g.person_gestures(track(fall, 8.0), 1)) == ["falling"]


def test_lying_down_slowly_or_sitting_is_not_falling() -> None:
    slow = [body(angle_deg=min(90, 12 * i), hip_y=0.6 + 0.3 * i / 8) for i in range(9)]
    assert g.falling(track(slow, 2.0)) is None
    assert g.falling(track([STANDING] * 3 + [HALF] * 2 + [SEATED] * 3, FPS)) is None


def test_jumping_counts_landings() -> None:
    up = 0.7 * T
    ys = [0.6, 0.6, 0.6 - up, 0.6, 0.6, 0.6 - up, 0.6]
    assert g.jumping(track([body(hip_y=y) for y in ys])).detail == "2 jumps"
    assert g.jumping(track([body(hip_y=y) for y in ys[:4]])).detail == "1 jump"


def test_drifting_up_the_frame_is_not_jumping() -> None:
    # Walking away from the camera: the whole body moves steadily up the image.
    assert g.jumping(track([body(hip_y=0.8 - 0.05 * i) for i in range(8)])) is None


@pytest.mark.parametrize(
    ("speed", "name", "detail"),
    [
        (0.8, "walking", "right, 0.8 body heights/s"),
        (-0.8, "walking", "left, 0.8 body heights/s"),
        (1.6, "running", "right, 1.6 body heights/s"),
    ],
)
def test_walking_and_running(speed: float, name: str, detail: str) -> None:
    found = g.walking_or_running(walk(speed, steps=True))
    assert (found.name, found.detail) == (name, detail)


def test_gliding_or_standing_is_no_gait() -> None:
    assert g.walking_or_running(walk(1.0, steps=False)) is None
    assert g.walking_or_running(walk(0.0, steps=True)) is None


def test_stepping_while_growing_is_walking_towards_the_camera() -> None:
    frames = [body(torso=T * (1 + 0.05 * i), l_ankle=(0.3 * (-1) ** i, 0), r_ankle=(-0.3 * (-1) ** i, 0)) for i in range(8)]
    assert g.walking_or_running(track(frames)).detail == "towards the camera"


def test_a_camera_pan_is_not_walking_and_a_followed_walker_is() -> None:
    # A person shifting their feet on the spot, filmed by a camera panning left: on screen they
    # drift right at 0.8 body heights/s, and so does the whole scene.
    drifting = walk(0.8, steps=True)
    camera = np.stack([drifting.keypoints[:, mw.L_HIP, 0] - drifting.keypoints[0, mw.L_HIP, 0], np.zeros(8)], axis=1)
    assert g.walking_or_running(drifting) is not None
    assert g.walking_or_running(g.compensate(drifting, camera)) is None
    # A walker the camera follows stays put on screen while the scene slides left.
    followed = walk(0.0, steps=True)
    found = g.walking_or_running(g.compensate(followed, -camera))
    assert found is not None and found.detail == "right, 0.8 body heights/s"


def test_turning_around_flips_the_shoulders() -> None:
    front = body()
    back = body(l_shoulder=(-0.5, 0), r_shoulder=(0.5, 0))
    back[mw.NOSE, 2] = 0.1  # the face turns away with the shoulders
    assert g.turning(track([front] * 3 + [back] * 3, FPS)).name == "turning around"
    assert g.turning(track([back] * 3 + [front] * 3, FPS)).name == "turning around"
    assert g.turning(track([front] * 6, FPS)) is None
    # Shoulders swapped but the face still seen: a left/right keypoint swap, not a turn.
    swapped = body(l_shoulder=(-0.5, 0), r_shoulder=(0.5, 0))
    assert g.turning(track([front] * 3 + [swapped] * 3, FPS)) is None


def _bent(deg: float, torso: float = T) -> np.ndarray:
    """A person bent ``deg`` at the hips: the upper body rotated about them, the legs upright."""
    kp = body(angle_deg=deg, torso=torso)
    legs = [mw.L_KNEE, mw.R_KNEE, mw.L_ANKLE, mw.R_ANKLE]
    kp[legs] = body(torso=torso)[legs]
    return kp


def test_bending_down_from_upright() -> None:
    # Bending to the floor: the torso tips past 70 deg about the hips, the legs stay straight under them.
    assert g.bending(track([body()] * 3 + [_bent(a) for a in (40, 60, 80)], FPS)).detail == "to 80 deg"
    assert g.bending(track([_bent(80)] * 6, FPS)) is None  # bent throughout: a posture, not a bend
    # A crouch (a skater's, a batter's) tips the torso less than a bend to the floor.
    assert g.bending(track([body()] * 3 + [_bent(a) for a in (30, 45, 60)], FPS)) is None
    # Lying down: the torso goes flat and the legs with it, so the hips are not up.
    assert g.bending(track([body()] * 3 + [body(angle_deg=a) for a in (40, 70, 85)], FPS)) is None


def test_a_torso_tipping_too_fast_for_a_bend_is_not_bending() -> None:
    # Upright to 80 deg between two frames 0.16 s apart: 500 deg/s, a flip's landing (see g.BEND_RATE).
    frames = [body()] * 3 + [_bent(80)] * 3
    assert g.bending(track(frames, FPS)) is None
    # The same two postures 0.4 s apart (200 deg/s) are a bend.
    assert g.bending(track(frames, 2.5)).detail == "to 80 deg"


def test_kicking_lifts_an_ankle_above_the_other_thigh() -> None:
    kick = body(r_ankle=(0.3, -1.3))
    assert g.kicking(track([body(), kick, body(), kick])).detail == "right leg"
    assert g.kicking(track([body(), kick, body(), body()])) is None


def test_waving_silences_the_raised_arm_it_explains() -> None:
    assert _names(g.person_gestures(_wave(), 3)) == ["waving"]
    assert g.person_gestures(_wave(), 3)[0].people == (3,)


# ---------------------------------------------------------------------------- two people


# Two people acting on each other face each other: A, on the left, has the head turned right
# (toward B), B has it turned left (see g.FACE_TURN).
TO_B = {"nose": (0.3, 0.0)}
TO_A = {"nose": (-0.3, 0.0)}


def _pair(a: list[np.ndarray], b: list[np.ndarray], fps: float = FPS) -> list[mw.Track]:
    ta, tb = track(a, fps), track(b, fps)
    return [mw.Track(ta.times, ta.keypoints, person=1), mw.Track(tb.times, tb.keypoints, person=2)]


def _kinds(tracks: list[mw.Track]) -> list[str]:
    return _names(g.pair_gestures(tracks, [t.person for t in tracks]))


def test_hugging_is_close_with_arms_around() -> None:
    a = body(cx=1.0, **TO_B)
    a[[mw.L_WRIST, mw.R_WRIST], 2] = 0.0  # arms behind the other's back
    b = body(cx=1.0 + 0.6 * T, **TO_A)
    assert _kinds(_pair([a] * 6, [b] * 6)) == ["hugging"]
    # Standing that close with arms hanging is not a hug, nor is standing 1.5 torsos apart.
    assert _kinds(_pair([body(cx=1.0, **TO_B)] * 6, [b] * 6)) == []
    assert _kinds(_pair([a] * 6, [body(cx=1.0 + 1.5 * T, **TO_A)] * 6)) == []


def test_people_turned_the_same_way_do_not_hug() -> None:
    # Dancers in a line, all turned right: A faces B's back, B faces away from A.
    a = body(cx=1.0, **TO_B)
    a[[mw.L_WRIST, mw.R_WRIST], 2] = 0.0
    b = body(cx=1.0 + 0.6 * T, **TO_B)
    assert _kinds(_pair([a] * 6, [b] * 6)) == []
    # B turned back toward A: face to face, the same bodies hug.
    assert _kinds(_pair([a] * 6, [body(cx=1.0 + 0.6 * T, **TO_A)] * 6)) == ["hugging"]
    assert not g.facing(*_pair([a] * 6, [b] * 6))


def _handshake(a_moves: dict, b_moves: dict) -> list[str]:
    a = body(cx=1.0, l_wrist=(0.7, -0.55), **a_moves)  # A's left hand reaches 1 torso to the right
    b = body(cx=1.0 + 2 * T, r_wrist=(-0.7, -0.55), **b_moves)
    return _kinds(_pair([a] * 4, [b] * 4))


def test_shaking_hands_at_reach() -> None:
    assert _handshake(TO_B, TO_A) == ["shaking hands"]
    assert _kinds(_pair([body(cx=1.0, **TO_B)] * 4, [body(cx=1.0 + 2 * T, **TO_A)] * 4)) == []


def test_people_side_by_side_facing_the_camera_do_not_interact() -> None:
    # Dancers in a line holding hands: both face the camera, heads straight.
    assert _handshake({}, {}) == []
    # One head turned to the other is enough; so is one front and one back (shoulders swapped, face unseen).
    assert _handshake(TO_B, {}) == ["shaking hands"]
    back = {"l_shoulder": (-0.5, 0), "r_shoulder": (0.5, 0)}
    a = body(cx=1.0, l_wrist=(0.7, -0.55))
    b = body(cx=1.0 + 2 * T, r_wrist=(-0.7, -0.55), **back)
    b[mw.NOSE, 2] = 0.1
    assert _kinds(_pair([a] * 4, [b] * 4)) == ["shaking hands"]
    # With the check off (FACE_TURN 0), side by side is read as before.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(g, "FACE_TURN", 0.0)
        assert _handshake({}, {}) == ["shaking hands"]


def test_punching_is_a_fast_strike_and_a_slow_reach_is_not() -> None:
    b = body(cx=1.5, **TO_A)
    # A's left wrist goes from the chest to B's face (2.5 torsos to the right, at nose height).
    strike = [body(cx=1.0, l_wrist=(0.0, -0.6), **TO_B)] * 3 + [body(cx=1.0, l_wrist=(2.2, -1.4), **TO_B)] * 2
    assert _kinds(_pair(strike, [b] * 5, fps=8.0)) == ["punching"]
    reach = [body(cx=1.0, l_wrist=(2.2 * k / 9, -0.6 - 0.8 * k / 9), **TO_B) for k in range(10)]
    assert _kinds(_pair(reach, [b] * 10, fps=4.0)) == []


def test_pushing_moves_the_other_away() -> None:
    on = {"l_wrist": (0.95, -0.95), "r_wrist": (1.55, -0.95), **TO_B}  # both hands on B's shoulders
    a = [body(cx=1.0, **on)] * 2 + [body(cx=1.0, **TO_B)] * 3
    b = [body(cx=1.3, **TO_A)] * 2 + [body(cx=1.3 + d, **TO_A) for d in (0.08, 0.15, 0.15)]
    assert _kinds(_pair(a, b)) == ["pushing"]
    assert _kinds(_pair(a, [body(cx=1.3, **TO_A)] * 5)) == []  # hands on, nobody moves


def test_hands_and_feet_of_a_small_person_are_not_read() -> None:
    # The same wave and jump on a person whose torso spans 0.04 frame heights (under g.MIN_TORSO):
    # a few pixels of keypoint noise there are a third of a torso, so the hand rules stay silent.
    t = np.arange(13) / FPS
    wave = [body(torso=0.04, r_wrist=(-0.3 + 0.3 * np.sin(2 * np.pi * 2.0 * ti), -1.4)) for ti in t]
    assert g.waving(track(wave, FPS)) is None
    assert g.waving(track([body(torso=T, r_wrist=(-0.3 + 0.3 * np.sin(2 * np.pi * 2.0 * ti), -1.4)) for ti in t], FPS)) is not None
    # What the trunk alone says still holds at that size: the bend is read.
    bend = [body(torso=0.04)] * 3 + [_bent(a, torso=0.04) for a in (40, 60, 80)]
    assert g.bending(track(bend, FPS)).detail == "to 80 deg"
    # Two small people at a handshake's reach are not read either.
    a = body(cx=1.0, torso=0.04, l_wrist=(0.7, -0.55), **TO_B)
    b = body(cx=1.0 + 2 * 0.04, torso=0.04, r_wrist=(-0.7, -0.55), **TO_A)
    assert _kinds(_pair([a] * 4, [b] * 4)) == []


def test_window_gestures_number_people_and_phrase_them() -> None:
    tracks = [mw.Track(_wave().times, _wave().keypoints, person=2)]
    phrases = [x.phrase() for x in g.window_gestures(tracks)]
    assert len(phrases) == 1 and phrases[0].startswith("person 2 waving (right hand, ")
    assert g.gesture_name(phrases[0]) == "waving"
    assert g.gesture_name(g.Gesture("shaking hands", "", 1.0, (1, 2)).phrase()) == "shaking hands"
    # Compared with label names, a hand at the mouth stands for what it usually is.
    from vidsense.agents.vocabulary import gesture_meaning

    assert gesture_meaning("person 1 hand to mouth (right hand, held)") == "eating, drinking or smoking"
    assert gesture_meaning("person 1 waving (left hand, 1 cycle)") == "waving"


def test_closer_look_only_where_arms_are_busy_or_people_meet() -> None:
    assert not g.worth_a_closer_look([walk(0.8, steps=True)])
    assert g.worth_a_closer_look([track([body(r_wrist=(0, -0.8))] * 3)])
    # A hand on the other's shoulder is a closer look; two people side by side, arms down, are not.
    touch = _pair([body(cx=1.0, l_wrist=(1.6, 0.0))] * 3, [body(cx=1.0 + 2 * T)] * 3)
    side_by_side = _pair([body(cx=1.0)] * 3, [body(cx=1.0 + 1.5 * T)] * 3)
    assert g.worth_a_closer_look(touch) and not g.worth_a_closer_look(side_by_side)
    # A person too small for the rules to read their hands (under g.MIN_TORSO) buys no closer look.
    small = 0.04
    assert not g.worth_a_closer_look([track([body(r_wrist=(0, -0.8), torso=small)] * 3)])
    assert not g.worth_a_closer_look(_pair([body(cx=1.0, l_wrist=(1.6, 0.0), torso=small)] * 3, [body(cx=1.0 + 2 * small, torso=small)] * 3))


def test_jumping_jacks_open_and_close_arms_and_legs() -> None:
    opened = body(l_wrist=(0.5, -2.0), r_wrist=(-0.5, -2.0), l_ankle=(0.4, 0), r_ankle=(-0.4, 0))
    frames = [opened if i % 2 else body() for i in range(7)]
    found = g.jumping_jacks(track(frames, FPS))
    assert found is not None and found.detail == "3 cycles"
    assert _names(g.person_gestures(track(frames, FPS), 1)) == ["jumping jacks"]
    # Arms alone (a stretch) or legs alone (side steps) are not jumping jacks.
    arms_only = [body(l_wrist=(0.5, -2.0), r_wrist=(-0.5, -2.0)) if i % 2 else body() for i in range(7)]
    legs_only = [body(l_ankle=(0.4, 0), r_ankle=(-0.4, 0)) if i % 2 else body() for i in range(7)]
    assert g.jumping_jacks(track(arms_only, FPS)) is None and g.jumping_jacks(track(legs_only, FPS)) is None


def test_a_side_on_body_swaying_is_not_turning() -> None:
    sway = [body(l_shoulder=(-0.25 + 0.1 * (-1) ** i, 0), r_shoulder=(0.25 - 0.1 * (-1) ** i, 0)) for i in range(6)]
    assert g.turning(track(sway, FPS)) is None


def test_walking_away_seen_from_behind_steps_by_foot_height() -> None:
    # Feet take turns being higher (fore-and-aft is depth here) while the body shrinks 12% a second.
    frames = [body(torso=T * 0.88 ** (i / 4), l_ankle=(0, -0.2 * (i % 2)), r_ankle=(0, -0.2 * ((i + 1) % 2))) for i in range(8)]
    assert g.walking_or_running(track(frames)).detail == "away from the camera"
    still = [body(torso=T * 0.88 ** (i / 4)) for i in range(8)]  # a zoom out, feet planted
    assert g.walking_or_running(track(still)) is None


def test_a_torso_shortening_alone_is_not_walking_away() -> None:
    # The torso as seen shrinks 12% a second while the feet take turns: walking away, as above...
    frames = [body(torso=T * 0.88 ** (i / 4), l_ankle=(0, -0.2 * (i % 2)), r_ankle=(0, -0.2 * ((i + 1) % 2))) for i in range(8)]
    # ...but with the shoulders as wide as ever it is a posture (standing up, leaning back to kick).
    for kp in frames:
        kp[mw.L_SHOULDER, 0], kp[mw.R_SHOULDER, 0] = 1.0 + 0.25 * T, 1.0 - 0.25 * T
    assert g.walking_or_running(track(frames)) is None
    # A torso tipping forward shortens as seen too: not walking either.
    tipping = [body(angle_deg=6 * i, l_ankle=(0, -0.2 * (i % 2)), r_ankle=(0, -0.2 * ((i + 1) % 2))) for i in range(8)]
    assert g.walking_or_running(track(tipping)) is None


def test_the_rules_digest_follows_the_thresholds(monkeypatch):
    # Pose results are cached under a key holding this digest (PoseDescriber.params): results made
    # under other thresholds must not be served after an upgrade or a sweep.
    before = g.rules_digest()
    assert g.rules_digest() == before and len(before) == 16
    monkeypatch.setattr(g, "NEAR_MOUTH", g.NEAR_MOUTH + 0.1)
    assert g.rules_digest() != before
    monkeypatch.undo()
    assert g.rules_digest() == before
