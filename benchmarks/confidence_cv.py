"""Source weights that follow each source's own confidence, judged out of fold on the development set.

    .venv/bin/python benchmarks/confidence_cv.py
    .venv/bin/python benchmarks/confidence_cv.py --shuffles 1 --out /tmp/confidence_cv.json

Issue #23 lists three remedies for weights that silence a source strong on another family:
regularise toward the prior (``fusion_cv.py``), fit per label-set family, or let each source's
weight depend on its own confidence. This measures the third. A row's source ``s`` votes with

    w_s * (c_s / median(c_s)) ** gamma

where ``w_s`` is the hand-set prior, ``c_s`` the source's confidence on this row and
``median(c_s)`` its median over the fold's training rows (so a typical row keeps the prior's
weight, an unsure source speaks softer and a sure one louder). Three confidences, each read off
the source's log-probabilities over the label set:

- ``negentropy``: ``1 - H(p) / log(L)``, how far from flat the source is;
- ``gap``: nats between its first and second label;
- ``top``: its first label's probability.

Speech and on-screen text are never scaled: their say is bounded by construction
(``fusion.UNTRUSTED_CAP``), and a transcript that names one label confidently must not gain more.
``softer only`` caps the factor at 1 (a source may lose say, never gain it past the prior).

``gamma`` (0 is the prior; 0.125 to 2) is chosen on each fold's training rows: the most top-1, then
top-5, ties to the smaller; ``any`` chooses the confidence too. Rows in doubt are scored, never
fitted on. The UCF-101, HMDB-51 and Kinetics-400 rows are asked again in plain words
(``devset.plain_rows``): never chosen on, each scored with the choice of the fold that held out
its clip's names row. Splits: one family left out, and 5 folds by footage shuffled ``--shuffles``
times. A variant may ship by ``fusion_cv.ships``' rule with the plain rows: no family below the
prior's top-1 under any split, and above it overall. Writes ``benchmarks/results/confidence_cv.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import devset
import numpy as np
from fusion_cv import Case, Fold, cases, cv_arguments, family_folds, footage_splits, print_table, ships, tally_ranks

from vidsense.agents.evidence import SourceScores
from vidsense.agents.fusion import PRIOR_WEIGHTS, UNTRUSTED, bounded_logp

GAMMAS = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0)


def negentropy(s: SourceScores) -> float:
    """``1 - H(p) / log(L)``: 0 for a flat source, 1 for one sure of a single label."""
    p = np.exp(s.logp)
    return 1.0 - float(-(p * s.logp).sum()) / float(np.log(len(p)))


def gap(s: SourceScores) -> float:
    """Nats between the source's first and second label."""
    top2 = np.sort(s.logp)[-2:]
    return float(top2[1] - top2[0])


def top(s: SourceScores) -> float:
    """The source's first label's probability."""
    return float(np.exp(s.logp.max()))


CONFIDENCES: dict[str, Callable[[SourceScores], float]] = {"negentropy": negentropy, "gap": gap, "top": top}
FLOOR = 1e-6  # a source with no preference at all keeps a (vanishing) positive confidence


# One variant's setting: (confidence name, gamma, factor cap, per-source median confidence).
Setting = tuple[str, float, float, dict[str, float]]
PRIOR: Setting = ("negentropy", 0.0, np.inf, {})


def medians(train: Sequence[Case], conf: str) -> dict[str, float]:
    """Each source's median confidence over ``train``."""
    seen: dict[str, list[float]] = {}
    for c in train:
        for s in c.example.scores:
            seen.setdefault(s.source, []).append(max(CONFIDENCES[conf](s), FLOOR))
    return {k: float(np.median(v)) for k, v in seen.items()}


