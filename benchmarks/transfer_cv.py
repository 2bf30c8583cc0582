"""The action recogniser's open share and the fused temperature, chosen out of fold on the development set.

    .venv/bin/python benchmarks/transfer_cv.py
    .venv/bin/python benchmarks/transfer_cv.py --shared DIR --eval-set none --k 5

The action source carries each Kinetics class into a label set by name similarity. With an
open share ``s`` a class's row becomes ``(w + s / L) / (sum(w) + s)``: what the label set does
not name stays open, spread evenly (``vidsense.agents.evidence.ACTION_OPEN_SHARE``). ``s = 0``
is the transfer before it (raw similarities, the prior). The temperature of the fused softmax
changes no ranking, only the probabilities the product prints and its ``low confidence`` flag.

For every split (leave one family out; k folds grouped by footage) and every fold, the share is
chosen on the training rows (most top-1, then top-5; ties to the smallest share, the nearest to
the prior), and then the temperature that minimises the training rows' negative log-likelihood of
the true label. Every row is scored with the values its fold chose. Printed: top-1 / top-5 per
family for each fixed share (shown, not chosen from) and the chosen one, the out-of-fold mean
negative log-likelihood and mean probability of the true label, the values chosen on every row,
and the bundled clip's answer. Rows in doubt are scored, never fitted on. Writes
``benchmarks/results/transfer_cv.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import devset
import fusion_cv
import numpy as np

from vidsense.agents.evidence import ACTION_OPEN_SHARE, TransferScorer
from vidsense.agents.fusion import DEFAULT_WEIGHTS, FusionWeights, fuse

RESULTS = Path(__file__).resolve().parent / "results"
SHARES = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
TEMPERATURES = tuple(round(t, 2) for t in np.arange(0.2, 2.01, 0.05))


@dataclass(frozen=True)
class Choice:
    """What one fold chose on its training rows."""

    share: float
    temperature: float


def action_scorer(pipe) -> TransferScorer:
    """The fused route's action scorer (its open share is set in place for each share measured)."""
    return next(s for s in pipe.reasoner.fused_method().scorers if isinstance(s, TransferScorer) and s.name == "action")


def all_cases(rows: Sequence[devset.DevRow], pipe, shares: Sequence[float] = SHARES) -> dict[float, list[fusion_cv.Case]]:
    """Every row's evidence at every open share."""
    scorer = action_scorer(pipe)
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


def bundled_clip(pipe, share: float, temperature: float) -> str:
    """The bundled cycling clip's top two labels in UCF-101 at ``share`` and ``temperature``."""
    import vidsense
    from vidsense import load_labels

    scorer = action_scorer(pipe)
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
    args, rows = fusion_cv.cv_arguments(__doc__, "transfer_cv.json", argv)

    import vidsense

    pipe = vidsense.Pipeline()
    cases = all_cases(rows, pipe)
    seconds = float(np.mean([c.seconds for c in cases[ACTION_OPEN_SHARE if ACTION_OPEN_SHARE in cases else 0.0]]))
    splits = {"leave one family out": fusion_cv.family_folds, f"{args.k}-fold by footage": lambda x: fusion_cv.group_folds(x, args.k)}
    report: dict = {}
    for title, split in splits.items():
        results, calib = {}, {}
        for s in SHARES:
            ws = [FusionWeights(DEFAULT_WEIGHTS)] * len(rows)
            name = "prior (share 0)" if s == 0 else f"share {s}"
            results[name] = fusion_cv.tally(cases[s], ws)
            calib[name] = calibration(cases[s], ws)
        # The temperature alone (share held at the prior's 0), then the share and the temperature.
        cs, ws = scored(cases, out_of_fold({0.0: cases[0.0]}, split))
        results["prior, T chosen"] = fusion_cv.tally(cs, ws)
        calib["prior, T chosen"] = calibration(cs, ws)
        choices = out_of_fold(cases, split)
        cs, ws = scored(cases, choices)
        results["chosen"] = fusion_cv.tally(cs, ws)
        calib["chosen"] = calibration(cs, ws)
        # ships() compares with the variant named "prior".
        results["prior"] = results["prior (share 0)"]
        fusion_cv.print_table(f"{title} (top-1 / top-5 out of fold; rows in doubt apart)", {k: v for k, v in results.items() if k != "prior"}, seconds)
        print("calibration (rows not in doubt; mean NLL and probability of the true label):")
        for k, v in calib.items():
            print(f"  {k:<16} nll {v['nll']:.3f}  p {v['p_true']:.3f}")
        print("chosen per fold: " + ", ".join(sorted({f"share {c.share} T {c.temperature}" for c in choices})))
        report[title] = {"results": {k: v for k, v in results.items() if k != "prior"}, "calibration": calib,
                         "ships": fusion_cv.ships(results, "chosen"), "choices": sorted({(c.share, c.temperature) for c in choices})}
    everything = choose(cases, [i for i, c in enumerate(cases[0.0]) if not c.row.doubt])
    print(f"\nthe chosen share beats the prior on every family under both splits: {all(r['ships'] for r in report.values())}")
    print(f"chosen on every row: share {everything.share}, temperature {everything.temperature}")
    demo = {"prior": bundled_clip(pipe, 0.0, 1.0), "chosen": bundled_clip(pipe, everything.share, everything.temperature)}
    print(f"bundled clip (ucf101): prior {demo['prior']}; chosen {demo['chosen']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": len(rows), "reasoning_s_per_clip": round(seconds, 4), "shares": SHARES, "temperatures": TEMPERATURES,
                               "splits": report, "chosen_on_all": {"share": everything.share, "temperature": everything.temperature},
                               "bundled_clip": demo}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
