"""How much fitted fusion weights buy, measured without testing on what they were fitted on.

    .venv/bin/python benchmarks/fusion_cv.py --manifest ~/.cache/vidsense/eval-set/manifest.csv

Each video's evidence is computed once. Then, leaving one video out at a time
(all its rows, whatever their label set), the weights are fitted on the other
videos and the held-out rows are classified with them. Prints top-1 / top-5 for
the bundled weights, the leave-one-video-out fitted weights and each source
alone, the weights fitted on everything, and writes ``benchmarks/results/fusion_cv.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import vidsense
from vidsense.agents.fusion import FitExample, FusionWeights, fit_weights, fuse

RESULTS = Path(__file__).resolve().parent / "results"


def _hit(scores, weights: FusionWeights, target: int, n_labels: int) -> tuple[bool, bool]:
    z = fuse(scores, weights, n_labels)
    # Ties share their mean rank: a source with nothing to say (all labels equal) ranks the truth in the middle.
    rank = int((z > z[target]).sum()) + 1 + (int((z == z[target]).sum()) - 1) / 2
    return rank == 1, rank <= 5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--l2", type=float, default=0.1)
    ap.add_argument("--out", default=str(RESULTS / "fusion_cv.json"))
    args = ap.parse_args(argv)

    pipe = vidsense.Pipeline()
    fused = pipe.reasoner.fused_method()
    rows = []  # (video, FitExample, n_labels)
    for r in vidsense.read_manifest(args.manifest):
        ls = vidsense.load_labels(r.labelset)
        scores, _ = fused.sources(pipe.describe(r.path), ls)
        rows.append((str(r.path), FitExample(tuple(scores), ls.index(r.label)), len(ls)))
    videos = sorted({v for v, _, _ in rows})
    default = FusionWeights()
    sources = sorted({s.source for _, ex, _ in rows for s in ex.scores})

    def accuracy(pick) -> dict[str, float]:
        hits = [_hit(ex.scores, pick(v), ex.target, n) for v, ex, n in rows]
        return {"top1": round(float(np.mean([h[0] for h in hits])), 3), "top5": round(float(np.mean([h[1] for h in hits])), 3)}

    fold = {v: fit_weights([ex for u, ex, _ in rows if u != v], default, l2=args.l2) for v in videos}
    table = {
        "bundled": accuracy(lambda v: default),
        "fitted (leave one video out)": accuracy(lambda v: fold[v]),
    }
    for s in sources:
        table[f"{s} alone"] = accuracy(lambda v, s=s: FusionWeights({s: 1.0}))
    everything = fit_weights([ex for _, ex, _ in rows], default, l2=args.l2, fitted_on=Path(args.manifest).name)
    print(f"{len(rows)} rows from {len(videos)} videos")
    for name, acc in table.items():
        print(f"{name:<32} top1={acc['top1']:.3f} top5={acc['top5']:.3f}")
    print("fitted on all rows:", json.dumps(dict(everything.weights)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"manifest": args.manifest, "rows": len(rows), "videos": len(videos), "accuracy": table, "fitted": everything.to_dict()}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
