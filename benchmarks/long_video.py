"""Long-video benchmark: peak memory and time of describing a video of a given length.

Usage::

    .venv/bin/python benchmarks/long_video.py [--minutes 120 ...] [--size 640x360] [--models m1,m2]
        [--src DIR] [--videos DIR] [--out FILE]

For each length it writes a synthetic video (a moving test pattern with a
spoken sentence over a quiet tone, when espeak-ng is installed; a 60 s piece
looped by stream copy, so making two hours takes seconds) and describes it
through the SDK (``Pipeline.describe``, the embedded profile's models unless
``--models`` says otherwise, perception cache off) in a fresh process. It
reports that process's peak RSS, the describe time and the RSS sampled every
few seconds (the curve should stay flat), prints a table and writes JSON.
``--src`` runs another source tree (e.g. ``git archive`` of an older commit)
for before/after numbers. Target: under 1.5 GB for two hours at 640x360.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIECE_S = 60
# One sentence (about 8 s) every this many seconds: speech for Whisper, silence for its VAD to skip.
SPEECH_EVERY_S = 20
SENTENCE = "The quick brown fox jumps over the lazy dog. Now we are cooking dinner in the kitchen, then we ride a bicycle down the street."

RUN_SNIPPET = """
import json, sys, threading, time

def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 1024

samples = []
done = threading.Event()
start = time.perf_counter()

def sample():
    while not done.wait(5.0):
        samples.append((round(time.perf_counter() - start), round(status("VmRSS"))))

threading.Thread(target=sample, daemon=True).start()
import vidsense

models = json.loads(sys.argv[2])
pipe = vidsense.Pipeline(cache=False, **({"perception": models} if models else {}))
t0 = time.perf_counter()
tl = pipe.describe(sys.argv[1])
describe_s = time.perf_counter() - t0
done.set()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec.
print(json.dumps({
    "vidsense": vidsense.__file__, "peak_rss_mb": status("VmHWM"), "describe_s": describe_s, "process_s": time.perf_counter() - start,
    "duration_s": tl.video.duration_s, "models": list(tl.models), "windows": len(tl.windows),
    "observations": len(tl.observations), "timings": tl.timings, "notes": list(tl.notes), "rss_mb": samples,
}))
"""


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def piece(folder: Path, size: str, fps: int) -> Path:
    """:data:`PIECE_S` seconds of test pattern with speech (espeak-ng, if installed) over a quiet tone."""
    path = folder / f"piece-{size}-{fps}.mp4"
    if path.exists():
        return path
    video = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=220:sample_rate=16000"]
    common = ["-t", str(PIECE_S), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-c:a", "aac", "-ac", "1", "-ar", "16000"]
    if shutil.which("espeak-ng"):
        said, speech = folder / "sentence.wav", folder / f"sentence-{SPEECH_EVERY_S}s.wav"
        subprocess.run(["espeak-ng", "-w", str(said), SENTENCE], check=True)
        ffmpeg("-i", str(said), "-af", f"apad=whole_dur={SPEECH_EVERY_S}", str(speech))
        mix = "[1:a]volume=0.1[t];[t][2:a]amix=inputs=2:duration=first[a]"
        ffmpeg(*video, *tone, "-stream_loop", "-1", "-i", str(speech), "-filter_complex", mix, "-map", "0:v", "-map", "[a]", *common, str(path))
    else:
        ffmpeg(*video, *tone, *common, str(path))
    return path


def long_video(folder: Path, minutes: float, size: str, fps: int) -> Path:
    """The piece looped by stream copy to ``minutes`` long (reused when already there)."""
    path = folder / f"long-{minutes:g}min-{size}-{fps}.mp4"
    if not path.exists():
        loops = max(1, round(minutes * 60 / PIECE_S))
        ffmpeg("-stream_loop", str(loops - 1), "-i", str(piece(folder, size, fps)), "-c", "copy", str(path))
    return path


def describe(video: Path, models: list[str] | None, src: Path | None, timeout: float) -> dict:
    """Describe ``video`` in a fresh process; its peak RSS, times and RSS curve."""
    env = os.environ.copy()
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # Run from the videos' folder: ``python -c`` puts the working directory first on the
    # import path, and a checkout's own vidsense/ there would shadow ``--src``. The settings
    # file stays the one this directory would use.
    env.setdefault("VIDSENSE_CONFIG", str(Path("vidsense.toml").resolve()))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", RUN_SNIPPET, str(video), json.dumps(models)],
            capture_output=True, text=True, env=env, timeout=timeout, cwd=video.parent,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()
        # Killed for memory: no Python error to show, only the signal.
        return {"error": tail[-1] if tail else f"exit {proc.returncode}", "wall_s": time.perf_counter() - t0}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[120.0], help="video lengths to run (default: 120)")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--models", default=None, help="comma-separated perception models (default: the embedded profile)")
    ap.add_argument("--src", type=Path, default=None, help="source tree to import vidsense from (default: the installed one)")
    ap.add_argument("--videos", type=Path, default=None, help="folder for the generated videos, reused across runs (default: a temporary one)")
    ap.add_argument("--timeout", type=float, default=6 * 3600, help="seconds one describe may take")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "long_video.json"))
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("needs the ffmpeg command (apt-get install ffmpeg)")

    models = args.models.split(",") if args.models else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.videos or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for minutes in args.minutes:
            video = long_video(folder, minutes, args.size, args.fps)
            row = {"minutes": minutes, "size": args.size, **describe(video, models, args.src, args.timeout)}
            rows.append(row)
            # Written after every length: a two-hour run takes hours, and what finished counts.
            report = {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
                "models": models or "embedded profile",
                "src": str(args.src or ROOT),
                "rows": rows,
            }
            out.write_text(json.dumps(report, indent=2))
            result = row.get("error") or f"{row['peak_rss_mb']:.0f} MB peak, {row['describe_s']:.0f} s"
            print(f"done {minutes:g} min: {result}", file=sys.stderr, flush=True)

    header = ["minutes", "size", "peak_rss_mb", "describe_s", "process_s", "windows", "observations", "error"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        print(" | ".join(_fmt(r.get(c, "")) for c in header))
    print(f"load average {os.getloadavg()[0]:.1f}; wrote {out}")


def _fmt(v) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    main()
