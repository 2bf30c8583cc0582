"""Accuracy and time of each reasoning route over the development set or a labelled manifest.

    .venv/bin/python benchmarks/routes.py                                   # every route on the development set, per family
    .venv/bin/python benchmarks/routes.py --check benchmarks/baseline.json  # the regression gate: the default route only
    .venv/bin/python benchmarks/routes.py --save-baseline benchmarks/baseline.json
    .venv/bin/python benchmarks/routes.py --manifest ~/.cache/vidsense/eval-set/manifest.csv
    .venv/bin/python benchmarks/routes.py --manifest m.csv --routes fused cascade --save   # store the cost table for --budget
    .venv/bin/python benchmarks/routes.py --manifest m.csv --routes fused cascade --cascade-margin 0.3   # and the margin sweep up to 0.3
    .venv/bin/python benchmarks/routes.py --routes cascade --action-rate 0 --out /tmp/spread.json   # a perception variant (benchmarks/variants_cv.py)

Every video is described once (the perception cache serves the later routes);
then each route classifies every row. Prints one line per route (top-1, top-5,
mean rank, shortlist recall, mean reasoning seconds, share of rows the cascade
sent to the LLM, mean prompt tokens) and writes ``benchmarks/results/routes.json``.
Without ``--manifest`` the rows are the development set (``benchmarks/devset.py``: the shared
development clips and ``benchmarks/eval_set.py``'s) and each route also prints top-1 / top-5 per
family, and the rows of UCF-101, HMDB-51 and Kinetics-400 again against each set's plain-words
variant (``plain <set>``, ``all plain``; ``benchmarks/plain_labels.py``). ``--check`` and ``--save-baseline`` run the default route (the settings' reasoner) on
the development set only: see ``benchmarks/gate.py``. Never point this at the holdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import devset
import gate

import vidsense

RESULTS = Path(__file__).resolve().parent / "results"
ROUTES = ("embedding", "fused", "cascade", "llm", "concepts")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", default=None, help="CSV path,label[,labelset] (default: the development set)")
    devset.add_arguments(ap)
    ap.add_argument("--labels", default=None, help="label set for rows without a labelset column")
    ap.add_argument("--routes", nargs="+", default=list(ROUTES), choices=ROUTES)
    ap.add_argument("--out", default=str(RESULTS / "routes.json"))
    ap.add_argument("--cascade-margin", type=float, default=None, help="cascade_margin setting for the cascade route (default: the settings')")
    ap.add_argument("--save", action="store_true", help="store the measured cost table in $VIDSENSE_HOME/routes.json for --budget")
    ap.add_argument("--check", default=None, metavar="BASELINE.json", help="run the default route on the development set; exit 1 when a family fell")
    ap.add_argument("--save-baseline", default=None, metavar="BASELINE.json", help="run the default route on the development set and write the baseline")
    ap.add_argument("--action-rate", type=float, default=None, metavar="FPS",
                    help="the action recogniser reads its clips at this rate (0: spread over each group; default: the shipped 25)")
    ap.add_argument("--action-group-s", type=float, default=None, metavar="S", help="the longest group of windows one action clip covers (default 10)")
    args = ap.parse_args(argv)
    if args.action_rate is not None or args.action_group_s is not None:
        if args.check or args.save_baseline:
            ap.error("--check and --save-baseline measure the shipped recogniser: leave out --action-rate and --action-group-s")
        # A variant to compare (benchmarks/variants_cv.py); its observations are cached under their own key.
        from vidsense.services.perception.action import kinetics

        if args.action_rate is not None:
            kinetics.CLIP_RATE = args.action_rate or None
        if args.action_group_s is not None:
            kinetics.CLIP_GROUP_S = args.action_group_s

    pipe = vidsense.Pipeline(cascade_margin=args.cascade_margin)
    dev: list[devset.DevRow] = []
    if args.check or args.save_baseline or not args.manifest:
        if args.manifest:
            ap.error("--check and --save-baseline read the development set, not --manifest")
        dev = devset.from_arguments(args)
        # UCF-101, HMDB-51 and Kinetics-400 rows again, against their plain-words variants.
        dev += devset.plain_rows(dev)
        args.manifest = str(devset.write_manifest(dev, RESULTS / "devset_manifest.csv"))
    if args.check or args.save_baseline:
        args.routes = [pipe.settings.reasoner]
    timelines: dict[str, vidsense.Timeline] = {}

    def describe(video: str, modalities=None) -> vidsense.Timeline:
        if video not in timelines:
            timelines[video] = pipe.describe(video, modalities)
        return timelines[video]

    from vidsense.agents.evaluate import evaluate

    rows, reports, evals = [], {}, {}
    for route in args.routes:
        t0 = time.perf_counter()
        report = evaluate(args.manifest, describe, lambda tl, ls, route=route, **kw: pipe.reasoner.classify(tl, ls, method=route, **kw), args.labels,
                          name=route, shortlist_size=pipe.settings.shortlist)
        wall = time.perf_counter() - t0
        ok = [r for r in report.rows if not r.error]
        reasoning = [r.latency.get("reasoning", 0.0) for r in ok]
        tokens = [r.latency.get("prompt_tokens", 0.0) for r in ok]
        llm_rows = sum(1 for r in ok if (r.route or route) == "llm")
        row = {
            "route": route,
            "n": report.overall.n,
            "errors": report.overall.errors,
            "top1": report.top1,
            "top5": report.top5,
            "mean_rank": report.overall.mean_rank,
            "shortlist_recall": report.overall.shortlist_recall,
            "reasoning_s": round(sum(reasoning) / len(reasoning), 3) if reasoning else None,
            "llm_share": round(llm_rows / len(ok), 3) if ok else None,
            "wall_s": round(wall, 1),
            "per_labelset": {p.labelset: {"n": p.score.n, "top1": p.score.top1, "top5": p.score.top5} for p in report.per_labelset},
            "prompt_tokens": round(sum(tokens) / len(tokens), 1) if tokens else 0.0,
        }
        if dev:
            # evaluate() numbers rows by their manifest line: the header is line 1.
            ranks = {r.line: r.rank for r in report.rows if not r.error}
            row["ranks"] = [ranks.get(i + 2) for i in range(len(dev))]
            row["families"] = {k: vars(v) for k, v in gate.tally(dev, row["ranks"]).items()}
        rows.append(row)
        reports[route] = report.to_dict()
        evals[route] = report
        print(f"{route:<10} n={row['n']:<3} top1={row['top1']:.3f} top5={row['top5']:.3f} mean_rank={row['mean_rank']} "
              f"recall={row['shortlist_recall']:.3f} reasoning={row['reasoning_s']} s llm_share={row['llm_share']} wall={row['wall_s']} s", flush=True)
        if dev:
            print(gate.format_tally(gate.tally(dev, row["ranks"])), flush=True)
            pairs = gate.named_and_plain(dev, row["ranks"])
            row["named_and_plain"] = {n: {"named": vars(a), "plain": vars(b)} for n, (a, b) in pairs.items()}
            for n, (a, b) in pairs.items():
                print(f"{n} rows, names -> plain words: top1 {a.top1} -> {b.top1} / {a.n}, top5 {a.top5} -> {b.top5} / {a.n}", flush=True)
    sweep = margin_sweep(pipe, timelines, evals["fused"], evals["cascade"]) if {"fused", "cascade"} <= set(evals) else []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"manifest": args.manifest, "routes": rows, "margin_sweep": sweep, "reports": reports}, indent=1))
    print(f"wrote {out}")
    if args.save_baseline or args.check:
        ranks = rows[0]["ranks"]
        tallies = gate.tally(dev, ranks)
        if args.save_baseline:
            about = {"route": args.routes[0], "cascade_margin": pipe.settings.cascade_margin, "reasoning_s": rows[0]["reasoning_s"],
                     "made_by": "benchmarks/routes.py --save-baseline"}
            print(f"baseline: {gate.save(Path(args.save_baseline), tallies, dev, ranks, about)}")
        if args.check:
            failures = gate.check(Path(args.check), tallies, dev, ranks)
            for f in failures:
                print(f"REGRESSION {f}")
            print("gate: " + ("FAIL" if failures else f"pass (no family fell by more than {gate.SLACK} clip)"))
            if failures:
                return 1
    if args.save:
        from vidsense.agents.routing import RouteCost, save_table

        costs = [RouteCost(r["route"], r["top1"], r["reasoning_s"] or 0.0, Path(args.manifest).name) for r in rows if r["route"] != "embedding"]
        print(f"cost table: {save_table(pipe.settings.home, costs)}")
    return 0


def margin_sweep(pipe, timelines, fused, cascade, margins=(0.0, 0.05, 0.1, 0.15, 0.2, 0.3)) -> list[dict]:
    """What the cascade would score at smaller margins, from one run at the largest.

    A row goes to the LLM when its fused top-1 leads the second by less than the
    margin, so below the run's margin a row takes the cascade's answer where its
    fused margin is under the threshold and the fused answer elsewhere. Prints
    one line per margin (top-1, top-5, share sent to the LLM).
    """
    from vidsense.agents.labels import load_labels

    answers = {(r.path, r.labelset, r.label): r for r in cascade.rows if not r.error}
    out = []
    lines = []
    for f in fused.rows:
        c = answers.get((f.path, f.labelset, f.label))
        if f.error or c is None:
            continue
        top = pipe.reasoner.classify(timelines[str(f.path)], load_labels(f.labelset), method="fused", top_k=2).top_k
        lines.append((top[0].score - top[1].score, f.rank, c.rank))
    for m in (x for x in margins if x <= pipe.settings.cascade_margin):
        ranks = [c if gap < m else f for gap, f, c in lines]
        n = max(len(ranks), 1)
        out.append({"margin": m, "top1": sum(r == 1 for r in ranks) / n, "top5": sum(r is not None and r <= 5 for r in ranks) / n,
                    "llm_share": sum(gap < m for gap, _, _ in lines) / n})
        print(f"cascade margin {m:<5} top1={out[-1]['top1']:.3f} top5={out[-1]['top5']:.3f} llm_share={out[-1]['llm_share']:.2f}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
