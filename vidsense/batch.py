"""Many videos through one classify function (a :class:`~vidsense.pipeline.Pipeline`'s).

Concurrency design: worker *threads* share the one Pipeline, so every model is
loaded once whatever the number of workers. Before the threads start, every
model the batch needs is loaded and wrapped so that only one thread at a time
runs it (the TFLite, OpenCV-DNN and llama.cpp handles are not thread-safe).
What runs in parallel is therefore different *stages* of different videos:
video B's perception models while video A is with the LLM, and decoding that
happens outside model calls. Native libraries release the GIL, so this
overlaps real work; the speed-up is bounded by the slowest single stage.
"""

from __future__ import annotations

import glob
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator

from vidsense.results import ClassificationResult
from vidsense.services.errors import InputError, VidsenseError
from vidsense.services.media.video import content_hash
from vidsense.services.schema import read_manifest

# What a directory scan picks up (lower-case suffixes). Animated GIFs are
# video to users (UCF-101 demo clips ship as .gif) and FFmpeg decodes them;
# .mts/.m2ts are what camcorders write.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv", ".ts", ".mts", ".m2ts", ".gif"}
)
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class BatchError:
    """A video of a batch that failed; the batch goes on.

    Attributes:
        video: the path as given.
        error: a one-line message.
        kind: ``input`` (unusable file), ``processing`` (a model or decoder
            failed) or ``internal`` (an unexpected exception).
        sha256: content hash of the file ('' when it cannot be read).
        seconds: time spent before the failure.
    """

    video: str
    error: str
    kind: str
    sha256: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """``{"video", "error", "kind", "sha256"}``."""
        return {"video": self.video, "error": self.error, "kind": self.kind, "sha256": self.sha256}


BatchItem = ClassificationResult | BatchError


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`classify_many`.

    Raised by the generator when the interrupt reaches it, or when the consumer,
    interrupted while handling an item, passes it on with
    ``items.throw(KeyboardInterrupt)``. Videos still in flight are abandoned,
    not waited for.

    Attributes:
        pending: items that finished but had not been yielded yet (report them too).
    """

    def __init__(self, pending: list[BatchItem]) -> None:
        super().__init__(f"batch interrupted ({len(pending)} finished result(s) not yet reported)")
        self.pending = pending


def collect_videos(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand batch inputs into video paths, in order and without duplicates.

    Args:
        inputs: video files, directories (searched recursively for files with a
            video extension, see :data:`VIDEO_EXTENSIONS`), glob patterns
            (``"clips/**/*.avi"``) and manifest CSVs (``path,label`` columns;
            see :func:`vidsense.services.schema.read_manifest`). A plain path
            that does not exist is kept, so that the batch reports it as a
            failed video instead of dropping it silently.

    Raises:
        InputError: a directory with no videos, or a glob matching nothing.
    """
    found: list[Path] = []
    for raw in inputs:
        text = str(raw)
        p = Path(text).expanduser()
        if p.is_dir():
            vids = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            if not vids:
                raise InputError(f"{p}: directory has no video files ({', '.join(sorted(VIDEO_EXTENSIONS))})")
            found.extend(vids)
        elif p.suffix.lower() == ".csv" and p.is_file():
            found.extend(r.path for r in read_manifest(p))
        elif not p.exists() and _GLOB_CHARS & set(text):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True) if Path(m).is_file())
            if not matches:
                raise InputError(f"{text}: pattern matches no files")
            found.extend(matches)
        else:
            found.append(p)
    seen: set[Path] = set()
    unique = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, VidsenseError) else f"{type(exc).__name__}: {text}"


def run_one(classify: Callable[[Path], ClassificationResult], video: Path) -> BatchItem:
    """``classify(video)``, or the :class:`BatchError` row for it: one engine's unit of work (threads and Ray actors alike)."""
    t0 = time.perf_counter()
    try:
        return classify(video)
    except Exception as exc:  # noqa: BLE001 - one failing video must never stop the batch
        try:
            sha = content_hash(video)
        except OSError:
            sha = ""
        kind = "input" if isinstance(exc, InputError) else "processing" if isinstance(exc, VidsenseError) else "internal"
        return BatchError(str(video), _one_line(exc), kind, sha, time.perf_counter() - t0)


def classify_many(
    classify: Callable[[Path], ClassificationResult],
    videos: Iterable[str | os.PathLike[str]],
    *,
    workers: int = 1,
    ordered: bool = False,
    prepare: Callable[[], None] | None = None,
) -> Iterator[BatchItem]:
    """Run ``classify`` over ``videos``, yielding each result (or :class:`BatchError`) as it finishes.

    Args:
        classify: one video's classification (it must be safe to call from several threads).
        videos: the video paths.
        workers: videos in flight at once.
        ordered: yield in input order instead of completion order.
        prepare: called once before worker threads start (load the models, so
            the first videos do not race to load the same one).

    Raises:
        InputError: ``workers`` below 1.
    """
    if workers < 1:
        raise InputError(f"workers: expected 1 or more, got {workers}")
    todo = [Path(v) for v in videos]
    if workers == 1 or len(todo) <= 1:
        try:
            for v in todo:
                yield run_one(classify, v)
        except KeyboardInterrupt:
            raise BatchInterrupted([]) from None
        return
    if prepare is not None:
        prepare()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vidsense")
    reported: set[int] = set()
    interrupted = False
    try:
        futures: list[Future[BatchItem]] = [pool.submit(run_one, classify, v) for v in todo]
        for fut in futures if ordered else as_completed(futures):
            reported.add(id(fut))
            yield fut.result()
    except KeyboardInterrupt:
        # Ctrl-C, here or thrown in by the consumer (see BatchInterrupted): hand back what
        # finished but was not yet reported, and do not wait for the videos in flight.
        interrupted = True
        pending = [f.result() for f in futures if f.done() and not f.cancelled() and id(f) not in reported]
        pool.shutdown(wait=False, cancel_futures=True)
        raise BatchInterrupted(pending) from None
    finally:
        if not interrupted:
            # A consumer that stops early must not wait for the whole queue.
            pool.shutdown(wait=True, cancel_futures=True)


def split_done(videos: Iterable[str | os.PathLike[str]], done: set[Hashable], key: Callable[[str], Hashable] = lambda sha: sha) -> tuple[list[Path], list[Path]]:
    """Split ``videos`` into (to do, already done) for resuming a batch.

    A video is done when ``key(its content hash)`` is in ``done`` (the CLI's key
    adds the label set, reasoner and top-k). A file that cannot be read is kept
    in "to do", so the batch reports its error.
    """
    todo, skipped = [], []
    for v in videos:
        p = Path(v)
        try:
            sha = content_hash(p) if done else ""
        except OSError:
            sha = ""
        (skipped if sha and key(sha) in done else todo).append(p)
    return todo, skipped
