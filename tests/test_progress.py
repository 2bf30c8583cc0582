"""Progress: plain callbacks in the rooms, one rich bar on stderr in the CLI, nothing when quiet or redirected."""

from __future__ import annotations

import json

import pytest
from batch_fixtures import run_cli

from vidsense.app import bars as app_progress
from vidsense.services.progress import counted


def test_counted_reports_rising_counts_ending_at_the_total():
    seen: list[tuple[int, int]] = []
    assert list(counted(["a", "b", "c"], lambda done, total: seen.append((done, total)))) == ["a", "b", "c"]
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert list(counted([], seen.append)) == [] and len(seen) == 3
    assert list(counted("xy", None)) == ["x", "y"]


def test_the_bar_is_off_when_quiet_or_not_a_terminal_and_forced_on_by_the_variable(monkeypatch):
    monkeypatch.delenv(app_progress.ENV, raising=False)
    assert app_progress.console() is None  # pytest's stderr is not a terminal
    monkeypatch.setenv(app_progress.ENV, "1")
    assert app_progress.console().is_terminal and app_progress.console(quiet=True) is None
    monkeypatch.setenv(app_progress.ENV, "0")
    assert app_progress.console() is None


def test_a_forced_bar_draws_done_of_total_on_stderr_only(monkeypatch, capsys):
    monkeypatch.setenv(app_progress.ENV, "1")
    with app_progress.bar("rows", 3) as rows:
        for done in counted(range(3), rows.counts):
            print(json.dumps({"row": done}))
    out, err = capsys.readouterr()
    assert out.splitlines() == ['{"row": 0}', '{"row": 1}', '{"row": 2}']
    assert "3/3" in err and "rows" in err


def _missing(tmp_path):
    # Videos that fail at once: the batch (rows, bar, summary) runs without loading a model.
    return [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]


@pytest.mark.parametrize("quiet", [True, False])
def test_a_quiet_or_redirected_batch_writes_only_rows_and_the_summary(monkeypatch, capsys, tmp_path, quiet):
    monkeypatch.delenv(app_progress.ENV, raising=False)
    code, out, err = run_cli(capsys, "classify", *_missing(tmp_path), "--labels", "a,b", "--reasoner", "embedding", "--format", "json", *(["--quiet"] if quiet else []))
    assert code == 1
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["input", "input"]
    # Exactly one line on stderr, the summary: no bar, no per-video chatter.
    (line,) = err.splitlines()
    assert line.startswith("summary: done 0, failed 2, skipped 0 in ")


