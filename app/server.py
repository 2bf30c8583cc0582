"""``vidsense serve``: the SDK over HTTP, for programs that are not written in Python.

One :class:`~vidsense.Pipeline` per process, so the models load once; every
request becomes a job run by a fixed number of worker threads, behind a bounded
queue (full: 429). A job that finishes within the request's wait answers with
the JSON the CLI prints with ``--format json``; a longer one answers 202 with
its id, and ``GET /v1/jobs/{id}`` (the result) and ``GET /v1/jobs/{id}/events``
(server-sent progress) follow it. Requests name videos inside the server's
roots (anything else: 403) or upload them; an upload is a private copy deleted
when its job ends. Bad input gets a 4xx whose ``detail`` is the CLI's one-line
message.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import socket
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Sequence

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData

import vidsense
from vidsense.app.jobs import HISTORY, Busy, Job, Jobs, Models, one_line, status_for
from vidsense.app.roots import OutsideRoot, UploadFolder, inside_root, upload_problem
from vidsense.pipeline import Progress
from vidsense.verbs import VERBS

log = logging.getLogger(__name__)

HINT = "vidsense serve --root"
UPLOAD_HINT = "vidsense serve --max-upload-mb"
JSON_LIMIT = 1 << 20  # a JSON request names a file; a megabyte is already generous
FORM_SLACK = 1 << 20  # multipart framing and the form's small fields, beyond the file itself
KEEPALIVE_S = 15.0  # an idle event stream sends a comment this often, so proxies keep it open


class JobRequest(BaseModel):
    """What a POST to ``/v1/classify``, ``/v1/describe`` or ``/v1/explain`` asks for.

    JSON names a file (``path``) inside one of the server's roots; a multipart form
    uploads it (field ``file``) with the other fields as form fields.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str | None = Field(None, description="video file inside one of the server's roots (JSON requests; relative paths are taken from each root in turn)")
    labels: str | list[str] | None = Field(None, description="label set: a bundled name (ucf101, ...), 'a,b,c', a list, or a label file inside a root; classify and explain need it")
    reasoner: str | None = Field(None, description="route: cascade, fused, llm, embedding, ... (default: the server's settings)")
    top_k: int | None = Field(None, ge=1, description="labels to report")
    modalities: str | list[str] | None = Field(None, description="limit what is read: sight, speech, sound, text (a list or 'a,b')")
    occlusion: bool = Field(True, description="explain: re-score the LLM without each window and modality")

    @property
    def modality_list(self) -> list[str] | None:
        if self.modalities is None:
            return None
        items = self.modalities.split(",") if isinstance(self.modalities, str) else self.modalities
        return [m.strip() for m in items if m.strip()]


def _classify(pipe: vidsense.Pipeline, video: Path, req: JobRequest, labels: vidsense.LabelSet | None, progress: Progress) -> dict[str, Any]:
    return pipe.classify(video, labels, top_k=req.top_k, modalities=req.modality_list, reasoner=req.reasoner, progress=progress).to_dict()


def _describe(pipe: vidsense.Pipeline, video: Path, req: JobRequest, labels: vidsense.LabelSet | None, progress: Progress) -> dict[str, Any]:
    return pipe.describe(video, req.modality_list, progress=progress).to_dict()


def _explain(pipe: vidsense.Pipeline, video: Path, req: JobRequest, labels: vidsense.LabelSet | None, progress: Progress) -> dict[str, Any]:
    return pipe.explain(video, labels, modalities=req.modality_list, reasoner=req.reasoner, top_k=req.top_k, llm_occlusion=req.occlusion, progress=progress).to_dict()


# verb (vidsense.verbs.VERBS) -> the SDK call whose to_dict() is the CLI's --format json
RUNS: dict[str, Callable[..., dict[str, Any]]] = {"classify": _classify, "describe": _describe, "explain": _explain}


def _labels(spec: str | list[str] | None, roots: Sequence[Path], needed: bool) -> vidsense.LabelSet | None:
    """A request's label set; a label *file* is read only inside the roots.

    Raises:
        InputError: no labels where needed, or labels the SDK refuses.
        OutsideRoot: a label file outside the roots.
    """
    if spec is None:
        if needed:
            raise vidsense.InputError("labels: required (a bundled label set name, 'a,b,c', a list, or a label file inside a root)")
        return None
    if isinstance(spec, list) or "," in spec:
        return vidsense.load_labels(spec if isinstance(spec, list) else spec.split(","))
    if spec.strip().lower() in vidsense.bundled_names():
        return vidsense.load_labels(spec)
    try:
        path = inside_root(spec.strip(), *roots, hint=HINT)
        if path.is_file():
            return vidsense.load_labels(str(path))
    except OutsideRoot:
        if Path(spec.strip()).expanduser().is_file():  # the SDK would read it, from the working directory
            raise
    return vidsense.load_labels(spec)


