"""The transfer's sharpness, per kind of source, chosen out of fold on the development set.

    .venv/bin/python benchmarks/sharpness_cv.py
    .venv/bin/python benchmarks/sharpness_cv.py --shared DIR --eval-set none --k 5

A recogniser's or tagger's class reaches a label with weight ``exp(sharpness * (cos - 1))``
(``vidsense.agents.evidence.TransferScorer``): at 10 (the prior, the figure the first
measurement used) a class whose name sits 0.1 below the label's in cosine keeps e^-1 of its
mass; a softer transfer lets a class reach more labels, a sharper one only its nearest. Two
numbers are searched jointly: the **action** recogniser's sharpness (Kinetics classes, whole
activities) and the **tags'** (COCO objects, ImageNet scenes, AudioSet sounds, pose gestures:
parts of a scene, which name a label less directly).

For every split (leave one family out; k folds grouped by footage) and every fold, a pair is
chosen on the training rows by each of :data:`CRITERIA` (the most top-1, then top-5; or the
least NLL of the true label; ties to the pair nearest the prior in log ratio), and the held-out
rows are scored with it. Rows in doubt are scored, never fitted on. The plain-words rows
(``devset.plain_rows``: the same clips against the label sets rewritten as a user types them)
are never fitted on either: each is scored with the choice of the fold that held its clip out.
Prints every pair's top-1 / top-5 in sample (all rows, all plain rows: shown, not chosen from),
then per split the per-family table of the prior and of each criterion's choice, the pairs each
fold chose, and whether a criterion's choice is at least the prior's top-1 on every family and
above it overall under both splits; writes ``benchmarks/results/sharpness_cv.json``.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Callable, Sequence

import devset
import fusion_cv
import transfer_cv

from vidsense.agents.evidence import SHARPNESS, TransferScorer
from vidsense.agents.fusion import DEFAULT_WEIGHTS, FusionWeights

RESULTS = Path(__file__).resolve().parent / "results"
ACTION = ("action",)
TAGS = ("objects", "scene", "sound", "gesture")
GRID = (5.0, 7.5, 10.0, 15.0, 20.0)
Pair = tuple[float, float]
PRIOR: Pair = (SHARPNESS, SHARPNESS)
# How a fold chooses: most top-1 (then top-5), or least NLL of the true label (a proper score,
# less noisy on a few dozen rows than a count of top-1).
CRITERIA = ("top1", "nll")


def scorers(pipe, names: Sequence[str]) -> list[TransferScorer]:
    """The fused route's transfer scorers of these sources (their sharpness is set in place)."""
    return [s for s in pipe.reasoner.fused_method().scorers if isinstance(s, TransferScorer) and s.name in names]


def all_cases(rows: Sequence[devset.DevRow], pipe, grid: Sequence[float] = GRID) -> dict[Pair, list[fusion_cv.Case]]:
    """Every row's evidence at every (action, tags) sharpness pair."""
    action, tags = scorers(pipe, ACTION), scorers(pipe, TAGS)
    kept = {id(s): s.sharpness for s in (*action, *tags)}
    try:
        out = {}
        for a, t in itertools.product(grid, grid):
            for s in action:
                s.sharpness = a
            for s in tags:
                s.sharpness = t
            out[(a, t)] = fusion_cv.cases(rows, pipe)
        return out
    finally:
        for s in (*action, *tags):
            s.sharpness = kept[id(s)]


def distance(pair: Pair) -> float:
    """How far a pair is from the prior (sum of absolute log ratios)."""
    return sum(abs(math.log(v / p)) for v, p in zip(pair, PRIOR))


def choose(cases: dict[Pair, list[fusion_cv.Case]], train: Sequence[int], criterion: str = "top1") -> Pair:
    """The pair with the most training top-1 (then top-5), or the least training NLL of the true
    label (``criterion="nll"``); ties to the nearest to the prior."""
    w = FusionWeights(DEFAULT_WEIGHTS)

    def score(pair: Pair) -> tuple[float, float]:
        if criterion == "nll":
            return (-sum(transfer_cv.nll(cases[pair][i], w) for i in train), -distance(pair))
        return (transfer_cv.hits([cases[pair][i] for i in train], w), -distance(pair))

    return max(sorted(cases), key=score)


