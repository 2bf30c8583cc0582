"""Tests of the embedded visual tagger (COCO detector + ImageNet classifier)."""

from __future__ import annotations

from importlib import resources

import pytest
from visual_fixtures import write_audio_only

from vidsense.services.media.video import Media
from vidsense.services.perception import PerceptionConfig, create
from vidsense.services.perception.visual_tags import VisualTagger, VisualTagParams, coco_labels
from vidsense.services.settings import load_settings
from vidsense.services.timeline import make_windows, render_window


def bikes_path():
    return resources.files("vidsense").joinpath("examples/bikes.mp4")


def test_coco_labels_keep_category_ids():
    labels = coco_labels()
    assert len(labels) == 80
    assert labels[1] == "person" and labels[2] == "bicycle" and labels[47] == "cup" and labels[90] == "toothbrush"
    assert 12 not in labels  # an id COCO never used


@pytest.fixture(scope="module")
def tagger():
    # Two frames a window (the full profile's; the embedded profile reads one): the recorded
    # scores below were taken so.
    return create("visual-tags", PerceptionConfig.from_settings(load_settings(device="cpu", frames_per_window=2)))


@pytest.mark.slow
def test_bikes_shows_a_person_and_a_bicycle(tagger):
    with resources.as_file(bikes_path()) as path:
        media = Media.open(path)
        windows = make_windows(media.info.duration_s, 2.0)
        obs = tagger.describe(media, windows).observations
    objects = {o.text.split(" x")[0] for o in obs if o.kind == "objects"}
    assert {"person", "bicycle"} <= objects
    assert all(o.modality == "sight" and o.source_model == "visual-tags" for o in obs)
    assert all(o.kind in ("objects", "scene") for o in obs)
    # Recorded detector and classifier scores (OpenCV 4.14 and 5.0 give the same): a wrong channel
    # order, input size or output scaling moves them.
    scores = {(o.window, o.text): o.score for o in obs}
    recorded = {(2, "person"): 0.947, (4, "bicycle"): 0.78, (3, "bicycle"): 0.704, (1, "cab"): 0.318}
    assert {k: round(scores.get(k, 0.0), 2) for k in recorded} == {k: round(v, 2) for k, v in recorded.items()}
    assert all(windows[o.window].start_s == o.start_s for o in obs)
    line = render_window(windows[3], [o for o in obs if o.window == 3])
    assert line.startswith("[6-8 s] objects: ") and "bicycle" in line


@pytest.mark.slow
def test_thresholds_limit_the_tags():
    config = PerceptionConfig.from_settings(load_settings(frames_per_window=1, device="cpu"))
    strict = VisualTagger(config.env, VisualTagParams(max_objects=1, min_scene_score=1.01), frames_per_window=config.frames_per_window)
    with resources.as_file(bikes_path()) as path:
        media = Media.open(path)
        obs = strict.describe(media, make_windows(media.info.duration_s, 2.0)).observations
    assert not [o for o in obs if o.kind == "scene"]
    per_window = [sum(o.window == w for o in obs) for w in range(5)]
    assert max(per_window) == 1
    assert strict.params()["max_objects"] == 1 and strict.params()["frames_per_window"] == 1
    assert len(strict.params()["detector_sha256"]) == 64


@pytest.mark.slow
def test_audio_only_media_gets_no_visual_tags(tagger, tmp_path):
    media = Media.open(write_audio_only(tmp_path / "tone.wav"))
    assert tagger.describe(media, make_windows(media.info.duration_s, 2.0)).observations == ()


@pytest.mark.slow
def test_a_run_answered_from_the_cache_never_loads_the_networks(tmp_path):
    from dataclasses import replace

    from vidsense.services.perception.cache import PerceptionCache
    from vidsense.services.perception.perceiver import Perceiver

    config = replace(PerceptionConfig.from_settings(load_settings(device="cpu")), models=("visual-tags", "ocr"), cache=True)
    with resources.as_file(bikes_path()) as video:
        first = Perceiver(config, cache=PerceptionCache.for_home(tmp_path)).describe(video)
        # A new process's Perceiver over the same cache: the answer comes back, no network loads.
        again = Perceiver(config, cache=PerceptionCache.for_home(tmp_path))
        cached = again.describe(video)
    assert cached.observations == first.observations and cached.models == ("visual-tags", "ocr")
    assert again.model("visual-tags")._nets is None and again.model("ocr")._reader is None
    # Loading up front (a server, a batch) loads them, so a model that cannot load says so at start.
    assert again.load() == {}
    assert again.model("visual-tags")._nets is not None and again.model("ocr")._reader is not None
