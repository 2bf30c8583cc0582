"""``vidsense serve``: the HTTP API over real HTTP, against uvicorn on a free loopback port.

Most tests never run a model (refusals happen before a job starts, or the job fails
on its input); the ones marked slow classify the bundled clip with the visual tagger.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from batch_fixtures import LABELS, run_cli

import vidsense
from vidsense.app.jobs import Busy, Jobs
from vidsense.app.server import create_app, running
from vidsense.services.perception import ModelCard

TOKEN = "s3cret-token"


class GatedPipeline(vidsense.Pipeline):
    """A real Pipeline whose jobs wait at a gate while a test holds it closed."""

    def __init__(self, **overrides: Any) -> None:
        super().__init__(**overrides)
        self.gate = threading.Event()
        self.gate.set()

    def classify(self, *args: Any, **kwargs: Any) -> vidsense.ClassificationResult:
        assert self.gate.wait(60), "the test never opened the gate"
        return super().classify(*args, **kwargs)


def call(url: str, body: Any = None, *, upload: tuple[str, bytes] | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    """One request: JSON ``body``, or a multipart form of ``body``'s fields plus ``upload`` in field ``file``.

    Returns:
        The status, the decoded JSON (or text) and the response headers.
    """
    headers = dict(headers or {})
    data = None
    if upload is not None:
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in (body or {}).items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{upload[0]}"\r\nContent-Type: video/mp4\r\n\r\n'.encode() + upload[1] + b"\r\n")
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif isinstance(body, bytes):
        data = body
    elif body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status, raw, got = r.status, r.read(), r.headers
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), exc.headers
    try:
        return status, json.loads(raw), got
    except ValueError:
        return status, raw.decode(), got


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 120
    while call(url + "/readyz")[0] != 200:
        assert time.monotonic() < deadline, call(url + "/readyz")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, example_video: Path) -> dict[str, Path]:
    """A root with the example clip, a text file named .mp4 and a label file; a folder outside it with a secret."""
    base = tmp_path_factory.mktemp("serve")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    shutil.copyfile(example_video, root / "bikes.mp4")
    (root / "notes.mp4").write_text("this is a text file, not a video\n")
    (root / "labels.txt").write_text("biking\ncooking\nswimming\n")
    (outside / "secret.mp4").write_bytes(b"not yours")
    (outside / "labels.txt").write_text("secret\n")
    (root / "leak.mp4").symlink_to(outside / "secret.mp4")
    return {"root": root, "outside": outside, "uploads": Path(tempfile.mkdtemp(dir=base))}


@pytest.fixture(scope="module")
def pipe() -> GatedPipeline:
    # Only the visual tagger perceives; nothing loads until a job needs it.
    return GatedPipeline(perception=["visual-tags"], reasoner="fused")


@pytest.fixture(scope="module")
def server(folders: dict[str, Path], pipe: GatedPipeline) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("tempfile.tempdir", str(folders["uploads"]))  # the server's private upload folder lands here
        app = create_app(lambda: pipe, [folders["root"]], None, workers=1, queue_size=1, sync_wait_s=60, max_upload_mb=1, grace_s=1)
    with running(app) as url:
        wait_ready(url)
        yield url


def held_uploads(folders: dict[str, Path]) -> list[Path]:
    return [p for p in folders["uploads"].rglob("*") if p.is_file()]


def test_health_readiness_label_sets_and_docs(server):
    assert call(server + "/healthz")[:2] == (200, {"status": "ok"})
    status, ready, _ = call(server + "/readyz")
    assert status == 200 and ready["status"] == "ready" and ready["models"] == "ready"
    status, sets, _ = call(server + "/v1/labelsets")
    assert status == 200 and {"name": "ucf101", "size": 101} in sets["labelsets"]
    status, spec, _ = call(server + "/openapi.json")
    body = spec["paths"]["/v1/classify"]["post"]["requestBody"]["content"]
    assert status == 200 and {"application/json", "multipart/form-data"} <= set(body)
    assert "/v1/jobs/{job_id}/events" in spec["paths"]
    assert call(server + "/docs")[0] == 200


def test_paths_and_label_files_outside_the_roots_are_403(server, folders):
    root, outside = folders["root"], folders["outside"]
    for path in ("/etc/passwd", "../outside/secret.mp4", str(outside / "secret.mp4"), "leak.mp4"):
        status, body, _ = call(server + "/v1/classify", {"path": path, "labels": LABELS})
        assert status == 403, (path, body)
        assert body["detail"].startswith(f"{path}: outside the allowed folder {root}") and "\n" not in body["detail"]
    status, body, _ = call(server + "/v1/classify", {"path": "bikes.mp4", "labels": str(outside / "labels.txt")})
    assert status == 403 and "outside the allowed folder" in body["detail"]


def test_bad_requests_are_4xx_with_the_clis_one_line_message(server, folders, capsys):
    missing = folders["root"] / "missing.mp4"
    status, body, _ = call(server + "/v1/classify", {"path": "missing.mp4", "labels": LABELS})
    code, _, err = run_cli(capsys, "classify", str(missing), "--labels", LABELS)
    assert status == 400 and code == 2 and err.strip() == f"error: {body['detail']}"
    status, body, _ = call(server + "/v1/classify", {"path": "bikes.mp4", "labels": "nosuchset"})
    code, _, err = run_cli(capsys, "classify", str(missing), "--labels", "nosuchset")
    assert status == 400 and err.strip() == f"error: {body['detail']}" and body["detail"].startswith("unknown label set 'nosuchset'")
    cases = [
        ({"path": "bikes.mp4"}, "labels: required"),
        ({"path": "bikes.mp4", "labels": LABELS, "top_k": 0}, "top_k: Input should be greater than or equal to 1"),
        ({"path": "bikes.mp4", "labels": LABELS, "reasoner": "oracle"}, "unknown reasoner 'oracle'; known: "),
        ({"path": "bikes.mp4", "labels": LABELS, "colour": "blue"}, "colour: Extra inputs are not permitted"),
        ({"labels": LABELS}, "path: name a video file"),
        ([1, 2], "request body: expected a JSON object"),
    ]
    for request, message in cases:
        status, body, _ = call(server + "/v1/classify", request)
        assert status == 400 and body["detail"].startswith(message) and "\n" not in body["detail"], (request, body)
    status, body, _ = call(server + "/v1/classify", b"bikes.mp4", headers={"Content-Type": "text/plain"})
    assert status == 415 and body["detail"].startswith("content type text/plain")


def test_a_file_that_is_not_a_video_is_422_with_the_clis_message(server, folders, capsys):
    notes = folders["root"] / "notes.mp4"
    status, body, _ = call(server + "/v1/classify", {"path": "notes.mp4", "labels": LABELS})
    code, _, err = run_cli(capsys, "classify", str(notes), "--labels", LABELS, "--reasoner", "fused")
    assert status == 422 and code == 1 and err.strip() == f"error: {body['detail']}", (body, err)
    status, body, _ = call(server + "/v1/classify", {"labels": LABELS}, upload=("notes.mp4", notes.read_bytes()))
    assert status == 422 and body["detail"].endswith("notes.mp4: not a readable video or audio file") and "\n" not in body["detail"], body
    assert held_uploads(folders) == []  # the upload went with its job


def test_uploads_over_the_limit_are_413_and_other_types_415(server, folders):
    # 1.5 MB passes the early Content-Length check (1 MB plus the form's slack) and fails on the file's own size.
    status, body, _ = call(server + "/v1/classify", {"labels": LABELS}, upload=("big.mp4", b"\0" * 1_500_000))
    assert status == 413 and "over the upload limit of 1 MB (vidsense serve --max-upload-mb)" in body["detail"], body
    # 3 MB is refused from its Content-Length alone, before a byte of the body is read. Only the
    # headers are sent: a client still sending a body the server will never read races its close.
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/v1/classify")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", "3000000")
    conn.endheaders()
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 413 and "2.9 MB is over the upload limit of 1 MB (vidsense serve --max-upload-mb)" in body["detail"], body
    status, body, _ = call(server + "/v1/classify", {"labels": LABELS}, upload=("notes.txt", b"text"))
    assert status == 415 and body["detail"].startswith("notes.txt: not a video file")
    assert held_uploads(folders) == []


def test_a_token_guards_the_api_but_not_the_health_checks(folders, pipe):
    app = create_app(lambda: pipe, [folders["root"]], TOKEN, sync_wait_s=1)
    with running(app) as url:
        assert call(url + "/healthz")[0] == 200
        wait_ready(url)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
            status, body, got = call(url + "/v1/labelsets", headers=headers)
            assert status == 401 and got["WWW-Authenticate"] == "Bearer", headers
        status, body, _ = call(url + "/v1/classify", {"path": "/etc/passwd", "labels": LABELS})
        assert status == 401  # refused before the path is even looked at
        assert call(url + "/v1/labelsets", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_a_full_queue_is_429_and_jobs_report_their_failure(server, pipe):
    pipe.gate.clear()
    try:
        first = call(server + "/v1/classify?wait=0", {"path": "missing1.mp4", "labels": LABELS})
        deadline = time.monotonic() + 10
        while call(server + first[1]["job"])[1]["status"] != "running":  # the worker holds it at the gate
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = call(server + "/v1/classify?wait=0", {"path": "missing2.mp4", "labels": LABELS})
        third = call(server + "/v1/classify?wait=0", {"path": "missing3.mp4", "labels": LABELS})
    finally:
        pipe.gate.set()
    assert first[0] == 202 and second[0] == 202 and second[1]["status"] == "queued"
    assert third[0] == 429 and "busy" in third[1]["detail"] and third[2]["Retry-After"]
    for _, accepted, headers in (first, second):
        assert headers["Location"] == accepted["job"]
        deadline = time.monotonic() + 30
        while (job := call(server + accepted["job"])[1])["status"] != "failed":
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["code"] == 400 and job["error"].endswith(": no such file")
    assert call(server + "/v1/jobs/nosuchjob")[0] == 404


def test_a_shutdown_lets_running_jobs_finish_within_the_grace_and_fails_the_rest():
    gate, cleaned = threading.Event(), []

    def slow(_pipe, progress):
        progress("perceiving", 0.5)
        gate.wait(5)
        return {"label": "x"}

    jobs = Jobs(lambda: None, workers=1, queue_size=2)
    running_job = jobs.submit("classify", slow, lambda: cleaned.append("running"))
    queued_job = jobs.submit("classify", slow, lambda: cleaned.append("queued"))
    while running_job.status != "running":
        time.sleep(0.01)
    assert jobs.close(grace_s=0.2) is False  # the running job outlives the grace: the models must stay open
    assert (running_job.status, running_job.error, running_job.code) == ("failed", "server shut down", 503)
    assert queued_job.status == "failed" and queued_job.events[-1]["stage"] == "failed"
    assert [e["stage"] for e in running_job.events] == ["queued", "perceiving", "failed"]
    assert sorted(set(cleaned)) == ["queued", "running"]
    with pytest.raises(Busy, match="shutting down"):
        jobs.submit("classify", slow, lambda: None)
    gate.set()
    time.sleep(0.1)
    assert running_job.status == "failed"  # finishing late changes nothing that was recorded


@pytest.mark.slow
def test_classify_a_path_inside_the_root_answers_the_clis_json(server, folders, capsys, cheap):
    status, served, _ = call(server + "/v1/classify", {"path": "bikes.mp4", "labels": LABELS, "top_k": 2})
    assert status == 200, served
    code, out, err = run_cli(capsys, "classify", str(folders["root"] / "bikes.mp4"), "--labels", LABELS, "--top-k", "2", "--reasoner", "fused", "--format", "json")
    assert code == 0, err
    cli_json = json.loads(out)
    assert set(served) == set(cli_json) and served["video"] == cli_json["video"] == str(folders["root"] / "bikes.mp4")
    assert served["top_k"] == cli_json["top_k"] and served["label"] == "biking" and len(served["top_k"]) == 2
    status, from_file, _ = call(server + "/v1/classify", {"path": "bikes.mp4", "labels": "labels.txt"})  # a label file inside the root
    assert status == 200 and from_file["labelset"] == "labels" and from_file["label"] == "biking"


@pytest.mark.slow
def test_an_uploaded_video_is_classified_and_deleted(server, folders):
    data = (folders["root"] / "bikes.mp4").read_bytes()
    status, body, _ = call(server + "/v1/classify", {"labels": LABELS, "top_k": "2", "reasoner": "fused"}, upload=("my clip.mp4", data))
    assert status == 200, body
    assert body["label"] == "biking" and len(body["top_k"]) == 2 and body["video"].endswith("/my clip.mp4")
    assert held_uploads(folders) == []


@pytest.mark.slow
def test_a_long_job_answers_202_then_streams_its_stages_and_its_result(server):
    status, accepted, headers = call(server + "/v1/classify?wait=0", {"path": "bikes.mp4", "labels": LABELS})
    assert status == 202 and accepted["status"] in ("queued", "running")
    with urllib.request.urlopen(server + accepted["events"], timeout=120) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        stream = r.read().decode()
    events = [json.loads(line[len("data: "):]) for line in stream.splitlines() if line.startswith("data: ")]
    stages = [e["stage"] for e in events]
    assert stages[0] == "queued" and {"perceiving", "reasoning"} <= set(stages) and stages[-1] == "done", stages
    assert [e["fraction"] for e in events] == sorted(e["fraction"] for e in events)
    status, job, _ = call(server + headers["Location"])
    assert status == 200 and job["status"] == "done" and job["result"]["label"] == "biking" and job["result"]["video"].endswith("bikes.mp4")
    # The stream resumes after the last event a client saw.
    with urllib.request.urlopen(urllib.request.Request(server + accepted["events"], headers={"Last-Event-ID": str(len(events) - 2)}), timeout=30) as r:
        assert [json.loads(line[6:])["stage"] for line in r.read().decode().splitlines() if line.startswith("data: ")] == ["done"]
    status, timeline, _ = call(server + "/v1/describe", {"path": "bikes.mp4"})  # describe answers the timeline's JSON
    assert status == 200 and timeline["models"] == ["visual-tags"] and timeline["video"]["path"].endswith("bikes.mp4") and timeline["windows"]


class _Unloadable:
    card = ModelCard("unloadable", "1", ("sight",))

    @classmethod
    def from_config(cls, config):
        raise AttributeError("module 'cv2.dnn' has no attribute 'readNetFromTensorflow'")


@pytest.mark.slow
def test_a_model_that_cannot_load_leaves_the_server_degraded_and_every_answer_warned(folders, monkeypatch, cheap):
    from vidsense.services import perception

    monkeypatch.setitem(perception.PERCEPTION_MODELS, "unloadable", f"{__name__}:_Unloadable")
    degraded = vidsense.Pipeline(perception=["visual-tags", "unloadable"], reasoner="fused")

    def loaded() -> vidsense.Pipeline:
        degraded.load(reasoner="fused")  # what `vidsense serve` does at startup
        return degraded

    app = create_app(loaded, [folders["root"]], None, sync_wait_s=60)
    with running(app) as url:
        wait_ready(url)
        status, ready, _ = call(url + "/readyz")
        assert status == 200 and ready["status"] == "degraded"
        assert ready["failed_models"] == [{"model": "unloadable", "cause": "cannot load (AttributeError: module 'cv2.dnn' has no attribute 'readNetFromTensorflow')", "fix": "vidsense doctor"}]
        status, answer, _ = call(url + "/v1/classify", {"path": "bikes.mp4", "labels": LABELS})
        assert status == 200, answer
        (warning,) = [w for w in answer["warnings"] if "unloadable" in w]
        assert warning.startswith("model unloadable failed: cannot load (AttributeError") and "vidsense doctor" in warning
        assert answer["label"] == "biking"  # the models that loaded still answer
