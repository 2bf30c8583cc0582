"""Batch throughput, local threads against Ray actors, on copies of the bundled clip.

    .venv/bin/python benchmarks/ray_throughput.py                  # 6 copies; local 1 worker, ray 2 workers
    .venv/bin/python benchmarks/ray_throughput.py --cheap --videos 4 --ray-workers 2 --cpus-per-actor 1

Copies the bundled clip under different names (different content hashes are not
needed: the perception cache is off, so every video is perceived for real) and
classifies the folder with each engine through a fresh Pipeline, so both pay
their model loading. The Ray run starts a local Ray instance first; its start-up
is reported apart from the batch. ``--cheap`` runs only the visual tagger and the
embedding reasoner (the tests' configuration). Prints a table and writes
``benchmarks/results/ray_throughput.json`` (``ray_throughput-cheap.json`` with ``--cheap``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import vidsense

RESULTS = Path(__file__).resolve().parent / "results"
LABELS = "biking,cooking,swimming,running,typing"


def run(settings: vidsense.Settings, videos: list[Path], workers: int, reasoner: str | None, engine: vidsense.RayEngine | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    items = list(vidsense.Pipeline(settings=settings).classify_many(videos, LABELS, workers=workers, reasoner=reasoner, engine=engine))
    seconds = time.perf_counter() - t0
    failed = [i.error for i in items if isinstance(i, vidsense.BatchError)]
    return {
        "workers": workers,
        "seconds": round(seconds, 2),
        "videos_per_min": round(60 * len(items) / seconds, 2),
        "failed": failed,
        "labels": {Path(i.video).name: getattr(i, "label", None) for i in items},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=6, help="copies of the bundled clip")
    ap.add_argument("--local-workers", type=int, default=1)
    ap.add_argument("--ray-workers", type=int, default=2)
    ap.add_argument("--cpus-per-actor", type=float, default=1.0)
    ap.add_argument("--cheap", action="store_true", help="visual tagger + embedding reasoner only")
    args = ap.parse_args(argv)
    import ray

    overrides: dict[str, Any] = {"cache": False}
    if args.cheap:
        overrides["perception"] = ["visual-tags"]
    settings = vidsense.load_settings(**overrides)
    reasoner = "embedding" if args.cheap else None
    with tempfile.TemporaryDirectory() as tmp:
        videos = [Path(shutil.copyfile(vidsense.example_video(), Path(tmp) / f"clip{i}.mp4")) for i in range(args.videos)]
        local = run(settings, videos, args.local_workers, reasoner, None)
        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        ray_init_s = time.perf_counter() - t0
        try:
            distributed = run(settings, videos, args.ray_workers, reasoner, vidsense.RayEngine(cpus_per_actor=args.cpus_per_actor))
        finally:
            ray.shutdown()
    distributed["ray_init_s"] = round(ray_init_s, 2)
    report = {
        "videos": args.videos,
        "clip": vidsense.example_video().name,
        "perception": settings.perception or f"profile {settings.profile}",
        "reasoner": reasoner or settings.reasoner,
        "cpu_count": os.cpu_count(),
        "cpus_per_actor": args.cpus_per_actor,
        "local": local,
        "ray": distributed,
        "same_labels": local["labels"] == distributed["labels"],
    }
    print(f"{args.videos} videos, {report['perception']}, reasoner {report['reasoner']}, {os.cpu_count()} CPUs, perception cache off")
    print(f"{'engine':<8}{'workers':>8}{'seconds':>10}{'videos/min':>12}{'failed':>8}")
    for name, r in (("local", local), ("ray", distributed)):
        print(f"{name:<8}{r['workers']:>8}{r['seconds']:>10.1f}{r['videos_per_min']:>12.2f}{len(r['failed']):>8}")
    print(f"ray start-up (not in the batch time): {ray_init_s:.1f} s; same labels: {report['same_labels']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"ray_throughput{'-cheap' if args.cheap else ''}.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
