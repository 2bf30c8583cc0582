"""Choosing a reasoning route under a latency budget, from measured cost and accuracy.

The ApproxNet / ApproxDet idea: each route's accuracy and reasoning time are
measured on this machine (``benchmarks/routes.py --save``, stored as
``$VIDSENSE_HOME/routes.json``), and at run time the most accurate route whose
measured time fits the budget is taken. Without a measurement the bundled
table applies. Every choice says why.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from vidsense.services.errors import InputError
from vidsense.services.files import write_text_atomically

# Named budgets, in seconds of reasoning (everything after perception).
BUDGETS: dict[str, float] = {"fast": 0.5, "balanced": 4.0, "best": math.inf}
TABLE_FILE = "routes.json"


@dataclass(frozen=True)
class RouteCost:
    """What one route costs and buys, as measured.

    Attributes:
        route: the reasoning method's name.
        top1: top-1 accuracy on the labelled set it was measured on.
        reasoning_s: mean seconds after perception, warm.
        measured_on: the manifest (or note) behind the numbers.
    """

    route: str
    top1: float
    reasoning_s: float
    measured_on: str = ""


# Measured 2026-11-29 with benchmarks/routes.py on benchmarks/eval_set.py's 32 rows (21 real
# clips; UCF-101, HMDB-51, Kinetics-400/700, SSv2), 2 cores, warm models. The fused weights were
# fitted on the same rows (left out one video at a time they give top-1 0.41); the cascade at
# its default margin of 0 is the fused route. The LLM route reads about 1,360 prompt tokens.
BUNDLED: tuple[RouteCost, ...] = (
    RouteCost("fused", 0.500, 0.21, "eval-set (32 rows)"),
    RouteCost("cascade", 0.500, 0.21, "eval-set (32 rows), margin 0"),
    RouteCost("llm", 0.156, 33.7, "eval-set (32 rows)"),
)


def budget_seconds(budget: str | float) -> float:
    """Seconds of reasoning a budget allows (a name of :data:`BUDGETS` or a number).

    Raises:
        InputError: an unknown name or a number that is not positive.
    """
    if isinstance(budget, str):
        try:
            return BUDGETS[budget] if budget in BUDGETS else float(budget)
        except ValueError:
            raise InputError(f"budget: expected one of {', '.join(BUDGETS)} or seconds, got {budget!r}") from None
    if budget <= 0:
        raise InputError(f"budget: expected seconds above 0, got {budget}")
    return float(budget)


def choose(costs: Sequence[RouteCost], budget: str | float) -> tuple[str, str]:
    """The most accurate route that fits ``budget`` (the cheapest on a tie), and why.

    When none fits, the cheapest route runs and the reason says so.
    """
    if not costs:
        raise InputError("no measured route to choose from")
    limit = budget_seconds(budget)
    fits = [c for c in costs if c.reasoning_s <= limit]
    if not fits:
        cheapest = min(costs, key=lambda c: c.reasoning_s)
        return cheapest.route, f"no route fits {limit:g} s; {cheapest.route} is the fastest ({cheapest.reasoning_s:.2f} s measured)"
    best = max(fits, key=lambda c: (c.top1, -c.reasoning_s))
    shown = "any" if math.isinf(limit) else f"{limit:g} s"
    return best.route, f"budget {budget} ({shown}): {best.route} is the most accurate that fits (top-1 {best.top1:.2f}, {best.reasoning_s:.2f} s measured on {best.measured_on or 'unknown'})"


def load_table(home: Path) -> tuple[RouteCost, ...]:
    """The measured table under ``home`` when there is one, else :data:`BUNDLED`.

    Raises:
        InputError: the file exists but is not a route table.
    """
    path = Path(home) / TABLE_FILE
    if not path.is_file():
        return BUNDLED
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["routes"]
        return tuple(RouteCost(str(r["route"]), float(r["top1"]), float(r["reasoning_s"]), str(r.get("measured_on", ""))) for r in rows)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a route table ({exc}); rerun benchmarks/routes.py --save or delete it") from None


def save_table(home: Path, costs: Sequence[RouteCost]) -> Path:
    """Store measured costs under ``home`` for :func:`load_table`."""
    return write_text_atomically(Path(home) / TABLE_FILE, json.dumps({"routes": [asdict(c) for c in costs]}, indent=1))
