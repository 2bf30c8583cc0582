"""Calibration of the zero-shot concept model and Integrated Gradients' convergence, on a labelled set.

    .venv/bin/python benchmarks/concept_calibration.py                 # the labelled eval set (benchmarks/eval_set.py)
    .venv/bin/python benchmarks/concept_calibration.py --manifest m.csv --labels ucf101

The concept model's class scores are taken at temperature 1 (the concept room's
``temperature`` setting undone), then for each temperature the table gives the mean
negative log-likelihood of the true label, the mean top-1 probability and the top-1
accuracy (a calibrated model's mean top-1 probability matches its accuracy; the
temperature does not change the ranking). Then Integrated Gradients of the returned
label runs at several step counts: the completeness gap (Captum's convergence delta)
relative to the explained score difference, and the seconds it took. These are the
measurements behind ``ZERO_SHOT_TEMPERATURE`` and ``ExplainOptions.ig_steps``.
Writes ``benchmarks/results/concept_calibration.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

import vidsense
from vidsense.concepts.activations import concept_activations
from vidsense.concepts.attribution import integrated_gradients
from vidsense.services.schema import read_manifest

RESULTS = Path(__file__).resolve().parent / "results"
EVAL_MANIFEST = Path.home() / ".cache" / "vidsense" / "eval-set" / "manifest.csv"
TEMPERATURES = (1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 10.0, 20.0)
IG_STEPS = (16, 32, 64)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", default=str(EVAL_MANIFEST), help="labelled CSV path,label[,labelset] (default: the eval set)")
    ap.add_argument("--labels", default=None, help="label set of rows without a labelset column")
    ap.add_argument("--out", default=str(RESULTS / "concept_calibration.json"))
    args = ap.parse_args(argv)

    pipe = vidsense.Pipeline()
    room = pipe.concepts
    logits, truths, gaps = [], [], {n: [] for n in IG_STEPS}
    seconds = {n: [] for n in IG_STEPS}
    for row in read_manifest(args.manifest, args.labels):
        timeline, labels = pipe.describe(row.path), vidsense.load_labels(row.labelset)
        cm = room.model_for(labels)
        x = torch.from_numpy(concept_activations(timeline, cm.bank, room.encoder, cache=room.cache).matrix).unsqueeze(0)
        with torch.no_grad():
            # Back to temperature 1: the model's scores were divided by the room's temperature.
            logits.append(cm.model(x).logits[0].numpy() * room.config.temperature)
        truths.append(list(cm.card.labels).index(row.label))
        target = list(cm.card.labels).index(pipe.classify_timeline(timeline, labels).label)
        texts, kinds = list(cm.bank.texts), [c.kind for c in cm.bank.concepts]
        for n in IG_STEPS:
            t0 = time.perf_counter()
            ig = integrated_gradients(cm.model, x, target, texts, kinds, n_steps=n)
            seconds[n].append(time.perf_counter() - t0)
            if abs(ig.output_difference) > 1e-6:
                gaps[n].append(abs(ig.convergence_delta) / abs(ig.output_difference))

    calibration = []
    print(f"{'T':>5} {'NLL':>7} {'mean p(top-1)':>14} {'top-1':>6}")
    for t in TEMPERATURES:
        nll, conf, hit = [], [], []
        for z, k in zip(logits, truths):
            logp = z / t - np.logaddexp.reduce(z / t)
            nll.append(-float(logp[k]))
            conf.append(float(np.exp(logp.max())))
            hit.append(int(np.argmax(logp)) == k)
        calibration.append({"temperature": t, "nll": statistics.mean(nll), "mean_top1_probability": statistics.mean(conf), "top1": statistics.mean(hit)})
        print(f"{t:5.1f} {calibration[-1]['nll']:7.3f} {calibration[-1]['mean_top1_probability']:14.3f} {calibration[-1]['top1']:6.3f}")
    convergence = []
    print(f"\n{'IG steps':>8} {'max gap':>8} {'median gap':>11} {'seconds':>8}")
    for n in IG_STEPS:
        convergence.append({"steps": n, "max_gap": max(gaps[n], default=0.0), "median_gap": statistics.median(gaps[n]) if gaps[n] else 0.0, "mean_seconds": statistics.mean(seconds[n])})
        print(f"{n:8d} {convergence[-1]['max_gap']:8.3%} {convergence[-1]['median_gap']:11.3%} {convergence[-1]['mean_seconds']:8.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"manifest": args.manifest, "rows": len(truths), "calibration": calibration, "ig_convergence": convergence}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
