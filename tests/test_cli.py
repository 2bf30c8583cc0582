"""The batch CLI: inputs, incremental output, resume, summary and exit codes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_fixtures import CHEAP_ENV, LABELS, batch_folder, run_cli
from media_fixtures import write_video
from typer.testing import CliRunner

from vidsense import load_labels
from vidsense.app import cli


def load_pipeline_answer(video: Path, labels: str, reasoner: str):
    """What the SDK answers for ``video``, every label ranked."""
    from vidsense import Pipeline

    return Pipeline().classify(video, labels, reasoner=reasoner, top_k=len(load_labels(labels)))


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


COMMANDS = [
    ["classify"], ["describe"], ["explain"], ["eval"], ["dashboard"], ["concepts", "fit"], ["fusion", "fit"],
    ["models", "list"], ["models", "install"], ["models", "verify"], ["models", "path"],
    ["config", "show"], ["cache", "stats"], ["cache", "clear"], ["serve"], ["doctor"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_shows_an_example(command):
    res = CliRunner().invoke(cli.app, [*command, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    example = res.output.split("Example:", 1)[1] if "Example:" in res.output else ""
    assert "vidsense " + command[0] in " ".join(example.split()), res.output


def test_batch_input_errors_are_one_line_exit_2(capsys, tmp_path, cheap):
    (tmp_path / "empty").mkdir()
    cases = [
        ([str(tmp_path / "empty")], "directory has no video files"),
        ([str(tmp_path / "*.nothing")], "pattern matches no files"),
        ([str(tmp_path), "--resume"], "--resume: needs --output"),
        ([str(tmp_path), "--output", str(tmp_path / "out.txt")], "expected a .jsonl or .csv file"),
    ]
    for args, message in cases:
        code, out, err = run_cli(capsys, "classify", *args, "--labels", LABELS)
        assert code == 2, (args, err)
        assert message in err and err.count("\n") == 1, err
    existing = tmp_path / "done.jsonl"
    existing.write_text('{"video": "x"}\n')
    code, _, err = run_cli(capsys, "classify", str(tmp_path / "x.mp4"), "--labels", LABELS, "--output", str(existing))
    assert code == 2 and "pass --resume" in err


@pytest.mark.slow
def test_eval_reads_an_excel_manifest_and_rejects_conflicting_modes(capsys, tmp_path, cheap, example_video):
    manifest = tmp_path / "m.csv"
    # Excel's "CSV UTF-8" starts with a byte-order mark; classify, eval and concepts fit read it alike.
    manifest.write_bytes(b"\xef\xbb\xbf" + f"path,label\n{example_video},Biking\n".encode())
    code, _, err = run_cli(capsys, "eval", "--manifest", str(manifest), "--variants", "--ablate")
    assert code == 2 and "--variants and --ablate" in err and err.count("\n") == 1
    code, out, err = run_cli(capsys, "eval", "--manifest", str(manifest), "--labels", "ucf101", "--reasoner", "embedding", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["reasoner"] == "embedding" and report["overall"]["n"] == 1 and report["overall"]["errors"] == 0
    # The row's rank is where Biking stands in what classify answers for the same clip and route.
    (row,) = report["rows"]
    answer = load_pipeline_answer(example_video, "ucf101", "embedding")
    assert row["label"] == "Biking" and row["predicted"] == answer.label
    assert row["rank"] == 1 + [c.label for c in answer.prediction.candidates].index("Biking")
    assert report["overall"]["top1"] == (1.0 if answer.label == "Biking" else 0.0)


def test_single_missing_video_keeps_the_one_line_error(capsys, tmp_path, cheap):
    code, out, err = run_cli(capsys, "classify", str(tmp_path / "missing.mp4"), "--labels", LABELS)
    assert code == 2
    assert err.strip() == f"error: {tmp_path / 'missing.mp4'}: no such file"


@pytest.mark.slow
def test_batch_folder_rows_summary_exit_code_and_resume(capsys, tmp_path, cheap, example_video):
    batch_folder(tmp_path / "videos", example_video)
    out = tmp_path / "results.jsonl"
    code, stdout, err = run_cli(capsys, "classify", str(tmp_path / "videos"), "--labels", LABELS, "--reasoner", "embedding",
                                "--output", str(out), "--workers", "2", "--ordered")
    assert code == 1, err
    assert "summary: done 2, failed 2, skipped 0" in err and "videos/min" in err
    assert stdout == ""
    got = rows(out)
    # --ordered: input order, i.e. the folder scan's sorted order; readme.txt is not a video.
    assert [Path(r["video"]).name for r in got] == ["bikes.mp4", "corrupt.mp4", "notes.mp4", "square.mp4"]
    by_name = {Path(r["video"]).name: r for r in got}
    for name in ("bikes.mp4", "square.mp4"):
        r = by_name[name]
        assert r["label"] in LABELS.split(",") and len(r["top_k"]) == 3 and "error" not in r
        assert len(r["sha256"]) == 64
    for name in ("corrupt.mp4", "notes.mp4"):
        r = by_name[name]
        assert "label" not in r and r["error"] and "\n" not in r["error"] and name in r["error"]
        assert r["kind"] in ("input", "processing")

    # --resume: the new video runs and the two failed ones are retried (they fail again, so exit 1);
    # the rows already there stay as they were.
    write_video(tmp_path / "videos" / "sub" / "late.mp4", seconds=2.0, fps=12)
    code, _, err = run_cli(capsys, "classify", str(tmp_path / "videos"), "--labels", LABELS, "--reasoner", "embedding",
                           "--output", str(out), "--resume", "--ordered")
    assert code == 1, err
    assert "summary: done 1, failed 2, skipped 2" in err
    again = rows(out)
    assert again[:4] == got and [Path(r["video"]).name for r in again[4:]] == ["corrupt.mp4", "notes.mp4", "late.mp4"]
    assert again[6]["label"] and all(r["error"] for r in again[4:6])

    # A result for another top-k (or label set, or reasoner) is not this run's: everything reruns.
    good = [str(tmp_path / "videos" / "bikes.mp4"), str(tmp_path / "videos" / "sub" / "late.mp4")]
    code, _, err = run_cli(capsys, "classify", *good, "--labels", LABELS, "--reasoner", "embedding", "--top-k", "2", "--output", str(out), "--resume")
    assert "done 2, failed 0, skipped 0" in err
    # The exit code still reports the failures the file holds for videos this run did not retry.
    assert code == 1 and "2 video(s) in it whose latest row failed" in err
    code, _, err = run_cli(capsys, "classify", *good, "--labels", LABELS, "--reasoner", "embedding", "--top-k", "2", "--output", str(out), "--resume")
    assert "done 0, failed 0, skipped 2" in err and code == 1


@pytest.mark.slow
def test_csv_output_glob_and_manifest_inputs(capsys, tmp_path, cheap, example_video):
    batch_folder(tmp_path / "videos", example_video)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nvideos/sub/square.mp4,biking\n")
    out = tmp_path / "results.csv"
    code, _, err = run_cli(capsys, "classify", str(tmp_path / "videos" / "[bn]*.mp4"), str(manifest), "--labels", LABELS,
                           "--reasoner", "embedding", "--output", str(out), "--ordered")
    assert code == 1, err
    assert "summary: done 2, failed 1, skipped 0" in err
    table = list(csv.DictReader(out.open()))
    assert [Path(r["video"]).name for r in table] == ["bikes.mp4", "notes.mp4", "square.mp4"]
    assert table[0]["label"] and json.loads(table[0]["top_k"])[0]["label"] == table[0]["label"] and not table[0]["error"]
    assert table[1]["error"] and not table[1]["label"]


@pytest.mark.slow
def test_a_killed_batch_loses_at_most_the_video_in_flight(capsys, tmp_path, cheap, example_video):
    # Enough videos that the batch is still running when the first row is seen: one 2-s video
    # takes a fraction of a second once the models are loaded, so three could all finish between
    # two looks at the file.
    n = 8
    videos = [write_video(tmp_path / f"v{i}.mp4", seconds=2.0, fps=8 + i) for i in range(n)]
    out = tmp_path / "results.jsonl"
    env = {**os.environ, **CHEAP_ENV}
    proc = subprocess.Popen([sys.executable, "-c", "from vidsense.app.cli import main; main()", "classify", *map(str, videos),
                             "--labels", LABELS, "--reasoner", "embedding", "--output", str(out), "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not (out.exists() and out.read_text().count("\n") >= 1):
            assert proc.poll() is None, "the batch ended before it could be killed"
            time.sleep(0.05)
        proc.kill()
    finally:
        proc.wait()
    written = rows(out)
    assert 1 <= len(written) < n and all(r["label"] for r in written)
    code, _, err = run_cli(capsys, "classify", *map(str, videos), "--labels", LABELS, "--reasoner", "embedding", "--output", str(out), "--resume")
    assert code == 0, err
    assert f"skipped {len(written)}" in err
    final = rows(out)
    assert sorted(Path(r["video"]).name for r in final) == [f"v{i}.mp4" for i in range(n)]


@pytest.mark.slow
def test_batch_through_the_real_llm(capsys, tmp_path, cheap, example_video):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    code, stdout, err = run_cli(capsys, "classify", str(example_video), str(bad), "--labels", "ucf101", "--format", "json", "--ordered", "--reasoner", "llm")
    assert code == 1, err
    first, second = (json.loads(line) for line in stdout.splitlines())
    assert first["reasoner"] == "llm" and first["label"] in {t["label"] for t in first["top_k"]}
    assert first["label"] in load_labels("ucf101").labels and first["labelset"] == "ucf101"
    assert second["video"] == str(bad) and second["error"]
    assert "summary: done 1, failed 1, skipped 0" in err


@pytest.mark.slow
def test_budget_picks_the_fused_route_and_the_output_says_why(capsys, cheap, example_video):
    code, out, err = run_cli(capsys, "classify", str(example_video), "--labels", LABELS, "--budget", "fast", "--format", "json")
    assert code == 0, err
    row = json.loads(out)
    assert row["reasoner"] == "fused" and row["route"] == "fused" and row["route_reason"].startswith("budget fast")
    assert row["evidence"] and {"source", "top", "contribution"} <= set(row["evidence"][0])
    code, out, err = run_cli(capsys, "classify", str(example_video), "--labels", LABELS, "--budget", "whenever")
    assert code == 2 and "setting budget" in err and "expected fast, balanced, best or seconds" in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_non_utf8_file_name_and_markup_in_names_break_nothing(tmp_path, example_video):
    # Bytes that are not UTF-8 in a file name, next to a name full of Rich markup: run as a real
    # process, so stdout and stderr are real streams with their real encodings.
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/clip_\xff\xfe.mp4"))
    odd.write_bytes(example_video.read_bytes())
    marked = write_video(tmp_path / "plain.mp4", seconds=2.0).rename(tmp_path / "[bold]loud[red].mp4")
    out = tmp_path / "results.jsonl"
    env = {**os.environ, **CHEAP_ENV, "PYTHONIOENCODING": "utf-8"}
    cmd = [sys.executable, "-c", "from vidsense.app.cli import main; main()", "classify", str(odd), str(marked), "--labels", LABELS,
           "--reasoner", "embedding", "--output", str(out), "--no-progress", "--ordered"]
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=900)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["video"] for r in got] == [str(odd), str(marked)] and all(r["label"] for r in got)
    assert os.fsencode(got[0]["video"]).endswith(b"clip_\xff\xfe.mp4")  # the original bytes come back
    assert b"summary: done 2, failed 0" in proc.stderr
    # One video, table output: the name is printed as is, markup and all.
    table = subprocess.run(cmd[:5] + [str(marked), "--labels", LABELS, "--reasoner", "embedding"], env=env, capture_output=True, timeout=900)
    assert table.returncode == 0 and b"[bold]loud[red].mp4" in table.stdout
    odd_table = subprocess.run(cmd[:5] + [str(odd), "--labels", LABELS, "--reasoner", "embedding"], env=env, capture_output=True, timeout=900)
    assert odd_table.returncode == 0 and b"clip_\\xff\\xfe.mp4" in odd_table.stdout


@pytest.mark.slow
def test_ctrl_c_keeps_finished_rows_prints_the_summary_and_exits_at_once(tmp_path):
    import signal

    videos = [write_video(tmp_path / f"v{i}.mp4", seconds=30.0, fps=6 + i) for i in range(6)]
    out = tmp_path / "results.jsonl"
    env = {**os.environ, **CHEAP_ENV}
    cmd = [sys.executable, "-c", "from vidsense.app.cli import main; main()", "classify", *map(str, videos), "--labels", LABELS,
           "--reasoner", "embedding", "--output", str(out), "--workers", "2", "--no-progress"]
    # A shell without job control starts background jobs with SIGINT ignored, and a Python started
    # that way never raises KeyboardInterrupt: the child gets the default disposition, as in a terminal.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not (out.exists() and out.read_text().count("\n") >= 1):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        _, stderr = proc.communicate(timeout=120)
        waited = time.monotonic() - t0
    finally:
        proc.kill()
    stderr = stderr.decode()
    # The videos in flight (a 30 s clip each) are abandoned, not waited for.
    assert proc.returncode == 130 and waited < 3.0, (proc.returncode, waited, stderr)
    written = rows(out)
    assert 1 <= len(written) < 6 and all(r["label"] for r in written)
    assert f"summary: done {len(written)}, failed 0" in stderr and "interrupted" in stderr
    code, _, err = run_cli_subprocess(cmd + ["--resume"], env)
    assert code == 0 and f"skipped {len(written)}" in err
    assert sorted(Path(r["video"]).name for r in rows(out)) == [f"v{i}.mp4" for i in range(6)]


def run_cli_subprocess(cmd: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stdout, proc.stderr
