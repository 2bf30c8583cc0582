"""A real video through real bundled models to a label: the product's main path."""

import json
import subprocess
import sys

import pytest

import vidsense

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline():
    return vidsense.Pipeline()


def test_sdk_classifies_the_example_clip(pipeline, example_video):
    ucf = vidsense.load_labels("ucf101")
    result = pipeline.classify(example_video, labels="ucf101", top_k=5)
    assert result.label in ucf.labels
    assert len(result.top_k) == 5
    scores = [s.score for s in result.top_k]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0 + 1e-6
    assert result.top_k[0].label == result.label
    # The timeline the LLM read came from real models and says what is in the clip.
    text = result.timeline.render()
    assert "bicycle" in text and "person" in text
    assert any("Kinetics-400" in n for n in result.notes)
    d = result.to_dict()
    assert set(d) >= {"video", "label", "top_k", "labelset", "timings"}
    assert d["top_k"][0] == {"label": result.label, "score": result.top_k[0].score}
    # A cycling clip: cycling must be among the LLM's candidates and rank well.
    ranked = [c.label for c in result.prediction.candidates]
    assert "Biking" in ranked[:10]


def test_custom_labels_answer_is_always_a_member(pipeline, example_video):
    labels = ["riding a bicycle", "playing the piano", "swimming in a pool", "baking bread"]
    result = pipeline.classify(example_video, labels=labels)
    assert result.label in labels
    assert result.label == "riding a bicycle"


def test_cli_json_output(example_video, vidsense_home):
    proc = subprocess.run(
        [sys.executable, "-m", "vidsense.app.cli", "classify", str(example_video), "--labels", "ucf101", "--top-k", "3", "--format", "json"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["video"] == str(example_video) and row["labelset"] == "ucf101"
    assert len(row["top_k"]) == 3 and row["label"] == row["top_k"][0]["label"]
    assert "total" in row["timings"]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["classify", "missing.mp4", "--labels", "ucf101"], 2, "missing.mp4: no such file"),
        (["classify", "{video}", "--labels", "ucf1001"], 2, "unknown label set 'ucf1001'"),
        (["classify", "{video}", "--labels", " , "], 2, "label list is empty"),
        # A folder is a batch input: one without videos is a bad input (exit 2).
        (["classify", "{tmp}/empty", "--labels", "ucf101"], 2, "directory has no video files"),
        (["classify", "{text}", "--labels", "ucf101"], 1, "not a readable video"),
        (["classify", "{video}", "--labels", "ucf101", "--llm-model", "{text}"], 2, "not a GGUF model file"),
    ],
)
def test_cli_bad_input_one_line_errors(args, code, message, example_video, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 40)
    (tmp_path / "empty").mkdir()
    argv = [a.format(video=example_video, tmp=tmp_path, text=text) for a in args]
    proc = subprocess.run([sys.executable, "-m", "vidsense.app.cli", *argv], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
