"""Progress bars on stderr for the CLI, fed by the rooms' plain callbacks.

The rooms and the SDK report through :data:`~vidsense.services.progress.Counts`
``(done, total)`` or :data:`~vidsense.services.progress.Stages` ``(stage,
fraction)``; only this module knows rich. A bar is drawn only when stderr is a
terminal and ``--quiet`` is off, so stdout (JSON, JSONL) stays clean and a
redirected stderr gets nothing extra. ``VIDSENSE_PROGRESS=1`` draws it anyway
(as on a terminal: logs, tests), ``VIDSENSE_PROGRESS=0`` never.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vidsense.app.results_file import printable

ENV = "VIDSENSE_PROGRESS"
_OFF = frozenset({"0", "false", "no", "off"})


def console(quiet: bool = False) -> Console | None:
    """The stderr console a bar draws on, or None when there should be no bar."""
    forced = os.environ.get(ENV, "").strip().lower()
    if quiet or forced in _OFF:
        return None
    if forced:
        return Console(stderr=True, force_terminal=True)
    err = Console(stderr=True)
    return err if err.is_terminal else None


class Bar:
    """One task of a rich progress display; its callbacks fit the rooms' ``progress`` arguments."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: float = 1, **fields: Any) -> None:
        """Move on by ``n``; ``fields`` update the columns (``failed=``, ``description=``)."""
        if "description" in fields:
            fields["description"] = printable(str(fields["description"]))
        self._progress.update(self._task, advance=n, **fields)

    def counts(self, done: int, total: int) -> None:
        """A :data:`~vidsense.services.progress.Counts` callback."""
        self._progress.update(self._task, completed=done, total=total)

    def stages(self, stage: str, fraction: float) -> None:
        """A :data:`~vidsense.services.progress.Stages` callback (the SDK's ``progress=``): the stage, and percent done."""
        self._progress.update(self._task, completed=round(100 * fraction), total=100, description=stage)


@contextmanager
def bar(description: str, total: float | None = None, *, quiet: bool = False, failures: bool = False) -> Iterator[Bar]:
    """A bar with done/total, elapsed time and ETA on stderr, gone once the work is (transient).

    Args:
        description: what is counted ("classify", "eval", a model's name).
        total: how many (None: unknown until the first ``counts`` call).
        quiet: no bar (the ``--quiet`` flag); see the module for when there is none anyway.
        failures: also show a ``failed N`` column, set with ``advance(failed=N)``.
    """
    con = console(quiet)
    columns: list[str | ProgressColumn] = [TextColumn("{task.description:30.30s}"), BarColumn(), MofNCompleteColumn()]
    if failures:
        columns.append(TextColumn("failed {task.fields[failed]}"))
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    # Lines printed to stdout while the bar is up pass through its console (stderr) only when stdout is the
    # same terminal; redirected stdout (JSON, JSONL) is never touched.
    redirect = sys.stdout is not None and sys.stdout.isatty()
    with Progress(*columns, console=con or Console(stderr=True), disable=con is None, transient=True, redirect_stdout=redirect) as progress:
        yield Bar(progress, progress.add_task(printable(description), total=total, failed=0))
