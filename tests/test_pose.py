"""Pose describer: tracking and wording on synthetic detections, and the real MoveNet on the example clip."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pytest
from motion_fixtures import body

from vidsense.services.media.motion_clip import MotionClip, group_windows
from vidsense.services.perception.motion import pose
from vidsense.services.timeline import Window


def test_tracking_keeps_two_walkers_apart() -> None:
    frames = [[pose.Person(body(cx=0.3 + 0.05 * i), 0.9), pose.Person(body(cx=1.5 - 0.05 * i), 0.8)] for i in range(6)]
    frames[3] = frames[3][::-1]  # detection order must not matter
    tracks = pose.track_people(frames)
    assert len(tracks) == 2
    for track in tracks:
        xs = [track[f].centre[0] for f in sorted(track)]
        assert len(xs) == 6 and (np.all(np.diff(xs) > 0) or np.all(np.diff(xs) < 0))


def test_a_far_jump_starts_a_new_track() -> None:
    tracks = pose.track_people([[pose.Person(body(cx=0.3), 0.9)], [pose.Person(body(cx=1.6), 0.9)]])
    assert len(tracks) == 2


def test_people_doing_the_same_are_counted_together() -> None:
    times = np.arange(8) / 4.0
    gliders = [pose.track_people([[pose.Person(body(cx=x + 0.13 * i), 0.9)] for i in range(8)])[0] for x in (0.2, 1.0)]
    stander = pose.track_people([[pose.Person(body(cx=1.6), 0.9)] for _ in range(8)])[0]
    tracks = pose.window_tracks(gliders + [stander], times, Window(0, 0.0, 2.0))
    assert pose.people_text(tracks) == "2 people: upright, gliding right; person 3: upright"


def test_window_tracks_skip_people_seen_briefly() -> None:
    times = np.arange(8) / 4.0
    brief = {0: pose.Person(body(), 0.9), 1: pose.Person(body(), 0.9)}
    assert pose.window_tracks([brief], times, Window(0, 0.0, 2.0)) == []


def test_pose_frames_cover_every_window() -> None:
    windows = (Window(0, 0.0, 2.0), Window(1, 2.0, 4.0), Window(2, 4.0, 6.0))
    times = tuple(6.0 * (i + 0.5) / 64 for i in range(64))
    clip = MotionClip(group_windows(windows)[0], times, np.zeros((64, 8, 8, 3), np.uint8))
    picks = pose.pose_frames(clip, fps=2.5)
    for w in windows:
        assert sum(w.start_s <= times[i] < w.end_s for i in picks) >= 3
    assert len(picks) <= 21


@pytest.mark.slow
def test_pose_describer_finds_the_cyclist_in_the_example_clip() -> None:
    from vidsense.services.media.video import Media
    from vidsense.services.settings import load_settings
    from vidsense.services.timeline import make_windows

    describer = pose.PoseDescriber(load_settings().model_env())
    with resources.as_file(resources.files("vidsense").joinpath("examples/bikes.mp4")) as path:
        media = Media.open(path)
        obs = describer.describe(media, make_windows(media.info.duration_s)).observations
    assert describer.detector.model_name == "movenet-multipose"
    assert obs and all(o.kind == "pose" and re.match(r"(person \d+|\d+ people): ", o.text) for o in obs)
    # Riding a bike moves no arm and takes no step: no gesture is a false alarm here.
    assert not [o for o in obs if o.kind == "gesture"]
    assert describer.params()["sha256"]
