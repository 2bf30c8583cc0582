"""A transfer source's open share and the fused temperature, chosen out of fold on the development set.

    .venv/bin/python benchmarks/transfer_cv.py                   # the action recogniser's
    .venv/bin/python benchmarks/transfer_cv.py --source gesture  # the pose gestures'
    .venv/bin/python benchmarks/transfer_cv.py --shared DIR --eval-set none --k 5

Each transfer source (the action recogniser, the objects, scenes, sounds and gestures) carries
its classes into a label set by name similarity. With an open share ``s`` a class's row becomes
``(w + s / L) / (sum(w) + s)``: what the label set does not name stays open, spread evenly
(``vidsense.agents.evidence.ACTION_OPEN_SHARE``, ``GESTURE_OPEN_SHARE``). ``s = 0`` is the
transfer without it (raw similarities, the prior). The temperature of the fused softmax changes
no ranking, only the probabilities the product prints and its ``low confidence`` flag.

For every split (leave one family out; k folds grouped by footage) and every fold, the share is
chosen on the training rows (most top-1, then top-5; ties to the smallest share, the nearest to
the prior), and then the temperature that minimises the training rows' negative log-likelihood of
the true label. Every row is scored with the values its fold chose; the plain-words rows
(``devset.plain_rows``: the same clips against the label sets in a user's words) are never fitted
on and are scored with the choice of the fold that held their clip out. A share ships when its
top-1 is at least the prior's on every family, names and plain words, and above it on all rows of
one kind, under both splits (``fusion_cv.ships(..., plain=True)``). Printed: top-1 / top-5 per
family for each fixed share (shown, not chosen from) and the chosen one, the out-of-fold mean
negative log-likelihood and mean probability of the true label, the values chosen on every row,
and the bundled clip's answer. Rows in doubt are scored, never fitted on. Writes
``benchmarks/results/transfer_cv.json`` (``transfer_cv_<source>.json`` for another source).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import devset
import fusion_cv
import numpy as np

from vidsense.agents.evidence import TransferScorer
from vidsense.agents.fusion import DEFAULT_WEIGHTS, FusionWeights, fuse

RESULTS = Path(__file__).resolve().parent / "results"
SHARES = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
TEMPERATURES = tuple(round(t, 2) for t in np.arange(0.2, 2.01, 0.05))


@dataclass(frozen=True)
class Choice:
    """What one fold chose on its training rows."""

    share: float
    temperature: float


# The sources that carry classes into a label set by name (TransferScorer).
SOURCES = ("action", "objects", "scene", "sound", "gesture")


def source_scorer(pipe, source: str = "action") -> TransferScorer:
    """The fused route's scorer of ``source`` (its open share is set in place for each share measured)."""
    return next(s for s in pipe.reasoner.fused_method().scorers if isinstance(s, TransferScorer) and s.name == source)


def all_cases(rows: Sequence[devset.DevRow], pipe, shares: Sequence[float] = SHARES, source: str = "action") -> dict[float, list[fusion_cv.Case]]:
    """Every row's evidence at every open share of ``source``."""
    scorer = source_scorer(pipe, source)
    kept = scorer.open_share
    try:
        out = {}
        for s in shares:
            scorer.open_share = s
            out[s] = fusion_cv.cases(rows, pipe)
        return out
    finally:
        scorer.open_share = kept


def nll(case: fusion_cv.Case, weights: FusionWeights) -> float:
    """Negative log-probability of the true label under ``weights``."""
    z = fuse(case.example.scores, weights, case.n_labels)
    z = z - z.max()
    return float(np.log(np.exp(z).sum()) - z[case.example.target])


def hits(cs: Sequence[fusion_cv.Case], weights: FusionWeights) -> float:
    """Top-1 count plus a hundredth of the top-5 count."""
    ranks = [fusion_cv.rank(c, weights) for c in cs]
    return sum(r == 1 for r in ranks) + 0.01 * sum(r <= 5 for r in ranks)


def choose(cases: dict[float, list[fusion_cv.Case]], train: Sequence[int]) -> Choice:
    """The share with the most training top-1 (then top-5, then the smallest), and the temperature of least training NLL."""
    w = FusionWeights(DEFAULT_WEIGHTS)
    share = max(sorted(cases), key=lambda s: (hits([cases[s][i] for i in train], w), -s))
    rows = [cases[share][i] for i in train]
    t = min(TEMPERATURES, key=lambda t: sum(nll(c, FusionWeights(DEFAULT_WEIGHTS, t)) for c in rows))
    return Choice(share, float(t))


def out_of_fold(cases: dict[float, list[fusion_cv.Case]], split: Callable[[Sequence[fusion_cv.Case]], list[fusion_cv.Fold]]) -> list[Choice]:
    """Each row's choice, made on the fold that holds it out."""
    base = cases[next(iter(cases))]
    picked: list[Choice | None] = [None] * len(base)
    for fold in split(base):
        c = choose(cases, fold.train)
        for i in fold.test:
            picked[i] = c
    return [p or Choice(0.0, 1.0) for p in picked]


def scored(cases: dict[float, list[fusion_cv.Case]], choices: Sequence[Choice]) -> tuple[list[fusion_cv.Case], list[FusionWeights]]:
    """Every row's case at its chosen share, with the weights at its chosen temperature."""
    return ([cases[c.share][i] for i, c in enumerate(choices)], [FusionWeights(DEFAULT_WEIGHTS, c.temperature) for c in choices])


