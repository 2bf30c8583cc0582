"""End to end with warm models: one video classified on each route, perception included.

    .venv/bin/python benchmarks/end_to_end.py [--video PATH] [--routes cascade fused llm] [--labelsets ucf101 kinetics700]

Models load once (a first run on the video, not counted); then, for each label set and route,
the video is classified ``--repeats`` times with the perception cache off, so every run pays
for decoding and perception as a new video would. Reported per run: total seconds,
perception, reasoning, which route answered, prompt tokens. Issue #11's targets: the default
route under 8 s on the bundled bikes clip, reasoning under 0.5 s on the fast route and under
4 s when the LLM runs, Kinetics-700 at most 2x UCF-101. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default=None, help="default: the bundled example clip (bikes.mp4)")
    ap.add_argument("--routes", nargs="+", default=["cascade", "fused", "llm"])
    ap.add_argument("--labelsets", nargs="+", default=["ucf101", "kinetics700"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cascade-margin", type=float, default=None, help="cascade_margin setting (1.0 sends every video to the LLM stage)")
    ap.add_argument("--out", default=str(RESULTS / "end_to_end.json"))
    args = ap.parse_args(argv)

    import vidsense

    video = args.video or str(vidsense.example_video())
    pipe = vidsense.Pipeline(cache=False, cascade_margin=args.cascade_margin)
    t0 = time.perf_counter()
    for route in args.routes:
        for labelset in args.labelsets:
            pipe.classify(video, labelset, reasoner=route)  # loads every model and label index
    load_s = time.perf_counter() - t0
    rows = []
    for labelset in args.labelsets:
        for route in args.routes:
            runs = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                res = pipe.classify(video, labelset, reasoner=route)
                total = time.perf_counter() - t
                stats = res.prediction.stats if res.prediction else {}
                runs.append(
                    {
                        "total_s": total,
                        "perception_s": res.timings.get("perception", 0.0),
                        "reasoning_s": res.timings.get("reasoning", 0.0),
                        "route": res.route or route,
                        "label": res.label,
                        "prompt_tokens": stats.get("prompt_tokens", 0.0),
                    }
                )
            rows.append({"labelset": labelset, "route": route, "runs": runs, **{k: statistics.median(r[k] for r in runs) for k in ("total_s", "perception_s", "reasoning_s", "prompt_tokens")}})
            print(f"{labelset:<12} {route:<8} total={rows[-1]['total_s']:.2f} s perception={rows[-1]['perception_s']:.2f} s "
                  f"reasoning={rows[-1]['reasoning_s']:.2f} s answered by {runs[-1]['route']} -> {runs[-1]['label']} "
                  f"prompt tokens {rows[-1]['prompt_tokens']:.0f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"video": video, "cpus": os.cpu_count(), "cascade_margin": pipe.settings.cascade_margin, "load_s": load_s, "rows": rows}, indent=1))
    print(f"models and label indexes loaded in {load_s:.1f} s; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
