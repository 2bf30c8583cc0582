"""Turns on the processor: a heavy model runs alone on every core, light models share the gaps.

On a small machine the models differ in how they use cores. The action recogniser's ONNX run
scales fully (I3D: 3.2 s on one core, 1.6 s on two), so it is best run alone with all of them.
The light models (pose, the taggers, the text reader, optical flow) gain little from a second
thread (pose and the taggers 1.5-1.6x, the text reader nothing), so on two cores they are best
run one thread each, two at a time. With ``perception_threads`` above 1 the Perceiver runs
models side by side and the light ones are built with one thread each; this module keeps the
heavy ones from sharing the cores with them: each light inference step runs inside
:meth:`Turns.light` (any number at once) and a heavy model's run inside :meth:`Turns.heavy`,
which waits for the light steps in flight, keeps new ones waiting, and then has the machine to
itself. The light models then fill the time the heavy one does not use (decoding, the other
light models), step by step.

There is one :data:`TURNS` per process: the cores are the process's, whichever Perceiver or
batch thread asks. A step never waits on another turn while holding one, so turns cannot
deadlock; with one model at a time no turn ever waits.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator


class Turns:
    """A readers-writer lock that prefers writers: light steps share, a heavy run is alone."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._light = 0  # light steps running
        self._heavy = False  # a heavy run holds the machine
        self._waiting = 0  # heavy runs waiting for it
        self._local = threading.local()

    def waited(self) -> float:
        """Seconds this thread has spent waiting for turns (a model's time less its waits is its own)."""
        return getattr(self._local, "waited", 0.0)

    def _count_wait(self, since: float) -> None:
        self._local.waited = self.waited() + time.perf_counter() - since

    @contextmanager
    def light(self) -> Iterator[None]:
        """One light inference step; waits while a heavy run holds or waits for the machine."""
        t0 = time.perf_counter()
        with self._cond:
            while self._heavy or self._waiting:
                self._cond.wait()
            self._light += 1
        self._count_wait(t0)
        try:
            yield
        finally:
            with self._cond:
                self._light -= 1
                if not self._light:
                    self._cond.notify_all()

    @contextmanager
    def heavy(self) -> Iterator[None]:
        """A heavy run alone on every core: after the light steps in flight, before any new one."""
        t0 = time.perf_counter()
        with self._cond:
            self._waiting += 1
            try:
                while self._heavy or self._light:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._heavy = True
        self._count_wait(t0)
        try:
            yield
        finally:
            with self._cond:
                self._heavy = False
                self._cond.notify_all()


TURNS = Turns()


def light_threads(perception_threads: int, cores: int | None = None) -> int | None:
    """Threads each light model's runtime gets: the cores shared among the models running side by
    side, or None (the runtime's own default, every core) when models run one at a time."""
    if perception_threads <= 1:
        return None
    return max(1, (cores or os.cpu_count() or 1) // perception_threads)


def set_cv2_threads(threads: int | None) -> None:
    """OpenCV's thread pool for the light models that run through it (the COCO detector, optical
    flow). It is one pool per process, so the last model built sets it; None leaves it alone."""
    if threads is not None:
        import cv2

        cv2.setNumThreads(threads)