def out_of_fold(cases: dict[Pair, list[fusion_cv.Case]], split: Callable[[Sequence[fusion_cv.Case]], list[fusion_cv.Fold]], criterion: str = "top1") -> tuple[dict[Path, Pair], list[tuple[str, Pair]]]:
    """Each clip's pair, chosen on the fold that holds it out; and each fold's choice."""
    base = cases[PRIOR]
    picked: dict[Path, Pair] = {}
    record = []
    for fold in split(base):
        pair = choose(cases, fold.train, criterion)
        record.append((fold.name, pair))
        for i in fold.test:
            picked[base[i].row.path] = pair
    return picked, record


def scored(cases: dict[Pair, list[fusion_cv.Case]], picked: dict[Path, Pair]) -> list[fusion_cv.Case]:
    """Every row's case at its clip's chosen pair."""
    return [cases[picked.get(c.row.path, PRIOR)][i] for i, c in enumerate(cases[PRIOR])]


def main(argv: list[str] | None = None) -> int:
    args, rows = fusion_cv.cv_arguments(__doc__, "sharpness_cv.json", argv)
    plain = devset.plain_rows(rows)

    import vidsense

    pipe = vidsense.Pipeline()
    cases = all_cases(rows, pipe)
    plain_cases = all_cases(plain, pipe) if plain else {}
    every = {p: cases[p] + plain_cases.get(p, []) for p in cases}
    ws = [FusionWeights(DEFAULT_WEIGHTS)] * len(every[PRIOR])
    seconds = sum(c.seconds for c in cases[PRIOR]) / len(cases[PRIOR])
    splits = {"leave one family out": fusion_cv.family_folds, f"{args.k}-fold by footage": lambda x: fusion_cv.group_folds(x, args.k)}
    fixed = {f"action {a:g}, tags {t:g}" + (" (prior)" if (a, t) == PRIOR else ""): fusion_cv.tally(every[(a, t)], ws) for a, t in sorted(every)}
    report: dict = {"grid": GRID, "prior": PRIOR, "fixed": fixed, "splits": {}}
    print("\nEvery pair on every row (in sample, shown, not chosen from): top-1 / top-5 of all, all plain")
    for name, t in fixed.items():
        print(f"  {name:<28} all {t['all']['top1']}/{t['all']['top5']}  all plain {t.get('all plain', {}).get('top1', 0)}/{t.get('all plain', {}).get('top5', 0)}")
    verdicts = []
    for title, split in splits.items():
        results = {"prior": fusion_cv.tally(every[PRIOR], ws)}
        records = {}
        for criterion in CRITERIA:
            picked, records[criterion] = out_of_fold(cases, split, criterion)
            results[f"chosen ({criterion})"] = fusion_cv.tally(scored(every, picked), ws)
        fusion_cv.print_table(f"{title} (top-1 / top-5 out of fold; rows in doubt apart)", results, seconds)
        for criterion, record in records.items():
            print(f"chosen per fold ({criterion}): " + ", ".join(f"{name}: {a:g}/{t:g}" for name, (a, t) in record))
        ok = {c: fusion_cv.ships(results, f"chosen ({c})") for c in CRITERIA}
        verdicts.append(ok)
        report["splits"][title] = {"results": results, "folds": records, "ships": ok}
    fit_rows = [i for i, c in enumerate(cases[PRIOR]) if not c.row.doubt]
    report["chosen_on_all"], report["ships"] = {}, {}
    for criterion in CRITERIA:
        everything = choose(cases, fit_rows, criterion)
        ships = all(v[criterion] for v in verdicts)
        print(f"\n{criterion}: the chosen pair beats the prior on every family under both splits: {ships}; "
              f"chosen on every row: action {everything[0]:g}, tags {everything[1]:g}")
        report["chosen_on_all"][criterion], report["ships"][criterion] = everything, ships
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
