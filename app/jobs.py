"""The server's job engine: a bounded queue, a fixed set of worker threads, and each job's state.

:class:`Jobs` runs what the HTTP side submits against the one Pipeline that
:class:`Models` builds in the background at startup; the HTTP side
(:mod:`vidsense.app.server`) only turns requests into jobs and jobs into responses.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import vidsense
from vidsense.app.roots import OutsideRoot
from vidsense.pipeline import Progress

log = logging.getLogger(__name__)

# The most finished jobs remembered for GET /v1/jobs/{id}; the oldest are forgotten first.
HISTORY = 1000
# What an error means for HTTP, most specific first; anything else is a 500.
STATUS: tuple[tuple[type[Exception], int], ...] = ((OutsideRoot, 403), (vidsense.InputError, 400), (vidsense.ProcessingError, 422))


def status_for(exc: BaseException) -> int:
    """The HTTP status of a failure: 403 outside the roots, 400 bad input, 422 a valid request that failed, else 500."""
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


def one_line(exc: BaseException) -> str:
    """The message the CLI prints after ``error:``."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, vidsense.VidsenseError) else f"{type(exc).__name__}: {text}"


class Busy(Exception):
    """The queue is full (429) or the server is shutting down (503)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class Job:
    """One request's work; every field changes under :attr:`Jobs.lock`."""

    id: str
    verb: str
    call: Callable[[vidsense.Pipeline, Progress], dict[str, Any]] = field(repr=False)
    cleanup: Callable[[], None] = field(repr=False)
    status: Literal["queued", "running", "done", "failed"] = "queued"
    events: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = field(default=None, repr=False)
    error: str = ""
    code: int = 200
    created: float = field(default_factory=time.time)
    waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=set, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def summary(self) -> dict[str, Any]:
        """``GET /v1/jobs/{id}``: the state, the last stage, and the result or the error once finished."""
        out: dict[str, Any] = {"job_id": self.id, "verb": self.verb, "status": self.status, "stage": self.events[-1]["stage"] if self.events else self.status}
        if self.status == "done":
            out["result"] = self.result
        elif self.status == "failed":
            out["error"], out["code"] = self.error, self.code
        return out