def calibration(cs: Sequence[fusion_cv.Case], ws: Sequence[FusionWeights]) -> dict[str, float]:
    """Mean NLL and mean probability of the true label over the rows not in doubt."""
    losses = [nll(c, w) for c, w in zip(cs, ws) if not c.row.doubt]
    return {"nll": round(float(np.mean(losses)), 3), "p_true": round(float(np.mean(np.exp(-np.array(losses)))), 3)}


def bundled_clip(pipe, share: float, temperature: float, source: str = "action") -> str:
    """The bundled cycling clip's top two labels in UCF-101 at ``source``'s ``share`` and ``temperature``."""
    import vidsense
    from vidsense import load_labels

    scorer = source_scorer(pipe, source)
    kept = scorer.open_share
    scorer.open_share = share
    try:
        ls = load_labels("ucf101")
        scores, _ = pipe.reasoner.fused_method().sources(pipe.describe(vidsense.example_video()), ls)
    finally:
        scorer.open_share = kept
    z = fuse(scores, FusionWeights(DEFAULT_WEIGHTS, temperature), len(ls))
    p = np.exp(z - z.max())
    p /= p.sum()
    top = np.argsort(-p)[:2]
    return ", ".join(f"{ls.labels[k]} {p[k]:.2f}" for k in top)


def main(argv: list[str] | None = None) -> int:
    def more(ap) -> None:
        ap.add_argument("--source", choices=SOURCES, default="action", help="whose open share (default: the action recogniser's)")

    args, rows = fusion_cv.cv_arguments(__doc__, "transfer_cv.json", argv, more)
    if args.source != "action" and Path(args.out).name == "transfer_cv.json":
        args.out = str(Path(args.out).with_name(f"transfer_cv_{args.source}.json"))

    import vidsense

    pipe = vidsense.Pipeline()
    shipped = source_scorer(pipe, args.source).open_share
    cases = all_cases(rows, pipe, source=args.source)
    # The plain-words rows are scored, never fitted on: each with the choice of the fold that held its clip out.
    plain = devset.plain_rows(rows)
    plain_cases = all_cases(plain, pipe, source=args.source) if plain else {s: [] for s in SHARES}
    seconds = float(np.mean([c.seconds for c in cases[shipped if shipped in cases else 0.0]]))

    def with_plain(choices: Sequence[Choice]) -> tuple[list[fusion_cv.Case], list[FusionWeights]]:
        cs, ws = scored(cases, choices)
        of_clip = {c.row.path: ch for c, ch in zip(cases[0.0], choices)}
        for i, c in enumerate(plain_cases[0.0]):
            ch = of_clip.get(c.row.path, Choice(0.0, 1.0))
            cs.append(plain_cases[ch.share][i])
            ws.append(FusionWeights(DEFAULT_WEIGHTS, ch.temperature))
        return cs, ws

    splits = {"leave one family out": fusion_cv.family_folds, f"{args.k}-fold by footage": lambda x: fusion_cv.group_folds(x, args.k)}
    report: dict = {}
    for title, split in splits.items():
        results, calib = {}, {}
        for s in SHARES:
            ws = [FusionWeights(DEFAULT_WEIGHTS)] * (len(rows) + len(plain))
            name = "prior (share 0)" if s == 0 else f"share {s}"
            results[name] = fusion_cv.tally(cases[s] + plain_cases[s], ws)
            calib[name] = calibration(cases[s], ws)
        # The temperature alone (share held at the prior's 0), then the share and the temperature.
        temperature_only = out_of_fold({0.0: cases[0.0]}, split)
        results["prior, T chosen"] = fusion_cv.tally(*with_plain(temperature_only))
        calib["prior, T chosen"] = calibration(*scored(cases, temperature_only))
        choices = out_of_fold(cases, split)
        results["chosen"] = fusion_cv.tally(*with_plain(choices))
        calib["chosen"] = calibration(*scored(cases, choices))
        # ships() compares with the variant named "prior".
        results["prior"] = results["prior (share 0)"]
        fusion_cv.print_table(f"{title} (top-1 / top-5 out of fold; rows in doubt apart)", {k: v for k, v in results.items() if k != "prior"}, seconds)
        print("calibration (rows not in doubt; mean NLL and probability of the true label):")
        for k, v in calib.items():
            print(f"  {k:<16} nll {v['nll']:.3f}  p {v['p_true']:.3f}")
        print("chosen per fold: " + ", ".join(sorted({f"share {c.share} T {c.temperature}" for c in choices})))
        report[title] = {"results": {k: v for k, v in results.items() if k != "prior"}, "calibration": calib,
                         "ships": fusion_cv.ships(results, "chosen", plain=True), "choices": sorted({(c.share, c.temperature) for c in choices})}
    everything = choose(cases, [i for i, c in enumerate(cases[0.0]) if not c.row.doubt])
    print(f"\nthe chosen share beats the prior (every family at least, names and plain words; one overall above) under both splits: {all(r['ships'] for r in report.values())}")
    print(f"chosen on every row: share {everything.share}, temperature {everything.temperature}")
    demo = {"prior": bundled_clip(pipe, 0.0, 1.0, args.source), "chosen": bundled_clip(pipe, everything.share, everything.temperature, args.source)}
    print(f"bundled clip (ucf101): prior {demo['prior']}; chosen {demo['chosen']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"source": args.source, "rows": len(rows), "reasoning_s_per_clip": round(seconds, 4), "shares": SHARES, "temperatures": TEMPERATURES,
                               "splits": report, "chosen_on_all": {"share": everything.share, "temperature": everything.temperature},
                               "bundled_clip": demo}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
