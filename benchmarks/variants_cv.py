"""Choose among variants of the product out of fold, from `routes.py` runs of each on the development set.

    .venv/bin/python benchmarks/routes.py --routes cascade --action-rate 0 --out /tmp/spread.json
    .venv/bin/python benchmarks/routes.py --routes cascade --out /tmp/rate.json
    .venv/bin/python benchmarks/variants_cv.py spread=/tmp/spread.json rate=/tmp/rate.json   # reference first, then by cost

A variant that `routes.py` cannot express as a route (a perception setting, a sampling) is
still a choice made on the development set, so it is judged like a fitted number: in every
fold the variant with the most top-1 on the training rows (then top-5; ties to the earlier
argument: list the reference first, then the others cheapest first) is chosen, and the held-out
rows are scored with it. Splits: one family left out,
and 5 folds by footage over 5 shuffles (``fusion_cv``'s folds). Rows in doubt and plain-words
rows are scored, never chosen on; a plain-words row is held out with its clip. Prints each
variant's per-family table in sample, then per split the choice of each fold and the held-out
table against the first variant's; writes ``benchmarks/results/variants_cv.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import devset
import fusion_cv
import gate

RESULTS = Path(__file__).resolve().parent / "results"
SHUFFLES = 5


class _Row:
    """What ``fusion_cv``'s folds read of a case: its row, with a plain-words row in its clip's family."""

    def __init__(self, row: devset.DevRow) -> None:
        self.row = row if not row.plain else devset.DevRow(row.path, row.label, row.labelset, row.family.removeprefix("plain "), row.origin, row.group, True)


def ranks_of(path: Path, route: str, n: int) -> list[float | None]:
    """The per-row ranks ``routes.py`` wrote for ``route`` (rows in the development set's order)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: not a readable routes.py output ({exc.__class__.__name__}: {exc})") from None
    for r in data.get("routes", []) if isinstance(data, dict) else []:
        if r["route"] == route and "ranks" in r:
            if len(r["ranks"]) != n:
                raise SystemExit(f"{path}: {len(r['ranks'])} rows, the development set has {n}")
            return r["ranks"]
    raise SystemExit(f"{path}: no per-row ranks of route {route!r} (run routes.py on the development set)")


def hits(ranks: Sequence[float | None], rows: Sequence[int]) -> tuple[int, int]:
    """Top-1 and top-5 hits over ``rows``."""
    return sum(ranks[i] == 1 for i in rows), sum(ranks[i] is not None and ranks[i] <= 5 for i in rows)


def out_of_fold(variants: dict[str, list[float | None]], folds: Sequence[fusion_cv.Fold]) -> tuple[list[float | None], list[str]]:
    """Each row's rank under the variant chosen on the fold that holds it out, and each fold's choice."""
    names = list(variants)
    n = len(next(iter(variants.values())))
    picked: list[float | None] = [None] * n
    chosen = []
    for fold in folds:
        # max() keeps the first of equals: ties go to the earlier argument.
        best = max(names, key=lambda v: hits(variants[v], fold.train))
        chosen.append(best)
        for i in fold.test:
            picked[i] = variants[best][i]
    return picked, chosen


def table(title: str, rows: Sequence[devset.DevRow], columns: dict[str, Sequence[float | None]]) -> str:
    """Top-1/top-5 per family (``gate.tally``'s lines) for each column."""
    tallies = {name: gate.tally(rows, ranks) for name, ranks in columns.items()}
    families = sorted({f for t in tallies.values() for f in t})
    head = f"{title:<34}" + "".join(f"{f[:14]:>15}" for f in families)
    lines = [head] + [f"{name[:34]:<34}" + "".join(f"{f'{t[f].top1}/{t[f].top5} of {t[f].n}' if f in t else '-':>15}" for f in families) for name, t in tallies.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", metavar="NAME=ROUTES.json", help="a name and the routes.py output of that variant (the first is the reference)")
    ap.add_argument("--route", default="cascade", help="the route whose ranks are compared (default cascade)")
    devset.add_arguments(ap)
    ap.add_argument("--out", default=str(RESULTS / "variants_cv.json"))
    args = ap.parse_args(argv)
    dev = devset.from_arguments(args)
    dev += devset.plain_rows(dev)
    variants = {}
    for item in args.variants:
        name, sep, path = item.partition("=")
        if not sep:
            ap.error(f"{item}: expected NAME=ROUTES.json")
        variants[name] = ranks_of(Path(path), args.route, len(dev))
    print(table("in sample", dev, variants))
    cases = [_Row(r) for r in dev]
    reference = next(iter(variants))
    out = {"variants": dict(zip(variants, args.variants)), "route": args.route, "splits": {}}
    splits = {"leave one family out": [fusion_cv.family_folds(cases)]}
    splits["5-fold by footage"] = [fusion_cv.group_folds(cases, 5, seed) for seed in range(SHUFFLES)]
    for split, runs in splits.items():
        out["splits"][split] = []
        for shuffle, folds in enumerate(runs):
            # Plain-words rows are never chosen on (fusion_cv's folds already keep rows in doubt out).
            folds = [fusion_cv.Fold(f.name, tuple(i for i in f.train if not dev[i].plain), f.test) for f in folds]
            picked, chosen = out_of_fold(variants, folds)
            name = split if len(runs) == 1 else f"{split}, shuffle {shuffle + 1}"
            print(f"\n{name}: chosen {', '.join(f'{f.name}: {c}' for f, c in zip(folds, chosen))}")
            print(table("held out", dev, {f"{reference} (reference)": variants[reference], "chosen out of fold": picked}))
            out["splits"][split].append({"chosen": dict(zip((f.name for f in folds), chosen)),
                                         "families": {k: vars(v) for k, v in gate.tally(dev, picked).items()}})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
