"""`vidsense classify --engine ray`: batches on Ray actors, against a local Ray instance this module starts."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from batch_fixtures import LABELS, batch_folder, run_cli
from media_fixtures import write_video

from vidsense import BatchError, Pipeline, RayEngine, load_labels, load_settings
from vidsense.services import errors as vidsense_errors


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, address="local", log_to_driver=False)
    yield ray
    ray.shutdown()


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_engine_names_and_a_missing_ray_are_one_line_errors(capsys, tmp_path, monkeypatch):
    videos = [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]
    code, _, err = run_cli(capsys, "classify", *videos, "--labels", LABELS, "--engine", "spark")
    assert code == 2 and err.strip() == "error: --engine: expected local or ray, got 'spark'"
    monkeypatch.setitem(sys.modules, "ray", None)  # what importing an absent package finds
    code, _, err = run_cli(capsys, "classify", *videos, "--labels", LABELS, "--engine", "ray")
    assert code == 2 and err.strip() == "error: the ray engine needs the ray extra: pip install 'vidsense[ray]'"


@pytest.mark.slow
def test_ray_batch_writes_every_row_and_resumes(capsys, tmp_path, cheap, example_video, ray_local):
    batch_folder(tmp_path / "videos", example_video)
    out = tmp_path / "results.jsonl"
    args = ("classify", str(tmp_path / "videos"), "--labels", LABELS, "--reasoner", "embedding", "--output", str(out), "--engine", "ray", "--workers", "2")
    code, stdout, err = run_cli(capsys, *args)
    assert code == 1, err
    assert "summary: done 2, failed 2, skipped 0" in err and stdout == ""
    by_name = {Path(r["video"]).name: r for r in rows(out)}
    assert sorted(by_name) == ["bikes.mp4", "corrupt.mp4", "notes.mp4", "square.mp4"]
    for name in ("bikes.mp4", "square.mp4"):
        assert by_name[name]["label"] in LABELS.split(",") and len(by_name[name]["sha256"]) == 64
    # A broken file is an ordinary error row from a live actor, not a worker death.
    for name in ("corrupt.mp4", "notes.mp4"):
        r = by_name[name]
        assert "label" not in r and name in r["error"] and "worker died" not in r["error"] and r["kind"] in ("input", "processing")

    code, _, err = run_cli(capsys, *args, "--resume")
    assert code == 1 and "summary: done 0, failed 2, skipped 2" in err
    assert len(rows(out)) == 6


@pytest.mark.slow
def test_a_dead_actor_is_replaced_and_its_video_tried_once_more(tmp_path, cheap, ray_local):
    once = write_video(tmp_path / "once.mp4", seconds=2.0)
    doomed = write_video(tmp_path / "doomed.mp4", seconds=1.0)
    died = tmp_path / "died-once"

    settings = load_settings()

    # Test-only: a Pipeline whose process exits on chosen videos, as a killed worker would
    # (built inside the actor; cloudpickle sends this factory by value).
    def dying_pipeline():
        class Dying(Pipeline):
            def classify(self, video, *args, **kwargs):
                name = Path(video).name
                if name == "once.mp4" and not died.exists():
                    died.touch()
                    os._exit(1)
                if name == "doomed.mp4":
                    os._exit(1)
                return super().classify(video, *args, **kwargs)

        return Dying(settings=settings)

    items = list(RayEngine().classify_many(dying_pipeline, [once, doomed], load_labels(LABELS), reasoner="embedding", workers=2, ordered=True))
    assert [Path(i.video).name for i in items] == ["once.mp4", "doomed.mp4"]
    assert died.exists() and not isinstance(items[0], BatchError) and items[0].label in LABELS.split(",")
    assert isinstance(items[1], BatchError) and items[1].kind == "processing"
    assert items[1].error == f"{doomed}: worker died while classifying it (2 tries)" and len(items[1].sha256) == 64


@pytest.mark.slow
def test_a_pipeline_that_cannot_be_built_is_each_videos_error_with_its_cause(tmp_path, cheap, ray_local):
    clip = write_video(tmp_path / "clip.mp4", seconds=1.0)

    def unbuildable():
        raise vidsense_errors.InputError("model 'qwen-missing' is not installed on this node")

    (item,) = list(RayEngine().classify_many(unbuildable, [clip], load_labels(LABELS), reasoner="embedding", workers=1))
    assert isinstance(item, BatchError) and item.kind == "input"
    assert "qwen-missing" in item.error and "worker died" not in item.error


def test_a_pipelines_own_factory_is_itself_here_and_its_settings_elsewhere():
    import pickle

    from vidsense.engines import SharedPipeline

    pipe = Pipeline(settings=load_settings(window_s=3.0))
    shared = SharedPipeline(pipe)
    assert shared() is pipe
    # What an actor receives: a factory that builds a new Pipeline from the same settings.
    remote = pickle.loads(pickle.dumps(shared))
    built = remote()
    assert isinstance(built, Pipeline) and built is not pipe and built.settings == pipe.settings and built.settings.window_s == 3.0
