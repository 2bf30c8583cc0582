"""Reasoning latency: one timeline classified against UCF-101, Kinetics-400 and Kinetics-700.

The same timeline goes through the LLM reasoner for each label set and each
strategy (``score``: log-likelihood of every shortlisted label with the
prompt's KV cache reused; ``grammar``: one generation constrained to the
candidates). Targets: Kinetics-700 costs at most 2x UCF-101 (the shortlist
keeps the LLM's work constant), and one classification over a shortlist of 20
takes under 3 s with the bundled 1.5B model on 2 cores.

Each configuration runs ``--repeats`` times after one warm-up call, so the
label-embedding cache and model loading are not counted; the calibration prior
is cached per candidate list, so repeats of the same timeline measure the
steady state of a video whose shortlist was seen before, and the first call
(reported separately) the cold case.

    python benchmarks/reasoning.py                          # the bundled example clip
    python benchmarks/reasoning.py --timeline t.json --repeats 3
    python benchmarks/reasoning.py --model smollm2-135m     # plumbing check

Writes ``benchmarks/results/reasoning.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import vidsense
from vidsense import Timeline, load_labels

RESULTS = Path(__file__).resolve().parent / "results"
LABELSETS = ("ucf101", "kinetics400", "kinetics700")
STRATEGIES = ("score", "grammar")


@dataclass(frozen=True)
class Row:
    """Latency of one (label set, strategy)."""

    labelset: str
    strategy: str
    hints: bool
    label: str
    first_s: float
    median_s: float
    shortlist_s: float
    prompt_s: float
    scoring_s: float
    calibration_s: float
    generation_s: float
    prompt_tokens: int
    prompt_tokens_reused: int
    prompt_tokens_per_s: float
    candidates: int


def _timeline(args, pipe: vidsense.Pipeline) -> Timeline:
    if args.timeline:
        return Timeline.from_json(Path(args.timeline).read_text(encoding="utf-8"))
    return pipe.describe(args.video or vidsense.example_video())


def run(args) -> list[Row]:
    pipe = vidsense.Pipeline(llm_model=args.model, llm_threads=args.threads, shortlist=args.shortlist)
    tl = _timeline(args, pipe)
    rows = []
    for strategy in args.strategies:
        reasoner = pipe.reasoner.llm_method(strategy=strategy, hints=not args.no_hints)
        for name in args.labelsets:
            ls = load_labels(name)
            reasoner.descriptions(ls)
            reasoner.embedding.ranking(tl, ls)  # label embeddings cached, as in a long-running process
            t0 = time.perf_counter()
            first = reasoner.classify(tl, ls)
            first_s = time.perf_counter() - t0
            times, preds = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                preds.append(reasoner.classify(tl, ls))
                times.append(time.perf_counter() - t0)
            st = first.stats
            new_tokens = st.get("prompt_tokens", 0) - st.get("prompt_tokens_reused", 0)
            rows.append(
                Row(
                    labelset=name,
                    strategy=strategy,
                    hints=not args.no_hints,
                    label=first.label,
                    first_s=round(first_s, 3),
                    median_s=round(statistics.median(times), 3) if times else round(first_s, 3),
                    shortlist_s=round(st.get("shortlist_s", 0.0), 3),
                    prompt_s=round(st.get("prompt_s", 0.0), 3),
                    scoring_s=round(st.get("scoring_s", 0.0), 3),
                    calibration_s=round(st.get("calibration_s", 0.0), 3),
                    generation_s=round(st.get("generation_s", 0.0), 3),
                    prompt_tokens=int(st.get("prompt_tokens", 0)),
                    prompt_tokens_reused=int(st.get("prompt_tokens_reused", 0)),
                    prompt_tokens_per_s=round(new_tokens / st["prompt_s"], 1) if st.get("prompt_s") else 0.0,
                    candidates=int(st.get("candidates", 0)),
                )
            )
            print(_line(rows[-1]), flush=True)
    return rows


def _line(r: Row) -> str:
    return (
        f"{r.labelset:<12} {r.strategy:<8} hints={'on ' if r.hints else 'off'} first={r.first_s:6.2f}s median={r.median_s:6.2f}s  shortlist={r.shortlist_s:5.2f} "
        f"prompt={r.prompt_s:5.2f} scoring={r.scoring_s:5.2f} calib={r.calibration_s:5.2f} gen={r.generation_s:5.2f}  "
        f"tokens={r.prompt_tokens} (reused {r.prompt_tokens_reused}, {r.prompt_tokens_per_s} tok/s)  -> {r.label}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=None)
    parser.add_argument("--timeline", default=None, help="a Timeline JSON (skips perception)")
    parser.add_argument("--model", default=None, help="LLM (default: the profile's)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--shortlist", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--labelsets", nargs="+", default=list(LABELSETS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--no-hints", action="store_true", help="leave label descriptions out of the prompt")
    parser.add_argument("--out", type=Path, default=RESULTS / "reasoning.json")
    args = parser.parse_args(argv)
    rows = run(args)
    by = {(r.labelset, r.strategy): r for r in rows}
    ratios = {
        s: round(by[("kinetics700", s)].median_s / by[("ucf101", s)].median_s, 2)
        for s in args.strategies
        if ("kinetics700", s) in by and ("ucf101", s) in by and by[("ucf101", s)].median_s
    }
    print("K700 / UCF-101 latency: " + ", ".join(f"{s} {v}x" for s, v in ratios.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": [asdict(r) for r in rows], "k700_over_ucf101": ratios, "settings": vars(args) | {"out": str(args.out)}}, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