def test_a_forced_batch_bar_counts_videos_and_failures_and_leaves_stdout_alone(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(app_progress.ENV, raising=False)
    _, quiet_out, _ = run_cli(capsys, "classify", *_missing(tmp_path), "--labels", "a,b", "--reasoner", "embedding", "--format", "json")
    monkeypatch.setenv(app_progress.ENV, "1")
    code, out, err = run_cli(capsys, "classify", *_missing(tmp_path), "--labels", "a,b", "--reasoner", "embedding", "--format", "json")
    assert code == 1 and out == quiet_out
    assert "2/2" in err and "failed 2" in err and "summary: done 0, failed 2" in err


class _Describer:
    """A language model that answers every numbered batch with one usable sentence per class."""

    def generate(self, messages, max_tokens=0, **kw):
        user = messages[-1]["content"]
        names = [line.split(". ", 1)[1] for line in user.split("\n\n", 1)[0].splitlines()[1:]]
        return "\n".join(f"{i}. A person is seen {name} outdoors while a crowd watches and cheers." for i, name in enumerate(names, 1))


def test_the_generators_report_once_per_label():
    from vidsense.agents.describe_labels import generate_descriptions
    from vidsense.agents.labels import load_labels
    from vidsense.concepts.generate import generate_bank

    labels = ["riding a bike", "swimming", "playing guitar"]
    seen: list[tuple[int, int]] = []
    out = generate_descriptions(_Describer(), load_labels(labels), existing={"swimming": "A swimmer crosses a pool, splashing loudly as the crowd cheers."}, batch=1, progress=lambda *c: seen.append(c))
    assert set(out) == set(labels) and seen == [(0, 2), (1, 2), (2, 2)]  # the existing one is not described again
    seen.clear()
    generate_bank(labels, None, lambda prompt: "- object: bicycle", progress=lambda *c: seen.append(c))
    assert seen == [(1, 3), (2, 3), (3, 3)]


class _WordsEncoder:
    """A fixed random unit vector per text (a fake at the boundary: the review of new descriptions only compares them)."""

    name = "words"

    def encode(self, texts):
        import hashlib

        import numpy as np

        rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")).normal(size=16) for t in texts]
        return np.array([r / np.linalg.norm(r) for r in rows], dtype=np.float32)


def test_the_llm_route_describes_a_users_set_once_before_its_first_video_counting_labels(tmp_path):
    from vidsense import Pipeline
    from vidsense.agents.describe_labels import cache_path
    from vidsense.agents.labels import load_labels
    from vidsense.agents.reasoner import Reasoner, ReasonerConfig

    calls: list[int] = []

    class Describer(_Describer):
        def generate(self, messages, max_tokens=0, **kw):
            calls.append(1)
            return super().generate(messages, max_tokens, **kw)

    pipe = Pipeline(home=str(tmp_path))
    pipe.reasoner = Reasoner(ReasonerConfig.from_settings(pipe.settings), pipe.env, llm=Describer(), encoder=_WordsEncoder())
    labels = ["riding a bike", "swimming", "playing guitar"]
    seen: list[tuple[int, int]] = []
    # The routes that read a user's set by its names need nothing first.
    for route in ("cascade", "fused", "embedding"):
        assert pipe.prepare(labels, reasoner=route, progress=lambda *c: seen.append(c)).labels == tuple(labels)
    assert seen == [] and calls == [] and not cache_path(tmp_path, load_labels(labels)).exists()
    # The llm route has every label described, counting each, and keeps them for the next run.
    pipe.prepare(labels, reasoner="llm", progress=lambda *c: seen.append(c))
    assert seen[0] == (0, 3) and seen[-1] == (3, 3) and [d for d, _ in seen] == sorted(d for d, _ in seen) and calls
    assert set(json.loads(cache_path(tmp_path, load_labels(labels)).read_text())) == set(labels)
    seen.clear(), calls.clear()
    pipe.prepare(labels, reasoner="llm", progress=lambda *c: seen.append(c))
    assert seen == [] and calls == []
    # A bundled set ships its descriptions: nothing to write.
    pipe.prepare("ucf101", reasoner="llm", progress=lambda *c: seen.append(c))
    assert seen == [] and calls == []


def test_eval_and_the_variant_comparison_count_rows(tmp_path):
    from types import SimpleNamespace

    from vidsense.agents.evaluate import compare_variants, evaluate

    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.mp4,x\nb.mp4,y\n")

    def describe(video, mods):
        raise FileNotFoundError(video)  # every row an error: no model runs

    seen: list[tuple[int, int]] = []
    assert evaluate(manifest, describe, None, "x,y", progress=lambda *c: seen.append(c)).overall.errors == 2
    assert seen == [(1, 2), (2, 2)]
    seen.clear()
    method = SimpleNamespace(classify=None)
    room = SimpleNamespace(config=SimpleNamespace(shortlist=2), method=lambda name: method, llm_method=lambda **kw: method)
    compare_variants(manifest, describe, room, "x,y", variants={"raw": (True, 0.0, 0.0)}, progress=lambda *c: seen.append(c))
    assert seen == [(i, 6) for i in range(1, 7)]  # embedding, raw and grammar passes, 2 rows each


def test_the_sdk_stages_show_as_the_stage_and_percent_done(monkeypatch, capsys):
    monkeypatch.setenv(app_progress.ENV, "1")
    with app_progress.bar("clip.mp4") as bar:
        for stage, fraction in (("perceiving", 0.4), ("reasoning", 0.8), ("done", 1.0)):
            bar.stages(stage, fraction)
    err = capsys.readouterr().err
    assert "100/100" in err and "done" in err


def test_models_install_counts_models_on_stderr_and_lists_them_on_stdout(monkeypatch, capsys):
    from vidsense import store

    def install_models(names, progress, **kwargs):
        for name in names:
            progress(name, 1 << 20, 2 << 20)  # the bytes of a model's carriers, as they are copied
            yield name, f"/models/{name}"

    monkeypatch.setattr(store, "install_models", install_models)
    monkeypatch.setenv(app_progress.ENV, "1")
    code, out, err = run_cli(capsys, "models", "install", "one", "two")
    assert code == 0 and out.splitlines() == ["one: /models/one", "two: /models/two"]
    assert "2/2" in err
    code, _, err = run_cli(capsys, "models", "install", "one", "--quiet")
    assert code == 0 and err == ""


def test_the_maintainer_scripts_line_is_drawn_only_on_a_terminal(monkeypatch):
    import io
    import sys

    from vidsense.services.progress import terminal_line

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert terminal_line("ucf101") is None
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert terminal_line("ucf101", quiet=True) is None
    show = terminal_line("ucf101")
    show(1, 2)
    show(2, 2)
    assert sys.stderr.getvalue() == "\rucf101: 1/2\rucf101: 2/2\n"
