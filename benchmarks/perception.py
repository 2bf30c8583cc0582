"""Perception benchmark: per-stage time and peak memory on real clips, cold and cached.

Usage::

    .venv/bin/python benchmarks/perception.py [--clips DIR_OR_FILES...] [--models m1,m2] [--out FILE]

Defaults to the clips in ../shared/data/clips (falls back to the packaged example
clip). For each clip it reports: decode (probe + the frames the models sample,
measured in a fresh process so its peak memory is its own), each perception
model's time on a cold cache (models already loaded), the motion share (pose +
flow + action), and the cached re-run. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIPS = ROOT.parent / "shared" / "data" / "clips"
MOTION = ("pose", "flow", "action")

DECODE_SNIPPET = """
import json, sys, time
from vidsense.services.media.video import Media
from vidsense.services.timeline import make_windows
t0 = time.perf_counter()
m = Media.open(sys.argv[1])
windows = make_windows(m.info.duration_s, 2.0)
n = 0
for w in windows:
    n += len(m.sample(w.start_s, w.end_s, 2, max_side=640))
audio = m.audio()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"decode_s": time.perf_counter() - t0, "frames": n, "audio_s": len(audio) / 16000, "peak_rss_mb": hwm / 1024}))
"""


def clips_from(args: list[str]) -> list[Path]:
    paths: list[Path] = []
    for a in args:
        p = Path(a)
        paths.extend(sorted(x for x in p.iterdir() if x.is_file()) if p.is_dir() else [p])
    return paths


def warmup_clip(path: Path) -> Path:
    """A 2 s noise video with a tone, written with PyAV."""
    from fractions import Fraction

    import av
    import numpy as np

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=10)
        vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p"
        st = c.add_stream("aac", rate=16000)
        st.layout = "mono"
        for _ in range(20):
            for p in vs.encode(av.VideoFrame.from_ndarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype(np.float32)
        size = st.codec_context.frame_size or 1024
        for i in range(0, len(tone) - size, size):
            fr = av.AudioFrame.from_ndarray(tone[i : i + size].reshape(1, -1), format="flt", layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = 16000, i, Fraction(1, 16000)
            for p in st.encode(fr):
                c.mux(p)
        for p in st.encode(None):
            c.mux(p)
    return path


def decode_stats(clip: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", DECODE_SNIPPET, str(clip)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="*", default=None)
    ap.add_argument("--models", default=None, help="comma-separated perception models (default: the embedded profile)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "perception.json"))
    args = ap.parse_args()

    from vidsense import example_video
    from vidsense.services.perception import PerceptionConfig
    from vidsense.services.perception.perceiver import Perceiver
    from vidsense.services.settings import load_settings

    if args.clips:
        clips = clips_from(args.clips)
    elif DEFAULT_CLIPS.is_dir():
        clips = clips_from([str(DEFAULT_CLIPS)])
    else:
        clips = [example_video()]
    models = args.models.split(",") if args.models else None
    with tempfile.TemporaryDirectory() as tmp:
        # A private cache, so "cold" is really cold; the model store stays the shared one.
        home = Path(tmp)
        real = load_settings().home
        (home / "models").symlink_to(Path(real) / "models", target_is_directory=True)
        settings = load_settings(home=home, **({"perception": models} if models else {}))
        perceiver = Perceiver(PerceptionConfig.from_settings(settings))
        # Models load lazily: one run over a short synthetic clip loads them all, so the
        # per-clip numbers below are "after models are loaded", as the targets are stated.
        t0 = time.perf_counter()
        perceiver.describe(warmup_clip(home / "warmup.mp4"))
        load_s = time.perf_counter() - t0
        rows = []
        for clip in clips:
            dec = decode_stats(clip)
            row: dict = {"clip": clip.name, **{f"decode.{k}": v for k, v in dec.items()}}
            try:
                t = time.perf_counter()
                tl = perceiver.describe(clip)
                row["cold_s"] = time.perf_counter() - t
                row["duration_s"] = tl.video.duration_s
                row["size"] = f"{tl.video.width}x{tl.video.height}"
                for name, sec in tl.timings.items():
                    row[f"model.{name}"] = sec
                row["motion_s"] = sum(tl.timings.get(m, 0.0) for m in MOTION)
                row["motion_share"] = row["motion_s"] / row["cold_s"] if row["cold_s"] else 0.0
                t = time.perf_counter()
                perceiver.describe(clip)
                row["cached_s"] = time.perf_counter() - t
                row["windows"] = len(tl.windows)
                row["observations"] = len(tl.observations)
            except Exception as exc:  # noqa: BLE001 - a benchmark reports failures and goes on
                row["error"] = f"{type(exc).__name__}: {exc}"
            row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rows.append(row)
            print(f"done {clip.name}", file=sys.stderr, flush=True)

    cols = ["clip", "size", "duration_s", "decode.decode_s", "decode.peak_rss_mb", "cold_s", "motion_s", "cached_s", "peak_rss_mb"]
    model_cols = sorted({k for r in rows for k in r if k.startswith("model.")})
    header = cols + model_cols
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        print(" | ".join(_fmt(r.get(c, "")) for c in header))
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "models": perceiver.model_names,
        "model_load_s": load_s,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"model load {load_s:.1f} s; load average {os.getloadavg()[0]:.1f}; wrote {out}")


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    main()