class Jobs:
    """A bounded queue of jobs, a fixed set of worker threads, and the jobs' state for the HTTP side.

    Workers are daemon threads: a shutdown waits for running jobs only as long as its grace period.
    """

    def __init__(self, pipeline: Callable[[], vidsense.Pipeline], *, workers: int, queue_size: int) -> None:
        self.lock = threading.Lock()
        self._pipeline = pipeline
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self._jobs: dict[str, Job] = {}
        self._closing = False
        self._threads = [threading.Thread(target=self._work, name=f"vidsense-job-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, verb: str, call: Callable[[vidsense.Pipeline, Progress], dict[str, Any]], cleanup: Callable[[], None]) -> Job:
        """Queue a job.

        Raises:
            Busy: the queue is full, or the server is shutting down (``cleanup`` has run).
        """
        job = Job(uuid.uuid4().hex, verb, call, cleanup)
        with self.lock:
            try:
                if self._closing:
                    raise Busy(503, "the server is shutting down")
                try:
                    self._queue.put_nowait(job)
                except queue.Full:
                    raise Busy(429, f"busy: {self._queue.maxsize} job(s) already waiting; retry later") from None
            except Busy:
                cleanup()
                raise
            self._forget_old()
            self._jobs[job.id] = job
            self._record(job, "queued", 0.0)
        return job

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self._jobs.get(job_id)

    @property
    def closing(self) -> bool:
        return self._closing

    def counts(self) -> dict[str, int]:
        with self.lock:
            states = [j.status for j in self._jobs.values()]
        return {s: states.count(s) for s in ("queued", "running", "done", "failed")}

    def close(self, grace_s: float) -> bool:
        """Refuse new jobs, give running ones up to ``grace_s`` seconds, and record the rest as failed.

        Returns:
            Whether no job is still running (a thread past the grace may still be using the models).
        """
        with self.lock:
            self._closing = True
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            with self.lock:
                if not any(j.status == "running" for j in self._jobs.values()):
                    break
            time.sleep(0.05)
        with self.lock:
            left = [j for j in self._jobs.values() if not j.finished]
            still_running = any(j.status == "running" for j in left)
            for job in left:
                self._finish(job, None, "server shut down", 503)
        for job in left:
            job.cleanup()
        return not still_running

    async def wait(self, job: Job, seen: int, timeout: float) -> None:
        """Return once ``job`` has more than ``seen`` events (it finished, or moved on), or after ``timeout`` seconds."""
        loop, changed = asyncio.get_running_loop(), asyncio.Event()
        with self.lock:
            if len(job.events) > seen:
                return
            job.waiters.add((loop, changed))
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self.lock:
                job.waiters.discard((loop, changed))

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            with self.lock:
                if job.finished:  # failed by a shutdown while it waited
                    continue
                job.status = "running"
            result, error, code = None, "", 200
            try:
                result = job.call(self._pipeline(), functools.partial(self._progress, job))
            except Exception as exc:  # noqa: BLE001 - a failing job is reported to its client; the worker goes on
                if not isinstance(exc, vidsense.VidsenseError):
                    log.exception("job %s (%s) failed", job.id, job.verb)
                error, code = one_line(exc), status_for(exc)
            finally:
                job.cleanup()
            with self.lock:
                if not job.finished:  # a shutdown may have recorded it already
                    self._finish(job, result, error, code)

    def _progress(self, job: Job, stage: str, fraction: float) -> None:
        """The SDK's progress, as the job's events; the job is done once its result is stored, not at the SDK's ``done``."""
        if stage != "done":
            with self.lock:
                if not job.finished:
                    self._record(job, stage, fraction)

    def _finish(self, job: Job, result: dict[str, Any] | None, error: str, code: int) -> None:
        job.status, job.result, job.error, job.code = ("failed" if error else "done"), result, error, code
        self._record(job, job.status, 1.0, **({"error": error, "code": code} if error else {}))

    def _record(self, job: Job, stage: str, fraction: float, **extra: Any) -> None:
        """Append an event (under the lock) and wake whoever waits on the job."""
        job.events.append({"stage": stage, "fraction": round(fraction, 3), "time": round(time.time() - job.created, 3), **extra})
        for loop, changed in job.waiters:
            try:
                loop.call_soon_threadsafe(changed.set)
            except RuntimeError:  # that request's event loop has closed
                pass

    def _forget_old(self) -> None:
        done = [j for j in self._jobs.values() if j.finished]
        for job in done[: max(0, len(done) - HISTORY + 1)]:
            del self._jobs[job.id]


class Models:
    """The process's one Pipeline, built in the background at startup (``/readyz`` says when)."""

    def __init__(self, factory: Callable[[], vidsense.Pipeline]) -> None:
        self._factory = factory
        self._ready = threading.Event()
        self._pipe: vidsense.Pipeline | None = None
        self.error = ""
        # Perception models that could not load: the server runs without them ("degraded"),
        # and every answer's warnings name them.
        self.failed: dict[str, str] = {}

    def start(self) -> None:
        threading.Thread(target=self._build, name="vidsense-load", daemon=True).start()

    def _build(self) -> None:
        try:
            self._pipe = self._factory()
            self.failed = self._pipe.perceiver.load_failures
            for name, cause in self.failed.items():
                log.warning("model %s failed: %s; serving without it (run 'vidsense doctor' for the fix)", name, cause)
        except Exception as exc:  # noqa: BLE001 - reported by /readyz and by every job
            log.exception("loading the pipeline failed")
            self.error = one_line(exc)
        finally:
            self._ready.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._pipe is not None

    def get(self) -> vidsense.Pipeline:
        """The Pipeline, once built (a job started early waits for it)."""
        self._ready.wait()
        if self._pipe is None:
            raise vidsense.ModelError(f"the server could not load its models: {self.error}")
        return self._pipe

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
