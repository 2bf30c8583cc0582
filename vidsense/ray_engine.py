"""Batch classification on Ray: one actor per slot, each holding its own Pipeline.

The local engine (:class:`~vidsense.engines.LocalEngine`) runs threads that share
one Pipeline in this process. This one spreads the videos over processes, or the
machines of a Ray cluster: each actor builds a Pipeline once, with the factory the
caller hands it (a Pipeline's own factory builds one from the same settings), and
classifies one video at a time. It yields the same items in
completion order (or input order), so a caller swaps one engine for the other.

An actor whose process dies (killed, out of memory, a crash in native code) is
replaced and its video tried once more, then recorded as failed. A video that
fails inside a live actor is an ordinary :class:`~vidsense.batch.BatchError`.

The actors read the videos by path: on a cluster every node must see the same
files (a shared file system) and have the models installed.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from vidsense.batch import BatchError, BatchInterrupted, BatchItem, run_one
from vidsense.services.errors import InputError
from vidsense.services.media.video import content_hash
from vidsense.services.schema import LabelSet

# A video whose actor dies is tried this many times in all.
ATTEMPTS = 2
# ray.wait returns this often so that Ctrl-C reaches the loop.
_POLL_S = 0.5


class _Slot:
    """The actor: one Pipeline, classifying one video at a time."""

    def __init__(self, make_pipeline: Callable[[], Any], labelset: LabelSet, options: dict[str, Any]) -> None:
        self._args = make_pipeline, labelset, options
        self._pipe: Any = None

    def _classify(self, video: Path) -> Any:
        make_pipeline, labelset, options = self._args
        # Built on first use, inside run_one: a Pipeline that cannot be built (a bad setting, a
        # missing model on this node) is then each video's error row with its cause, not an
        # actor that died in its constructor and a "worker died" row that hides why.
        if self._pipe is None:
            self._pipe = make_pipeline()
        return self._pipe.classify(video, labelset, **options)

    def run(self, video: str) -> BatchItem:
        return run_one(self._classify, Path(video))


@dataclass(frozen=True)
class RayEngine:
    """Run a batch on Ray instead of threads in this process.

    Attributes:
        address: a running cluster's address (``ray start --head`` prints it;
            ``auto`` finds the one on this machine). None: the Ray instance this
            process already started, else a local one started for the batch
            and shut down after it.
        cpus_per_actor: CPUs Ray reserves for each actor; Ray sets the actor's
            ``OMP_NUM_THREADS`` to it, so torch uses that many threads.

    Raises:
        InputError: ray is not installed, or ``cpus_per_actor`` is not positive.
    """

    address: str | None = None
    cpus_per_actor: float = 1.0

    def __post_init__(self) -> None:
        if importlib.util.find_spec("ray") is None:
            raise InputError("the ray engine needs the ray extra: pip install 'vidsense[ray]'")
        if self.cpus_per_actor <= 0:
            raise InputError(f"cpus per actor: expected more than 0, got {self.cpus_per_actor}")

    def classify_many(
        self,
        make_pipeline: Callable[[], Any],
        videos: Iterable[str | os.PathLike[str]],
        labelset: LabelSet,
        *,
        workers: int = 1,
        ordered: bool = False,
        **options: Any,
    ) -> Iterator[BatchItem]:
        """Classify ``videos`` on ``workers`` actors, yielding each result (or :class:`BatchError`) as it finishes.

        Args:
            make_pipeline: builds an actor's Pipeline, in the actor (sent with cloudpickle).
            videos: the video paths (as the actors will read them).
            labelset: the resolved label set.
            workers: actors, i.e. videos in flight at once.
            ordered: yield in input order instead of completion order.
            **options: the rest of :meth:`Pipeline.classify`'s keywords (``top_k``, ``reasoner``, ...).

        Raises:
            InputError: ``workers`` below 1.
            BatchInterrupted: Ctrl-C; as in :func:`vidsense.batch.classify_many`.
        """
        import ray
        from ray.exceptions import RayActorError, RayError

        if workers < 1:
            raise InputError(f"workers: expected 1 or more, got {workers}")
        todo = deque(enumerate(Path(v) for v in videos))
        if not todo:
            return
        owned = not ray.is_initialized()
        slot = ray.remote(_Slot).options(num_cpus=self.cpus_per_actor, max_restarts=0)

        def make_actor() -> Any:
            actor = slot.remote(make_pipeline, labelset, options)
            actors.append(actor)
            return actor

        actors: list[Any] = []
        running: dict[Any, tuple[Any, int, Path]] = {}
        tries: dict[int, int] = {}
        started: dict[int, float] = {}
        finished: dict[int, BatchItem] = {}
        next_out = 0
        try:
            if owned:
                # A new local instance needs no dashboard; connecting to a cluster takes no such option.
                local = {"include_dashboard": False} if self.address is None and not os.environ.get("RAY_ADDRESS") else {}
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING, **local)
            idle: list[Any] = []
            while todo or running:
                # An actor that died is replaced here, only while videos are left.
                while todo and (idle or len(running) < workers):
                    actor, (i, video) = idle.pop() if idle else make_actor(), todo.popleft()
                    started.setdefault(i, time.perf_counter())
                    running[actor.run.remote(str(video))] = (actor, i, video)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
                if not ready:
                    continue
                actor, i, video = running.pop(ready[0])
                try:
                    item = ray.get(ready[0])
                    idle.append(actor)
                except RayActorError:
                    ray.kill(actor)
                    tries[i] = tries.get(i, 0) + 1
                    if tries[i] < ATTEMPTS:
                        todo.appendleft((i, video))
                        continue
                    item = _failed(video, f"{video}: worker died while classifying it ({ATTEMPTS} tries)", started[i])
                except RayError as exc:  # the actor lives, but its answer did not come back (e.g. it could not be unpickled)
                    idle.append(actor)
                    item = _failed(video, f"{video}: {type(exc).__name__}: {' '.join(str(exc).split())}", started[i], kind="internal")
                if not ordered:
                    yield item
                    continue
                finished[i] = item
                while next_out in finished:
                    yield finished.pop(next_out)
                    next_out += 1
        except KeyboardInterrupt:
            # Hand back what finished but was not yet reported; abandon the videos in flight.
            done, _ = ray.wait(list(running), num_returns=len(running), timeout=0) if running else ([], [])
            pending = list(finished.values())
            for ref in done:
                try:
                    pending.append(ray.get(ref, timeout=0))
                except RayError:
                    pass
            raise BatchInterrupted(pending) from None
        finally:
            for actor in actors:
                ray.kill(actor)
            if owned and ray.is_initialized():
                ray.shutdown()


def _failed(video: Path, error: str, since: float, kind: str = "processing") -> BatchError:
    try:
        sha = content_hash(video)
    except OSError:
        sha = ""
    return BatchError(str(video), error, kind, sha, time.perf_counter() - since)