def rank(case: Case, setting: Setting) -> float:
    """The true label's 1-based rank with each trusted source's prior weight scaled by its confidence (ties at their mean)."""
    conf, gamma, cap, median = setting
    z = np.zeros(case.n_labels)
    for s in case.example.scores:
        w = PRIOR_WEIGHTS.get(s.source, 0.0)
        if not w:
            continue
        factor = 1.0
        if gamma and s.source not in UNTRUSTED and s.source in median:
            factor = min(cap, (max(CONFIDENCES[conf](s), FLOOR) / median[s.source]) ** gamma)
        z += w * factor * bounded_logp(s)
    t = z[case.example.target]
    return float((z > t).sum()) + 1 + (float((z == t).sum()) - 1) / 2


def choose(train: Sequence[Case], confs: Sequence[str], cap: float) -> Setting:
    """The setting with the most top-1 on ``train`` (then top-5); ties to the prior, then the smaller gamma."""
    best, best_key = PRIOR, None
    for gamma in GAMMAS:
        for conf in confs if gamma else confs[:1]:
            setting = (conf, gamma, cap, medians(train, conf) if gamma else {})
            ranks = [rank(c, setting) for c in train]
            key = (sum(r == 1 for r in ranks), sum(r <= 5 for r in ranks))
            if best_key is None or key > best_key:
                best, best_key = setting, key
    return best


def out_of_fold(named: Sequence[Case], plain: Sequence[Case], folds: Sequence[Fold], confs: Sequence[str], cap: float) -> tuple[list[Setting], list[Setting], list[tuple[str, float]]]:
    """Each names row's setting (chosen on the fold that holds it out), each plain row's (its clip's names twin's), and the folds' choices."""
    picks: list[Setting] = [PRIOR] * len(named)
    chosen = []
    for fold in folds:
        setting = choose([named[i] for i in fold.train if not named[i].row.doubt], confs, cap)
        chosen.append((setting[0] if setting[1] else "prior", setting[1]))
        for i in fold.test:
            picks[i] = setting
    twin = {(c.row.path, c.row.labelset): p for c, p in zip(named, picks)}
    return picks, [twin.get((c.row.path, c.row.family.removeprefix("plain ")), PRIOR) for c in plain], chosen


def main(argv: list[str] | None = None) -> int:
    args, rows = cv_arguments(
        __doc__, "confidence_cv.json", argv, lambda ap: ap.add_argument("--shuffles", type=int, default=5, help="shuffles of the k-fold split (a variant must hold under each)")
    )
    import vidsense

    pipe = vidsense.Pipeline()
    named = cases(rows, pipe)
    plain = cases(devset.plain_rows(rows), pipe)
    both = [*named, *plain]
    variants = {f"{conf}{', softer only' if cap == 1 else ''}": ([conf], cap) for cap in (np.inf, 1.0) for conf in CONFIDENCES}
    variants["any, chosen"] = (list(CONFIDENCES), np.inf)
    report, passes, choices = {}, {}, {}
    for title, split in {"leave one family out": family_folds, **footage_splits(args.k, args.shuffles)}.items():
        folds = split(named)
        results = {"prior": tally_ranks(both, [rank(c, PRIOR) for c in both])}
        for name, (confs, cap) in variants.items():
            picks, plain_picks, chosen = out_of_fold(named, plain, folds, confs, cap)
            results[name] = tally_ranks(both, [rank(c, p) for c, p in zip(both, [*picks, *plain_picks])])
            choices.setdefault(title, {})[name] = chosen
        print_table(f"{title} (top-1 / top-5 out of fold, names and plain words; rows in doubt apart)", results, float(np.mean([c.seconds for c in named])))
        report[title] = results
        passes[title] = {name: ships(results, name, plain=True) for name in variants}
    holding = [n for n in variants if all(p[n] for p in passes.values())]
    print(f"\nbeat the prior on every family (names and plain words) under every split: {', '.join(holding) or 'none (the prior stays)'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": len(named), "plain_rows": len(plain), "splits": report, "choices": choices, "ships": holding}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