def _request_schema() -> dict[str, Any]:
    """The OpenAPI request body: JSON naming a file, or a multipart form uploading one."""
    form = JobRequest.model_json_schema()
    props = {k: v for k, v in form["properties"].items() if k != "path"}
    props = {"file": {"type": "string", "format": "binary", "description": "the video"}, **props}
    return {
        "required": True,
        "content": {
            "application/json": {"schema": JobRequest.model_json_schema()},
            "multipart/form-data": {"schema": {"type": "object", "properties": props, "required": ["file"]}},
        },
    }


def create_app(
    pipeline_factory: Callable[[], vidsense.Pipeline],
    roots: Sequence[str | Path],
    token: str | None = None,
    *,
    workers: int = 1,
    queue_size: int = 16,
    sync_wait_s: float = 20.0,
    max_upload_mb: int = 200,
    grace_s: float = 30.0,
) -> FastAPI:
    """The HTTP API, built from explicit arguments (``vidsense serve`` reads them from its options).

    Args:
        pipeline_factory: builds the one Pipeline the process uses, models loaded (called once, at startup, in a
            thread); the server closes it at shutdown.
        roots: the only folders requests may name files in (symlinks followed).
        token: when set, every ``/v1`` request needs ``Authorization: Bearer <token>`` (``/healthz`` and ``/readyz`` stay open).
        workers: jobs run at once (threads sharing the Pipeline).
        queue_size: jobs waiting beyond the running ones; more are refused with 429.
        sync_wait_s: the longest a request waits for its job before answering 202 (a request's ``?wait=`` may ask for less).
        max_upload_mb: the largest upload (413 beyond).
        grace_s: how long a shutdown waits for running jobs before recording them as failed.
    """
    bases = [Path(r).resolve() for r in roots]
    if not bases:
        raise vidsense.InputError("--root: give at least one folder")
    for base in bases:
        if not base.is_dir():
            raise vidsense.InputError(f"--root {base}: not a directory")
    models = Models(pipeline_factory)
    jobs = Jobs(models.get, workers=workers, queue_size=queue_size)
    uploads = UploadFolder()
    limit = max_upload_mb * 1024 * 1024
    labelsets = [{"name": name, "size": len(vidsense.load_labels(name))} for name in vidsense.bundled_names()]

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        models.start()
        yield
        if await run_in_threadpool(jobs.close, grace_s):
            models.close()

    api = FastAPI(
        title="vidsense",
        version=vidsense.__version__,
        description="Zero-shot video classification that explains itself. Results are the JSON of `vidsense classify|describe|explain --format json`.",
        lifespan=lifespan,
    )

    @api.exception_handler(vidsense.VidsenseError)
    async def _refused(_request: Request, exc: vidsense.VidsenseError) -> JSONResponse:
        return JSONResponse({"detail": one_line(exc)}, status_code=status_for(exc))

    @api.exception_handler(Busy)
    async def _busy(_request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers={"Retry-After": "5"})

    def authorised(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token (VIDSENSE_API_TOKEN)", headers={"WWW-Authenticate": "Bearer"})

    async def read_request(request: Request) -> tuple[JobRequest, FormData | None]:
        """The request's fields, and the form holding its upload (field ``file``) if any."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        size = request.headers.get("content-length")
        if kind == "application/json":
            if size is not None and int(size) > JSON_LIMIT:
                raise HTTPException(413, f"request body over {JSON_LIMIT} bytes")
            try:
                fields = json.loads(await request.body())
            except ValueError as exc:
                raise vidsense.InputError(f"request body: not JSON ({exc})") from None
            if not isinstance(fields, dict):
                raise vidsense.InputError("request body: expected a JSON object")
            return _validated(fields), None
        if kind == "multipart/form-data":
            if size is None:
                raise HTTPException(411, "an upload needs a Content-Length")
            if int(size) > limit + FORM_SLACK:
                raise HTTPException(413, f"upload: {int(size) / 1024 / 1024:.1f} MB is over the upload limit of {max_upload_mb} MB ({UPLOAD_HINT})")
            form = await request.form(max_files=1, max_fields=16)
            try:
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise vidsense.InputError("file: a multipart request uploads the video in the field 'file'")
                fields = {k: v for k, v in form.multi_items() if k != "file"}
                if "path" in fields:
                    raise vidsense.InputError("path: name a file with a JSON request, or upload one; not both")
                problem = upload_problem(upload.filename or "upload", upload.size or 0, max_upload_mb, sorted(vidsense.VIDEO_EXTENSIONS), hint=UPLOAD_HINT)
                if problem:
                    raise HTTPException(413 if (upload.size or 0) > limit else 415, problem)
                return _validated(fields), form
            except BaseException:
                await form.close()
                raise
        raise HTTPException(415, f"content type {kind or 'missing'}: send application/json or multipart/form-data")

    def verb_endpoint(verb: str) -> Callable[..., Any]:
        run, needs_labels = RUNS[verb], VERBS[verb].needs_labels

        async def endpoint(request: Request, wait: float | None = Query(None, ge=0, description=f"seconds to wait for the result before answering 202 (at most the server's {sync_wait_s:g})")) -> Any:
            req, form = await read_request(request)
            try:
                labels = _labels(req.labels, bases, needs_labels)
                if form is not None:
                    upload = form["file"]
                    video = await run_in_threadpool(uploads.keep, upload.filename or "upload", upload.file)
                    cleanup = functools.partial(uploads.drop, video)
                elif req.path is not None:
                    video, cleanup = inside_root(req.path, *bases, hint=HINT), _nothing
                else:
                    raise vidsense.InputError("path: name a video file inside a root (JSON) or upload one (multipart field 'file')")
            finally:
                if form is not None:
                    await form.close()
            job = jobs.submit(verb, lambda pipe, progress: run(pipe, video, req, labels, progress), cleanup)
            deadline = time.monotonic() + min(sync_wait_s, wait if wait is not None else sync_wait_s)
            while not job.finished and (left := deadline - time.monotonic()) > 0:
                await jobs.wait(job, len(job.events), left)
            return _answer(job)

        endpoint.__name__ = verb
        endpoint.__doc__ = (
            f"{VERBS[verb].summary} `vidsense {verb}` over HTTP: JSON naming a file inside a root, or a multipart upload (field `file`). "
            "Answers the CLI's `--format json` output when the job finishes within the wait, else 202 with the job's id."
        )
        return endpoint

    def _answer(job: Job) -> JSONResponse:
        with jobs.lock:
            if job.status == "done":
                return JSONResponse(job.result)
            if job.status == "failed":
                return JSONResponse({"detail": job.error}, status_code=job.code)
            links = {"job": f"/v1/jobs/{job.id}", "events": f"/v1/jobs/{job.id}/events"}
            return JSONResponse({**job.summary(), **links}, status_code=202, headers={"Location": links["job"]})

    protected = [Depends(authorised)]
    for verb in VERBS:
        api.add_api_route(f"/v1/{verb}", verb_endpoint(verb), methods=["POST"], dependencies=protected, openapi_extra={"requestBody": _request_schema()})

    def find(job_id: str) -> Job:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"job {job_id}: unknown (finished jobs are kept for the last {HISTORY})")
        return job

    @api.get("/v1/jobs/{job_id}", dependencies=protected)
    def job_state(job_id: str) -> dict[str, Any]:
        """A job's state; its result (the CLI's JSON) or its one-line error once finished."""
        job = find(job_id)
        with jobs.lock:
            return job.summary()

    @api.get("/v1/jobs/{job_id}/events", dependencies=protected, response_class=StreamingResponse)
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        """Server-sent events, one per stage (queued, perceiving, reasoning, explaining, then done or failed); the stream ends with the job."""
        job = find(job_id)
        start = int(request.headers.get("last-event-id", "-1")) + 1

        async def stream() -> AsyncIterator[str]:
            seen = start
            while True:
                with jobs.lock:
                    new, finished = job.events[seen:], job.finished
                for i, event in enumerate(new, seen):
                    yield f"id: {i}\ndata: {json.dumps(event)}\n\n"
                seen += len(new)
                if finished:
                    return
                if await request.is_disconnected():
                    return
                before = time.monotonic()
                await jobs.wait(job, seen, KEEPALIVE_S)
                if time.monotonic() - before >= KEEPALIVE_S:
                    yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.get("/v1/labelsets", dependencies=protected)
    def list_labelsets() -> dict[str, Any]:
        """The bundled label sets and their sizes (a request may also send its own labels)."""
        return {"labelsets": labelsets}

    @api.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @api.get("/readyz")
    def readyz() -> JSONResponse:
        """200 once the models are loaded and jobs are accepted (``degraded`` when some perception models could
        not load: ``failed_models`` names them, and answers are made without them); 503 while loading, after a
        failed load, or shutting down."""
        state = {"models": "ready" if models.ready else ("failed: " + models.error if models.error else "loading"), "jobs": jobs.counts()}
        ok = models.ready and not jobs.closing
        status = ("degraded" if models.failed else "ready") if ok else "not ready"
        body = {"status": status, **state}
        if models.failed:
            body["failed_models"] = [{"model": name, "cause": cause, "fix": "vidsense doctor"} for name, cause in models.failed.items()]
        return JSONResponse(body, status_code=200 if ok else 503)

    return api


def _nothing() -> None:
    """The cleanup of a job that holds no upload."""


def _validated(fields: dict[str, Any]) -> JobRequest:
    """The request's fields checked, or an InputError naming each bad one on one line."""
    try:
        return JobRequest.model_validate(fields)
    except ValidationError as exc:
        raise vidsense.InputError("; ".join(f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors())) from None


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0, **config: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn from a background thread (tests, benchmarks, notebooks); yields its base URL.

    ``port=0`` takes a free port. On leaving, the server shuts down as on Ctrl-C.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="vidsense-serve", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server stopped while starting (see the log above)")
            time.sleep(0.02)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
