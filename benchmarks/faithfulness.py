"""Faithfulness of the concept explanations: deletion curves.

For each video, remove windows (zeroed: an empty window) or concepts (channel
set to 0) one at a time, in the order the explanation ranks them, and track the
concept model's probability of its predicted class. A faithful ranking makes
the probability fall fast, so the area under the curve (AUC, mean probability
over the deletion steps relative to the undeleted probability) is lower than for a random order (mean over
``--random-orders`` permutations). Also times classification vs. explanation.

    python benchmarks/faithfulness.py                      # the shared real clips
    python benchmarks/faithfulness.py --clips a.mp4 b.mp4 --labels hmdb51
    python benchmarks/faithfulness.py --timelines t1.json  # skip perception

Writes ``benchmarks/results/faithfulness.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

import vidsense
from vidsense.concepts.activations import ActivationCache, activations_by_modality, concept_activations
from vidsense.concepts.bank import ConceptBank
from vidsense.concepts.explain import explain
from vidsense.concepts.motif import MotifModel, load_model
from vidsense.concepts.schema import ExplainOptions
from vidsense.services.embeddings import TextEncoder
from vidsense.services.timeline import Timeline

SHARED_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
DEFAULT_CLIPS = ("bikes.mp4", "cup.mp4", "box.mp4", "single_face.mp4", "carphone_pristine.mp4")
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class VideoResult:
    """Deletion AUCs and timings of one video."""

    video: str
    windows: int
    predicted: str
    probability: float
    window_auc_attributed: float
    window_auc_ig: float
    window_auc_random: float
    concept_auc_attributed: float
    concept_auc_random: float
    classify_s: float
    explain_s: float


def deletion_auc(probability: Callable[[Sequence[int]], float], order: Sequence[int]) -> float:
    """Mean probability after removing the first 0, 1, ..., len(order) items of ``order``, relative to
    the probability with nothing removed (so videos with confident and unconfident predictions weigh the same)."""
    base = probability([]) or 1e-12
    return float(np.mean([probability(order[:i]) for i in range(len(order) + 1)]) / base)


def evaluate(name: str, timeline: Timeline, bank: ConceptBank, model: MotifModel, card, encoder: TextEncoder, cache: ActivationCache, random_orders: int, max_concepts: int) -> VideoResult:
    t0 = time.perf_counter()
    acts = concept_activations(timeline, bank, encoder, cache=cache)
    x = torch.from_numpy(acts.matrix).unsqueeze(0)
    with torch.no_grad():
        probs = torch.softmax(model(x).logits[0], dim=0)
    classify_s = time.perf_counter() - t0
    k = int(probs.argmax())

    t0 = time.perf_counter()
    by_modality = activations_by_modality(timeline, bank, encoder, "without", cache)
    expl = explain(model, card, bank, acts, modality_activations=by_modality, options=ExplainOptions(top_concepts=max_concepts))
    explain_s = time.perf_counter() - t0 + classify_s

    @torch.no_grad()
    def p_without_windows(drop: Sequence[int]) -> float:
        xi = x.clone()
        xi[0, list(drop)] = 0.0
        return float(torch.softmax(model(xi).logits[0], dim=0)[k])

    @torch.no_grad()
    def p_without_concepts(drop: Sequence[int]) -> float:
        return float(torch.softmax(model(x, concept_scale={j: 0.0 for j in drop}).logits[0], dim=0)[k])

    rng = np.random.default_rng(0)
    t = acts.matrix.shape[0]
    by_importance = list(np.argsort(-np.asarray(expl.local.time_importance)))
    ig = expl.attributions.integrated_gradients
    by_ig = list(np.argsort(-np.asarray(ig.by_window))) if ig is not None else by_importance
    concept_order = list(expl.global_.concepts and [c.concept for c in expl.global_.concepts] or [])
    n_c = len(concept_order)
    return VideoResult(
        video=name,
        windows=t,
        predicted=card.labels[k],
        probability=float(probs[k]),
        window_auc_attributed=deletion_auc(p_without_windows, by_importance),
        window_auc_ig=deletion_auc(p_without_windows, by_ig),
        window_auc_random=statistics.mean(deletion_auc(p_without_windows, list(rng.permutation(t))) for _ in range(random_orders)),
        concept_auc_attributed=deletion_auc(p_without_concepts, concept_order) if n_c else float("nan"),
        concept_auc_random=statistics.mean(
            deletion_auc(p_without_concepts, list(rng.choice(len(bank), size=n_c, replace=False))) for _ in range(random_orders)
        ) if n_c else float("nan"),
        classify_s=round(classify_s, 4),
        explain_s=round(explain_s, 4),
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="*", help="videos to perceive (default: short shared clips)")
    ap.add_argument("--timelines", nargs="*", help="timeline JSON files instead of videos")
    ap.add_argument("--labels", default="ucf101", help="label set name")
    ap.add_argument("--model", help="a concept model folder (default: the zero-shot model)")
    ap.add_argument("--random-orders", type=int, default=20)
    ap.add_argument("--max-concepts", type=int, default=20, help="concepts deleted per curve")
    ap.add_argument("--out", default=str(RESULTS / "faithfulness.json"))
    args = ap.parse_args(argv)

    pipe = vidsense.Pipeline()
    label_set = vidsense.load_labels(args.labels)
    # The concept model the product uses (a trained one when saved, else zero-shot weighted by concept specificity).
    concept_model = pipe.concept_model(label_set)
    bank, model, card = concept_model.bank, concept_model.model, concept_model.card
    if args.model:
        model, card = load_model(args.model)
        if (Path(args.model) / "bank.json").is_file():
            bank = ConceptBank.load(Path(args.model) / "bank.json")
        card.check_bank(bank)
    encoder, cache = pipe.concepts.encoder, pipe.concepts.cache

    timelines: list[tuple[str, Timeline]] = []
    for path in args.timelines or []:
        timelines.append((Path(path).name, Timeline.from_json(Path(path).read_text())))
    if not args.timelines:
        clips = [Path(c) for c in args.clips] if args.clips else [SHARED_CLIPS / c for c in DEFAULT_CLIPS if (SHARED_CLIPS / c).exists()]
        for clip in clips:
            t0 = time.perf_counter()
            timelines.append((clip.name, pipe.describe(clip)))
            print(f"perceived {clip.name} in {time.perf_counter() - t0:.1f} s")

    results = [evaluate(n, tl, bank, model, card, encoder, cache, args.random_orders, args.max_concepts) for n, tl in timelines]
    head = f"{'video':24s} {'T':>3s} {'predicted':22s} {'p':>5s} | {'win attr':>8s} {'win IG':>7s} {'win rnd':>7s} | {'con attr':>8s} {'con rnd':>7s} | {'cls s':>6s} {'expl s':>6s}"
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.video:24.24s} {r.windows:3d} {r.predicted:22.22s} {r.probability:5.2f} | {r.window_auc_attributed:8.3f} {r.window_auc_ig:7.3f} "
            f"{r.window_auc_random:7.3f} | {r.concept_auc_attributed:8.3f} {r.concept_auc_random:7.3f} | {r.classify_s:6.3f} {r.explain_s:6.3f}"
        )
    summary = {
        key: float(np.nanmean([getattr(r, key) for r in results]))
        for key in ("window_auc_attributed", "window_auc_ig", "window_auc_random", "concept_auc_attributed", "concept_auc_random", "classify_s", "explain_s")
    } if results else {}
    if summary:
        print(f"{'mean':24s} {'':3s} {'':22s} {'':5s} | {summary['window_auc_attributed']:8.3f} {summary['window_auc_ig']:7.3f} {summary['window_auc_random']:7.3f} | "
              f"{summary['concept_auc_attributed']:8.3f} {summary['concept_auc_random']:7.3f} | {summary['classify_s']:6.3f} {summary['explain_s']:6.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "label_set": label_set.name,
        "bank": {"hash": bank.hash, "generator": bank.generator, "concepts": len(bank)},
        "model": {"trained": card.trained, "seed": card.seed},
        "random_orders": args.random_orders,
        "note": "AUC = mean predicted-class probability over deletion steps / probability before deletion; lower than random = faithful",
        "videos": [asdict(r) for r in results],
        "mean": summary,
    }, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
