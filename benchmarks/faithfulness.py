"""Faithfulness of the concept explanations: agreement with the answer and deletion curves.

For each labelled video the product's default route answers, and the concept
model explains that answer (the label the user got). Reported per video:

- **agreement**: the concept model's own top-1 is the returned label (then the
  explanation is of a model that gave the same answer), and the returned label's
  rank and probability under the concept model;
- **deletion AUCs**: remove windows (zeroed: an empty window) or concepts
  (channel set to 0) one at a time, in the order the explanation ranks them,
  and track the concept model's probability of the explained label. A faithful
  ranking makes it fall fast, so the area under the curve (mean probability over
  the deletion steps, relative to the undeleted probability) is lower than for a
  random order (mean over ``--random-orders`` permutations);
- **time**: classifying the timeline vs classifying and explaining it.

    python benchmarks/faithfulness.py                                  # the labelled eval set (benchmarks/eval_set.py)
    python benchmarks/faithfulness.py --clips a.mp4 b.mp4 --labels hmdb51
    python benchmarks/faithfulness.py --text-only                      # the concept model before evidence concepts

Writes ``benchmarks/results/faithfulness.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

import vidsense
from vidsense.concepts.activations import concept_activations
from vidsense.concepts.explanation import ExplainOptions
from vidsense.services.timeline import Timeline

SHARED_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
EVAL_MANIFEST = Path.home() / ".cache" / "vidsense" / "eval-set" / "manifest.csv"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class VideoResult:
    """Agreement, deletion AUCs and timings of one labelled video."""

    video: str
    label_set: str
    windows: int
    truth: str
    returned: str
    route: str
    concept_top1: str
    agrees: bool
    returned_rank: int
    returned_probability: float
    window_auc_attributed: float
    window_auc_random: float
    concept_auc_attributed: float
    concept_auc_random: float
    classify_s: float
    explain_s: float


# Below this probability of the explained label there is no curve to measure (the ratio
# to a base of 1e-20 is noise): such a video counts in agreement, not in the AUC means.
MIN_BASE = 0.01


def deletion_auc(probability: Callable[[Sequence[int]], float], order: Sequence[int]) -> float:
    """Mean probability after removing the first 0, 1, ..., len(order) items of ``order``, relative to
    the probability with nothing removed (so videos with confident and unconfident predictions weigh the same);
    NaN when the probability with nothing removed is under :data:`MIN_BASE`."""
    base = probability([])
    if base < MIN_BASE:
        return float("nan")
    return float(np.mean([probability(order[:i]) for i in range(len(order) + 1)]) / base)


def evaluate(pipe: vidsense.Pipeline, name: str, timeline: Timeline, labels: vidsense.LabelSet, truth: str, random_orders: int, max_concepts: int) -> VideoResult:
    """Answer with the default route, explain that answer, and measure the explanation."""
    t0 = time.perf_counter()
    pred = pipe.classify_timeline(timeline, labels)
    classify_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    expl = pipe.concepts.explain(timeline, labels, prediction=pred, options=ExplainOptions(top_concepts=max_concepts))
    explain_s = time.perf_counter() - t0 + classify_s

    cm = pipe.concepts.model_for(labels)
    model, k = cm.model, list(cm.card.labels).index(pred.label)
    x = torch.from_numpy(concept_activations(timeline, cm.bank, pipe.concepts.encoder, cache=pipe.concepts.cache).matrix).unsqueeze(0)

    @torch.no_grad()
    def p_without_windows(drop: Sequence[int]) -> float:
        xi = x.clone()
        xi[0, list(drop)] = 0.0
        return float(torch.softmax(model(xi).logits[0], dim=0)[k])

    @torch.no_grad()
    def p_without_concepts(drop: Sequence[int]) -> float:
        return float(torch.softmax(model(x, concept_scale={j: 0.0 for j in drop}).logits[0], dim=0)[k])

    rng = np.random.default_rng(0)
    t = int(x.shape[1])
    by_importance = [int(i) for i in np.argsort(-np.asarray(expl.local.time_importance))]
    concept_order = [c.concept for c in expl.global_.concepts]
    n_c = len(concept_order)
    ranking = [c.label for c in expl.prediction.top_k]
    with torch.no_grad():
        probs = torch.softmax(model(x).logits[0], dim=0)
    order = torch.argsort(probs, descending=True).tolist()
    return VideoResult(
        video=name,
        label_set=labels.name,
        windows=t,
        truth=truth,
        returned=pred.label,
        route=pred.route or pred.reasoner,
        concept_top1=ranking[0],
        agrees=ranking[0] == pred.label,
        returned_rank=order.index(k) + 1,
        returned_probability=round(float(probs[k]), 4),
        window_auc_attributed=deletion_auc(p_without_windows, by_importance),
        window_auc_random=statistics.mean(deletion_auc(p_without_windows, [int(i) for i in rng.permutation(t)]) for _ in range(random_orders)),
        concept_auc_attributed=deletion_auc(p_without_concepts, concept_order) if n_c else float("nan"),
        concept_auc_random=statistics.mean(
            deletion_auc(p_without_concepts, [int(j) for j in rng.choice(len(cm.bank), size=n_c, replace=False)]) for _ in range(random_orders)
        ) if n_c else float("nan"),
        classify_s=round(classify_s, 4),
        explain_s=round(explain_s, 4),
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", default=str(EVAL_MANIFEST), help="labelled CSV path,label,labelset (default: the eval set)")
    ap.add_argument("--clips", nargs="*", help="unlabelled videos instead of a manifest (with --labels)")
    ap.add_argument("--labels", default="ucf101", help="label set of --clips")
    ap.add_argument("--text-only", action="store_true", help="the concept model without evidence concepts (as before them)")
    ap.add_argument("--random-orders", type=int, default=20)
    ap.add_argument("--max-concepts", type=int, default=20, help="concepts deleted per curve")
    ap.add_argument("--out", default=str(RESULTS / "faithfulness.json"))
    args = ap.parse_args(argv)

    pipe = vidsense.Pipeline(concept_evidence=not args.text_only)
    rows: list[tuple[Path, str, str]] = []
    if args.clips:
        rows = [(Path(c), "", args.labels) for c in args.clips]
    else:
        with open(args.manifest, newline="", encoding="utf-8") as f:
            rows = [(Path(r["path"]), r["label"], r.get("labelset") or args.labels) for r in csv.DictReader(f)]
    results = []
    for path, truth, labels in rows:
        timeline = pipe.describe(path)
        results.append(evaluate(pipe, path.name, timeline, vidsense.load_labels(labels), truth, args.random_orders, args.max_concepts))

    head = (f"{'video':22s} {'set':11s} {'T':>3s} {'returned':20s} {'concept top-1':20s} {'rank':>4s} {'p':>5s} | "
            f"{'win attr':>8s} {'win rnd':>7s} | {'con attr':>8s} {'con rnd':>7s} | {'cls s':>6s} {'expl s':>6s}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.video:22.22s} {r.label_set:11.11s} {r.windows:3d} {r.returned:20.20s} {r.concept_top1:20.20s} {r.returned_rank:4d} {r.returned_probability:5.2f} | "
            f"{r.window_auc_attributed:8.3f} {r.window_auc_random:7.3f} | {r.concept_auc_attributed:8.3f} {r.concept_auc_random:7.3f} | {r.classify_s:6.3f} {r.explain_s:6.3f}"
        )
    keys = ("window_auc_attributed", "window_auc_random", "concept_auc_attributed", "concept_auc_random", "classify_s", "explain_s")
    summary = {key: float(np.nanmean([getattr(r, key) for r in results])) for key in keys} if results else {}
    if summary:
        summary["videos_with_curves"] = sum(r.returned_probability >= MIN_BASE for r in results)
    per_set = {}
    for r in results:
        per_set.setdefault(r.label_set, []).append(r)
    agreement = {name: round(sum(r.agrees for r in rs) / len(rs), 4) for name, rs in per_set.items()}
    if summary:
        summary["agreement"] = round(sum(r.agrees for r in results) / len(results), 4)
        summary["explain_over_classify"] = round(statistics.median(r.explain_s / max(r.classify_s, 1e-6) for r in results), 2)
        print(f"mean over the {summary['videos_with_curves']} videos where the concept model gives the answer p >= {MIN_BASE}: window AUC {summary['window_auc_attributed']:.3f} vs random {summary['window_auc_random']:.3f}; "
              f"concept AUC {summary['concept_auc_attributed']:.3f} vs random {summary['concept_auc_random']:.3f}; "
              f"classify {summary['classify_s']:.3f} s, explain {summary['explain_s']:.3f} s (median ratio {summary['explain_over_classify']:.1f}x)")
        print(f"agreement (concept top-1 = returned label): {summary['agreement']:.3f} overall; " + ", ".join(f"{k} {v:.3f}" for k, v in agreement.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "manifest": None if args.clips else args.manifest,
        "evidence_concepts": not args.text_only,
        "random_orders": args.random_orders,
        "note": "AUC = mean explained-label probability over deletion steps / probability before deletion; lower than random = faithful",
        "videos": [asdict(r) for r in results],
        "agreement_per_label_set": agreement,
        "mean": summary,
    }, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
