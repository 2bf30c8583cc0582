"""Faithfulness of the answering model's explanation on the development set: deletion and insertion curves, per family.

    .venv/bin/python benchmarks/faithfulness.py                 # ../shared/devset + the eval set (cached timelines)
    .venv/bin/python benchmarks/faithfulness.py --random-orders 50

For every row the default route answers from the cached timeline, and the answering model
(:mod:`vidsense.concepts.bottleneck`: the route itself in bottleneck form) explains that answer.
Its attributions order the concepts (Integrated Gradients summed over windows, largest first)
and the windows (IG summed over each window's concepts). Curves, each the answer's probability
after every step, their area the mean over the steps (0 to all) relative to the answer's
probability before:

- **concept deletion**: concepts removed (their activations set to 0) in attributed order,
  against the mean of ``--random-orders`` random orders. Faithful: below random;
- **window deletion**: windows emptied the same way;
- **concept insertion**: from no concept (text terms kept) concepts added in attributed
  order. Faithful: above random.

Rows where the answer's probability is under 0.01 are counted apart (a curve from nearly 0
says little). Also the time to classify a cached timeline against classifying and explaining
it. Prints one table per family and writes ``benchmarks/results/faithfulness.json``.
Never point it at the holdout.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import devset
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
MIN_P = 0.01


def area(curve: Sequence[float], start: float) -> float:
    """Mean of the curve (its first point included), relative to ``start``."""
    return float(np.mean(curve)) / start if start > 0 else 0.0


def curve(step: Callable[[Sequence[int]], float], order: Sequence[int]) -> list[float]:
    """The answer's probability with the first 0..n of ``order`` removed (or, inserting, present)."""
    return [step(list(order[:i])) for i in range(len(order) + 1)]


def random_area(step: Callable[[Sequence[int]], float], n: int, start: float, orders: int, rng: np.random.Generator) -> float:
    return float(np.mean([area(curve(step, list(rng.permutation(n))), start) for _ in range(orders)]))


def evaluate(model, target: int, orders: int, rng: np.random.Generator) -> dict[str, float]:
    """One row's areas: attributed and random, for concept deletion, window deletion and concept insertion."""
    p0 = float(model.probabilities()[target])
    ig = model.integrated_gradients(target)
    by_concept = np.argsort(-ig.cells.sum(axis=0), kind="stable")
    by_window = np.argsort(-ig.cells.sum(axis=1), kind="stable")
    c = len(model.concepts)

    def without_concepts(drop: Sequence[int]) -> float:
        return float(model.probabilities(model.scaled({j: 0.0 for j in drop}))[target])

    def without_windows(drop: Sequence[int]) -> float:
        return float(model.probabilities(model.without_windows(drop))[target])

    def with_concepts(keep: Sequence[int]) -> float:
        return float(model.probabilities(model.scaled({j: 0.0 for j in range(c) if j not in set(keep)}))[target])

    out = {"p": p0, "concepts": c, "windows": len(model.windows), "ig_gap": abs(ig.gap) / max(abs(ig.total), 1e-9)}
    out["concept_deletion"] = area(curve(without_concepts, by_concept), p0)
    # The other attribution the view shows: each concept's own removal effect (occlusion), most harmful first.
    by_removal = np.argsort([without_concepts([j]) for j in range(c)], kind="stable")
    out["concept_deletion_by_removal"] = area(curve(without_concepts, by_removal), p0)
    out["concept_deletion_random"] = random_area(without_concepts, c, p0, orders, rng)
    out["window_deletion"] = area(curve(without_windows, by_window), p0)
    out["window_deletion_random"] = random_area(without_windows, len(model.windows), p0, orders, rng)
    out["concept_insertion"] = area(curve(with_concepts, by_concept), p0)
    out["concept_insertion_random"] = random_area(with_concepts, c, p0, orders, rng)
    return out


