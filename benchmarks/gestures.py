"""Gesture benchmark: what the pose rules say on real clips, and what pose and gestures cost.

Usage::

    .venv/bin/python benchmarks/gestures.py [--clips DIR_OR_FILES...] [--seconds 10] [--out FILE]

For each clip (default: the labelled set's clips from ``benchmarks/eval_set.py``, else
``../shared/data/clips``), the first ``--seconds`` seconds go through the pose describer
twice: sparse frames only (``dense=False``) and with dense frames where arms are busy (the
default). Reported per run: pose frames detected, detector time, camera-path time, gesture
rule time (everything in :mod:`vidsense.services.perception.motion.gestures`), total, and the gesture
phrases found. Prints a table, then every phrase, and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL_CLIPS = Path.home() / ".cache" / "vidsense" / "eval-set" / "clips"
SHARED_CLIPS = ROOT.parent / "shared" / "data" / "clips"


class Stopwatch:
    """Wraps a callable and adds up its calls' time."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def run(path: Path, seconds: float, dense: bool, env) -> dict:
    from vidsense.services.media.motion_clip import motion_clips
    from vidsense.services.media.video import Media
    from vidsense.services.perception.motion import flow, gestures, pose
    from vidsense.services.timeline import make_windows

    describer = pose.PoseDescriber(env, dense=dense)
    media = Media.open(path)
    windows = make_windows(min(media.info.duration_s, seconds))
    # Decode first (the Media keeps the last few groups' frames), so pose time is pose alone.
    t0 = time.perf_counter()
    for _ in motion_clips(media, windows, describer.clip_frames, describer.group_s):
        pass
    decode_s = time.perf_counter() - t0
    detector = Stopwatch(describer.detector)
    describer._detector = detector
    camera, rules = Stopwatch(flow.camera_path), Stopwatch(gestures.clip_gestures)
    flow.camera_path, gestures.clip_gestures = camera, rules
    try:
        t0 = time.perf_counter()
        obs = describer.describe(media, windows).observations
        total = time.perf_counter() - t0
    finally:
        flow.camera_path, gestures.clip_gestures = camera.fn, rules.fn
    phrases = [(o.window, o.text) for o in obs if o.kind == "gesture"]
    return {
        "clip": path.name,
        "dense": dense,
        "seconds": windows[-1].end_s,
        "decode_s": decode_s,
        "pose_frames": detector.calls,
        "detector_s": detector.seconds,
        "camera_s": camera.seconds,
        "rules_s": rules.seconds,
        "pose_total_s": total,
        "gestures": dict(Counter(gestures.gesture_name(t) for _, t in phrases)),
        "phrases": phrases,
        "pose_words": [(o.window, o.text) for o in obs if o.kind == "pose"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="*", default=None)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gestures.json"))
    args = ap.parse_args()

    from vidsense.services.settings import load_settings

    folders = [Path(c) for c in args.clips] if args.clips else [d for d in (EVAL_CLIPS, SHARED_CLIPS) if d.is_dir()]
    clips: dict[str, Path] = {}
    for p in folders:
        for c in sorted(p.iterdir()) if p.is_dir() else [p]:
            if c.is_file() and "narrated" not in c.name:
                clips.setdefault(c.name, c)
    env = load_settings().model_env()
    rows = []
    for clip in clips.values():
        for dense in (False, True):
            try:
                rows.append(run(clip, args.seconds, dense, env))
            except Exception as exc:  # noqa: BLE001 - a benchmark reports failures and goes on
                rows.append({"clip": clip.name, "dense": dense, "error": f"{type(exc).__name__}: {exc}"})
            print(f"done {clip.name} dense={dense}", file=sys.stderr, flush=True)

    cols = ["clip", "dense", "seconds", "pose_frames", "detector_s", "camera_s", "rules_s", "pose_total_s", "gestures"]
    print(" | ".join(cols))
    print(" | ".join("---" for _ in cols))
    for r in rows:
        print(" | ".join(_fmt(r.get(c, r.get("error", ""))) for c in cols))
    ok = [r for r in rows if "error" not in r and r["dense"]]
    if ok:
        per10 = [r["rules_s"] * 10 / max(r["seconds"], 1e-3) for r in ok]
        print(f"gesture rules per 10 s of video: mean {1000 * sum(per10) / len(per10):.1f} ms, max {1000 * max(per10):.1f} ms")
    print("\nphrases (dense):")
    for r in ok:
        for w, text in r["phrases"]:
            print(f"  {r['clip']} [window {w}] {text}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpus": os.cpu_count(), "seconds": args.seconds, "rows": rows}, indent=2))
    print(f"wrote {out}")


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    main()
