"""Optical-flow words: real Farneback flow on synthetic frames with known motion."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from vidsense.services.perception.motion import flow


def _texture(h: int = 90, w: int = 160, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, size=(h // 4, w // 4)).astype(np.float32)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def _shift(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return np.roll(np.roll(img, dy, axis=0), dx, axis=1)


def test_scene_moving_left_means_camera_panning_right() -> None:
    a = _texture()
    pairs = [flow.pair_motion(_shift(a, -2 * i, 0), _shift(a, -2 * (i + 1), 0), t=i * 0.2, dt=0.2) for i in range(4)]
    assert all(p.pan < -flow.PAN for p in pairs)
    assert flow.camera_words(pairs) == "camera panning right"


def test_still_frames_are_a_static_camera_with_nothing_moving() -> None:
    a = _texture()
    pairs = [flow.pair_motion(a, a, t=0.1 * i, dt=0.2) for i in range(3)]
    assert flow.camera_words(pairs) == "camera static"
    assert flow.object_words(pairs) == ""


def test_square_moving_right_on_a_still_background() -> None:
    bg = _texture(seed=1)
    square = _texture(40, 40, seed=2)
    frames = []
    for i in range(5):
        f = bg.copy()
        f[45:85, 10 + 3 * i : 50 + 3 * i] = square
        frames.append(f)
    pairs = [flow.pair_motion(frames[i], frames[i + 1], t=0.2 * i, dt=0.2) for i in range(4)]
    assert flow.camera_words(pairs) == "camera static"
    words = flow.object_words(pairs)
    assert words.startswith("moving part in the lower left") and words.endswith("moving right")


def test_zoom_in() -> None:
    import cv2

    a = _texture(seed=3)
    # Scale about the centre: crop each enlarged frame around its middle.
    frames = [cv2.getRectSubPix(cv2.resize(a, None, fx=1 + 0.03 * i, fy=1 + 0.03 * i), (a.shape[1], a.shape[0]), ((a.shape[1] * (1 + 0.03 * i)) / 2, (a.shape[0] * (1 + 0.03 * i)) / 2)) for i in range(4)]
    pairs = [flow.pair_motion(frames[i], frames[i + 1], t=0.2 * i, dt=0.2) for i in range(3)]
    assert "zooming in" in flow.camera_words(pairs)


def test_shaking_camera() -> None:
    a = _texture(seed=4)
    offsets = [(0, 0), (3, -2), (-2, 3), (3, 1), (-3, -2), (2, 3)]
    frames = [_shift(a, dx, dy) for dx, dy in offsets]
    pairs = [flow.pair_motion(frames[i], frames[i + 1], t=0.1 * i, dt=0.1) for i in range(5)]
    assert "shaking" in flow.camera_words(pairs)


def test_a_cut_is_reported_not_measured() -> None:
    a = _texture(seed=5)
    b = (a // 3).astype(np.uint8)  # a much darker, different shot
    pair = flow.pair_motion(a, b, t=0.0, dt=0.1)
    assert pair.cut
    assert "cut to a new shot" in flow.window_words([pair, flow.pair_motion(a, a, 0.1, 0.1)])


@pytest.mark.slow
def test_flow_describer_on_the_example_clip() -> None:
    from vidsense.services.media.video import Media
    from vidsense.services.timeline import make_windows

    with resources.as_file(resources.files("vidsense").joinpath("examples/bikes.mp4")) as path:
        media = Media.open(path)
        windows = make_windows(media.info.duration_s)
        found = flow.FlowDescriber().describe(media, windows)
    obs = found.observations
    assert found.notes == ()
    assert {o.window for o in obs} == {w.index for w in windows}
    assert all(o.kind == "motion" and o.modality == "sight" and o.text.startswith("camera ") for o in obs)