def table(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per family and overall: rows, mean areas, and how many rows beat random on each curve."""
    fams: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        fams["all" if r["p"] >= MIN_P else f"p<{MIN_P}"].append(r)
        if r["p"] >= MIN_P:
            fams[r["family"]].append(r)
    out = {}
    for fam, rs in sorted(fams.items(), key=lambda kv: (kv[0] != "all", kv[0])):
        with_concepts = [r for r in rs if r["concepts"] >= 2]
        with_windows = [r for r in rs if r["windows"] >= 2]
        out[fam] = {
            "n": len(rs),
            "concept_deletion": float(np.mean([r["concept_deletion"] for r in with_concepts] or [np.nan])),
            "concept_deletion_random": float(np.mean([r["concept_deletion_random"] for r in with_concepts] or [np.nan])),
            "concept_deletion_below_random": sum(r["concept_deletion"] < r["concept_deletion_random"] for r in with_concepts),
            "removal_order_below_random": sum(r["concept_deletion_by_removal"] < r["concept_deletion_random"] for r in with_concepts),
            "with_2_concepts": len(with_concepts),
            "window_deletion": float(np.mean([r["window_deletion"] for r in with_windows] or [np.nan])),
            "window_deletion_random": float(np.mean([r["window_deletion_random"] for r in with_windows] or [np.nan])),
            "window_deletion_below_random": sum(r["window_deletion"] < r["window_deletion_random"] for r in with_windows),
            "with_2_windows": len(with_windows),
            "concept_insertion": float(np.mean([r["concept_insertion"] for r in with_concepts] or [np.nan])),
            "concept_insertion_random": float(np.mean([r["concept_insertion_random"] for r in with_concepts] or [np.nan])),
            "concept_insertion_above_random": sum(r["concept_insertion"] > r["concept_insertion_random"] for r in with_concepts),
            "max_ig_gap": float(max((r["ig_gap"] for r in rs), default=0.0)),
        }
    return out


def print_table(t: dict[str, dict[str, float]]) -> None:
    print(f"{'family':<14}{'n':>4}  {'concept deletion (below random)':<34}{'window deletion (below random)':<34}{'concept insertion (above random)':<34}{'IG gap':>8}")
    for fam, r in t.items():
        cd = f"{r['concept_deletion']:.3f} vs {r['concept_deletion_random']:.3f} ({r['concept_deletion_below_random']}/{r['with_2_concepts']})"
        wd = f"{r['window_deletion']:.3f} vs {r['window_deletion_random']:.3f} ({r['window_deletion_below_random']}/{r['with_2_windows']})"
        ci = f"{r['concept_insertion']:.3f} vs {r['concept_insertion_random']:.3f} ({r['concept_insertion_above_random']}/{r['with_2_concepts']})"
        print(f"{fam:<14}{r['n']:>4}  {cd:<34}{wd:<34}{ci:<34}{r['max_ig_gap']:>8.1e}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    devset.add_arguments(ap)
    ap.add_argument("--random-orders", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "faithfulness.json"))
    args = ap.parse_args(argv)

    import vidsense
    from vidsense.concepts.bottleneck import AnswerModel, explain_answer

    rows = devset.from_arguments(args)
    print(devset.summary(rows))
    rng = np.random.default_rng(args.seed)
    out, classify_s, explain_s = [], [], []
    with vidsense.Pipeline() as pipe:
        fused = pipe.reasoner.fused_method()
        for r in rows:
            labels = vidsense.load_labels(r.labelset)
            tl = pipe.describe(r.path)
            t0 = time.perf_counter()
            pred = pipe.classify_timeline(tl, labels)
            t1 = time.perf_counter()
            model = AnswerModel.build(fused, tl, labels)
            explain_answer(model, pred)
            t2 = time.perf_counter()
            classify_s.append(t1 - t0)
            explain_s.append(t2 - t0)
            row = evaluate(model, model.label_index(pred.label), args.random_orders, rng)
            out.append({"path": str(r.path), "family": "doubt" if r.doubt else r.family, "label": pred.label, "truth": r.label, **row})
    t = table(out)
    print(f"\nthe answering model explaining the default route's answer; areas relative to p(answer); rows with p(answer) >= {MIN_P}")
    print_table(t)
    ratio = float(np.sum(explain_s) / np.sum(classify_s))
    print(f"\ncached timeline: classify {np.mean(classify_s) * 1000:.1f} ms, classify + explain (answering model) {np.mean(explain_s) * 1000:.1f} ms per row ({ratio:.2f}x)")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": out, "table": t, "classify_s": float(np.mean(classify_s)), "explain_s": float(np.mean(explain_s))}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
