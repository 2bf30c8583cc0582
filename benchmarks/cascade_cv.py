"""The cascade's LLM stage measured on the development set, its margin and weight chosen out of fold.

    .venv/bin/python benchmarks/cascade_cv.py                  # ../shared/devset + the eval set (cached timelines)
    .venv/bin/python benchmarks/cascade_cv.py --rerank 8 --k 5

Every row is scored once by the fused route and once by the cascade's LLM stage on the fused top
``--rerank`` candidates (the compact prompt the cascade uses, its cached instruction prefix, and
its time). Then, offline and exactly as :class:`~vidsense.agents.fusion.CascadeReasoner` combines
them, every (margin, LLM weight) of the grid answers every row: the LLM verdict is used only
where the fused top-1 minus top-2 probability is under the margin. The pair is chosen on the
training rows of each fold (leave one family out; k folds by footage, shuffled ``--shuffles`` times), the most top-1 first and
the least LLM time on ties, and scored on the held-out rows. Reasoning seconds per clip count
the LLM stage only on the rows it ran on. Prints per-family top-1 / top-5 for the fused route,
each fixed margin (weight 1) and the out-of-fold choice, says whether the LLM stage may join the
default (top-1 at least the fused route's on every family under every split, above it overall,
at most 3 s of reasoning per clip), and writes ``benchmarks/results/cascade_cv.json``.

The UCF-101, HMDB-51 and Kinetics-400 rows are asked again against each set's plain-words labels
(``devset.plain_rows``): scored, never chosen on (each takes the choice of the fold that held out
its clip's names row), and counted in the verdict as ``fusion_cv.ships`` counts them: no plain
family below the fused route either, and "above overall" on the names rows or the plain ones.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import devset
import numpy as np
from fusion_cv import family_folds, footage_splits

RESULTS = Path(__file__).resolve().parent / "results"
MARGINS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.01)
WEIGHTS = (0.25, 0.5, 1.0, 2.0)
MAX_SECONDS = 3.0


def measure(rows: Sequence[devset.DevRow], rerank: int) -> list[dict]:
    """Per row: fused log-scores, the LLM's calibrated verdict on the fused top candidates, and the seconds each took."""
    import vidsense
    from vidsense.agents.scoring import softmax

    out = []
    with vidsense.Pipeline() as pipe:
        cascade = pipe.reasoner.method("cascade")
        for i, r in enumerate(rows):
            labels = vidsense.load_labels(r.labelset)
            tl = pipe.describe(r.path)
            t0 = time.perf_counter()
            z, *_ = cascade.fused.fused(tl, labels)
            fused_s = time.perf_counter() - t0
            idx = np.argsort(-softmax(z), kind="stable")[:rerank]
            t0 = time.perf_counter()
            ev = cascade.llm.evidence(tl, labels, None, candidates=idx)
            llm_s = time.perf_counter() - t0
            verdict = ev.llm - cascade.llm.calibration_weight * ev.prior
            out.append({"path": str(r.path), "family": "doubt" if r.doubt else r.family, "group": r.group, "doubt": r.doubt,
                        "plain": r.plain, "keys": list(devset.tally_keys(r)), "set": _set_of(r),
                        "target": labels.index(r.label), "z": z.tolist(), "idx": idx.tolist(), "verdict": verdict.tolist(),
                        "fused_s": fused_s, "llm_s": llm_s, "prompt_tokens": ev.stats.get("prompt_tokens", 0.0)})
            print(f"{i + 1}/{len(rows)} {Path(r.path).name}: LLM {llm_s:.1f} s, {ev.stats.get('prompt_tokens', 0):.0f} prompt tokens", flush=True)
    return out


def _set_of(r: devset.DevRow) -> str:
    """The label set a row asks about, the same for a names row and its plain-words twin (``hmdb51``)."""
    return r.family.removeprefix("plain ") if r.plain else r.labelset


def _keys(row: dict) -> list[str]:
    """The table lines a measured row counts in (runs saved before plain rows were measured: family and ``all``)."""
    return row.get("keys") or (["doubt"] if row["doubt"] else [row["family"], "all"])


def answer(row: dict, margin: float, weight: float) -> tuple[float, float]:
    """The true label's rank (ties at their mean) and the reasoning seconds, as the cascade would answer."""
    z = np.asarray(row["z"])
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    gap = float(p[order[0]] - p[order[1]]) if len(order) > 1 else 1.0
    seconds = row["fused_s"]
    full = z
    if gap < margin:
        llm = weight * np.asarray(row["verdict"])
        full = z + float(llm.min())
        full[row["idx"]] = z[row["idx"]] + llm
        seconds += row["llm_s"]
    t = full[row["target"]]
    return float((full > t).sum()) + 1 + (float((full == t).sum()) - 1) / 2, seconds


