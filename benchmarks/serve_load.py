"""A bounded load test of ``vidsense serve``: N concurrent classify requests on the fast route.

    .venv/bin/python benchmarks/serve_load.py                      # 50 requests, all at once, 2 workers
    .venv/bin/python benchmarks/serve_load.py --requests 20 --workers 1 --reasoner embedding

Starts the server in this process on a free loopback port (one Pipeline, the
settings' perception models), copies the bundled clip under a few names into a
root folder, and answers one request first (it perceives the clip: the perception
cache then serves every copy, so the load measures the server and the reasoning).
Then it fires the requests at once, rotating over the copies and a few label sets,
and checks that every answer is a 200 for its own request: the video it named,
labels from its own label set, and the label a lone request got for that set.
Prints a latency table (p50, p95, max) and writes ``benchmarks/results/serve_load.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import vidsense
from vidsense.app.server import create_app, running

RESULTS = Path(__file__).resolve().parent / "results"
LABEL_SETS = ("biking,cooking,swimming", "riding a bike,playing piano,surfing,typing", "Biking,Diving,JumpRope,PlayingGuitar,Typing")


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    """POST JSON; the status, the decoded answer and the seconds it took."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw), time.perf_counter() - t0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=None, help="requests in flight at once (default: all of them)")
    ap.add_argument("--workers", type=int, default=2, help="the server's job threads")
    ap.add_argument("--copies", type=int, default=5, help="names the clip is copied under")
    ap.add_argument("--reasoner", default="fused", help="route (default: fused, the default cascade's no-LLM route)")
    ap.add_argument("--out", default=str(RESULTS / "serve_load.json"))
    args = ap.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="vidsense-load-"))
    names = [f"clip{i:02d}.mp4" for i in range(args.copies)]
    for name in names:
        shutil.copyfile(vidsense.example_video(), root / name)

    def loaded() -> vidsense.Pipeline:
        pipe = vidsense.Pipeline()
        pipe.load(reasoner=args.reasoner)
        return pipe

    t0 = time.perf_counter()
    app = create_app(loaded, [root], None, workers=args.workers, queue_size=args.requests, sync_wait_s=600)
    with running(app) as url:
        expected: dict[str, str] = {}
        warm: dict[str, float] = {}
        for labels in LABEL_SETS:  # lone requests: the answer each label set must get, and the cold start
            status, body, seconds = post(url + "/v1/classify", {"path": names[0], "labels": labels, "reasoner": args.reasoner})
            if status != 200:
                raise SystemExit(f"warm-up request failed: {status} {body}")
            expected[labels], warm[labels] = body["label"], seconds
        startup = time.perf_counter() - t0
        requests = [{"path": names[i % len(names)], "labels": LABEL_SETS[i % len(LABEL_SETS)], "reasoner": args.reasoner} for i in range(args.requests)]
        t1 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency or args.requests) as pool:
            answers = list(pool.map(lambda body: post(url + "/v1/classify", body), requests))
        wall = time.perf_counter() - t1
    shutil.rmtree(root, ignore_errors=True)

    errors = [f"{req['path']}: {status} {body.get('detail')}" for req, (status, body, _) in zip(requests, answers) if status != 200]
    mixed = [
        f"{req['path']} [{req['labels']}] got {body.get('video')} {body.get('label')}"
        for req, (status, body, _) in zip(requests, answers)
        if status == 200 and (
            Path(body["video"]).name != req["path"]
            or body["label"] != expected[req["labels"]]
            or not {t["label"] for t in body["top_k"]} <= set(req["labels"].split(","))
        )
    ]
    latencies = [seconds for status, _, seconds in answers if status == 200]
    row = {
        "requests": args.requests,
        "concurrency": args.concurrency or args.requests,
        "workers": args.workers,
        "reasoner": args.reasoner,
        "cpus": os.cpu_count(),
        "startup_and_warmup_s": round(startup, 2),
        "lone_request_s": {k: round(v, 3) for k, v in warm.items()},
        "ok": len(latencies),
        "errors": errors,
        "mixed": mixed,
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 2) if wall else 0.0,
        "latency_s": {
            "p50": round(percentile(latencies, 0.5), 3),
            "p95": round(percentile(latencies, 0.95), 3),
            "max": round(max(latencies), 3),
            "mean": round(statistics.fmean(latencies), 3),
        } if latencies else {},
    }
    lat = row["latency_s"]
    print(f"{'requests':>8} {'workers':>7} {'ok':>4} {'errors':>6} {'mixed':>5} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'req/s':>6}")
    print(f"{args.requests:>8} {args.workers:>7} {row['ok']:>4} {len(errors):>6} {len(mixed):>5} {lat.get('p50', 0):>7.3f} {lat.get('p95', 0):>7.3f} {lat.get('max', 0):>7.3f} {row['throughput_rps']:>6.2f}")
    print(f"startup (models, one perception, one request per label set): {row['startup_and_warmup_s']:.1f} s")
    for line in (errors + mixed)[:10]:
        print("  " + line)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=1))
    print(f"wrote {out}")
    return 1 if errors or mixed else 0


if __name__ == "__main__":
    raise SystemExit(main())
