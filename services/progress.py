"""Progress callbacks any room may accept: plain functions, never a UI.

The rooms only say how far they are; the app decides how to show it (a rich
bar on a terminal, server-sent events, the dashboard's status box), so no room
imports a UI library. The rooms' own maintainer scripts (``python -m
vidsense.agents.describe_labels``, ``python -m vidsense.concepts.generate``)
get one plain line instead, :func:`terminal_line`.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")

# ``(done, total)`` after each item of a loop (videos, rows, labels, models, bytes).
Counts = Callable[[int, int], None]
# ``(stage, fraction of the whole call done)``; the SDK's stages end with ``done``.
Stages = Callable[[str, float], None]


def counted(items: Sequence[T], progress: Counts | None) -> Iterator[T]:
    """Yield ``items``, calling ``progress(done, total)`` once each one has been handled.

    The counts rise by one per item and the last is ``(total, total)``; nothing is
    reported for items the consumer never comes back from (an exception, a ``break``).
    """
    total = len(items)
    for done, item in enumerate(items, 1):
        yield item
        if progress is not None:
            progress(done, total)


def terminal_line(name: str, *, quiet: bool = False) -> Counts | None:
    """A ``name: done/total`` line on stderr, rewritten in place; None when ``quiet`` or stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        sys.stderr.write(f"\r{name}: {done}/{total}" + ("\n" if done >= total else ""))
        sys.stderr.flush()

    return show