def tally(rows: Sequence[dict], picks: Sequence[tuple[float, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"n": 0, "top1": 0, "top5": 0, "seconds": 0.0, "llm_share": 0.0})
    for row, (m, w) in zip(rows, picks):
        rank, seconds = answer(row, m, w)
        for fam in _keys(row):
            t = out[fam]
            t["n"] += 1
            t["top1"] += rank <= 1
            t["top5"] += rank <= 5
            t["seconds"] += seconds
            t["llm_share"] += seconds > row["fused_s"]
    for t in out.values():
        t["seconds"] = round(t["seconds"] / max(t["n"], 1), 3)
        t["llm_share"] = round(t["llm_share"] / max(t["n"], 1), 3)
    return dict(out)


def choose(train: Sequence[dict]) -> tuple[float, float]:
    """The (margin, weight) with the most top-1 on ``train``, then the least LLM time."""
    best = None
    for m in MARGINS:
        for w in WEIGHTS if m > 0 else (1.0,):
            answers = [answer(r, m, w) for r in train]
            key = (sum(a[0] <= 1 for a in answers), -sum(a[1] for a in answers))
            if best is None or key > best[0]:
                best = (key, (m, w))
    assert best is not None
    return best[1]


def out_of_fold(rows: Sequence[dict], split) -> list[tuple[float, float]]:
    """Each row's (margin, weight), chosen on the names rows of the fold that holds it out.

    Plain-words rows are never chosen on: each takes the choice of the fold that held out its
    clip's row in the same set's names, so it is as held out as that row.
    """
    named = [i for i, r in enumerate(rows) if not r.get("plain")]
    picks: list[tuple[float, float]] = [(0.0, 1.0)] * len(rows)
    for fold in split([_case(rows[i]) for i in named]):
        pick = choose([rows[named[i]] for i in fold.train])
        for i in fold.test:
            picks[named[i]] = pick
    twin = {(rows[i]["path"], rows[i].get("set")): picks[i] for i in named}
    for i, r in enumerate(rows):
        if r.get("plain"):
            picks[i] = twin.get((r["path"], r.get("set")), (0.0, 1.0))
    return picks


def _case(row: dict) -> SimpleNamespace:
    """What fusion_cv's folds read of a case: ``case.row.family``, ``.group``, ``.doubt``."""
    return SimpleNamespace(row=SimpleNamespace(family=row["family"], group=row["group"], doubt=row["doubt"]))


def print_table(title: str, results: dict[str, dict[str, dict[str, float]]]) -> None:
    fams = sorted({f for r in results.values() for f in r}, key=lambda f: (f != "all", f == "doubt", f))
    print(f"\n{title}")
    print(f"{'variant':<22}" + "".join(f"{f[:11]:>14}" for f in fams) + f"{'s/clip':>8}{'LLM share':>10}")
    for name, r in results.items():
        cells = "".join(f"{int(r[f]['top1']):>6}/{int(r[f]['top5']):<3}/{int(r[f]['n']):<3}" if f in r else f"{'':>14}" for f in fams)
        print(f"{name:<22}{cells}{r['all']['seconds']:>8.2f}{r['all']['llm_share']:>10.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    devset.add_arguments(ap)
    ap.add_argument("--rerank", type=int, default=8, help="fused candidates the LLM scores (the cascade's RERANK)")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--shuffles", type=int, default=5, help="shuffles of the k-fold split (the LLM stage must hold under each)")
    ap.add_argument("--cached", default=None, help="reuse the measurements of an earlier run's JSON")
    ap.add_argument("--out", default=str(RESULTS / "cascade_cv.json"))
    args = ap.parse_args(argv)

    if args.cached:
        rows = json.loads(Path(args.cached).read_text())["rows"]
    else:
        dev = devset.from_arguments(args)
        print(devset.summary(dev))
        rows = measure(dev + devset.plain_rows(dev), args.rerank)
    report, verdicts = {}, {}
    for title, split in {"leave one family out": family_folds, **footage_splits(args.k, args.shuffles)}.items():
        results = {"fused (no LLM)": tally(rows, [(0.0, 1.0)] * len(rows))}
        for m in MARGINS[1:]:
            results[f"margin {m:g}, weight 1"] = tally(rows, [(m, 1.0)] * len(rows))
        picks = out_of_fold(rows, split)
        results["chosen out of fold"] = tally(rows, picks)
        print_table(f"{title}: top-1/top-5/n out of fold (rows in doubt apart); choices {sorted(set(picks))}", results)
        fused, chosen = results["fused (no LLM)"], results["chosen out of fold"]
        # As fusion_cv.ships with the plain-words rows: no family (names or plain) below the fused
        # route, and above it overall on the names rows or the plain ones, neither overall below.
        overall = [f for f in ("all", "all plain") if f in fused]
        families = [f for f in fused if f not in ("doubt", "doubt plain", *overall)]
        verdicts[title] = all(chosen[f]["top1"] >= fused[f]["top1"] for f in families + overall) and any(
            chosen[f]["top1"] > fused[f]["top1"] for f in overall
        )
        report[title] = {"results": results, "picks": picks}
    on_all = choose([r for r in rows if not r["doubt"] and not r.get("plain")])
    seconds = tally(rows, [on_all] * len(rows))["all"]["seconds"]
    joins = all(verdicts.values()) and seconds <= MAX_SECONDS
    print(f"\nchosen on every row: margin {on_all[0]:g}, weight {on_all[1]:g} ({seconds:.2f} s reasoning per clip)")
    print("the LLM stage " + ("may join the default cascade" if joins else "stays out of the default (it does not beat the fused route out of fold on every family, or costs over 3 s)"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "report": report, "chosen_on_all": on_all, "joins": joins,
                               "llm_s_mean": float(np.mean([r["llm_s"] for r in rows])), "prompt_tokens_mean": float(np.mean([r["prompt_tokens"] for r in rows]))}, indent=1))
    print(f"LLM stage {np.mean([r['llm_s'] for r in rows]):.2f} s a call on average (median {np.median([r['llm_s'] for r in rows]):.2f}), {np.mean([r['prompt_tokens'] for r in rows]):.0f} prompt tokens; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
