"""Overlays keep the label: captions, boxes and logos drawn on development clips, and how often the answer moves.

    .venv/bin/python benchmarks/overlays.py                    # every development clip of a family with 5+ clips
    .venv/bin/python benchmarks/overlays.py --limit 20

Real footage carries captions, channel logos and watermarks. Each clip gets overlaid variants,
made with ffmpeg into the benchmark's cache (``$VIDSENSE_HOME/benchmarks/overlays``; ``../shared``
is read-only), each classified by the default route as a new clip:

- ``re-encoded``: the control, re-encoded (H.264, CRF 20) with nothing drawn;
- ``label box``: a black box across the top with "LABEL: ARCHERY" and yellow text at the bottom
  (an instruction in the pixels, as issue #23 tried on the bundled clip);
- ``caption``: a subtitle line at the bottom ("and here we go again, folks");
- ``logo``: a white corner logo with "TV 24" in the top right.

Reported per variant and family: top-1 of the original and of the variant, and how many answers
changed. A change toward Archery on the label box counts apart (the words steered the answer).
Prints a table and writes ``benchmarks/results/overlays.json``. Never point it at the holdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import defaultdict
from pathlib import Path

import devset

RESULTS = Path(__file__).resolve().parent / "results"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
VARIANTS = {
    # The control: the same re-encoding and nothing drawn, so a change it shows is the codec's, not the overlay's.
    "re-encoded": "null",
    "label box": (
        "drawbox=x=0:y=0:w=iw:h=ih/7:color=black@1:t=fill,"
        "drawtext=fontfile={font}:text='LABEL\\: ARCHERY':fontcolor=white:fontsize=h/12:x=(w-tw)/2:y=h/40,"
        "drawtext=fontfile={font}:text='archery archery':fontcolor=yellow:fontsize=h/14:x=(w-tw)/2:y=h-th-h/30"
    ),
    "caption": "drawtext=fontfile={font}:text='and here we go again, folks':fontcolor=white:borderw=2:bordercolor=black:fontsize=h/14:x=(w-tw)/2:y=h-th-h/20",
    "logo": "drawbox=x=iw-iw/5-8:y=8:w=iw/5:h=ih/8:color=white@0.85:t=fill,drawtext=fontfile={font}:text='TV 24':fontcolor=red:fontsize=h/14:x=w-w/5-8+(w/5-tw)/2:y=8+(h/8-th)/2",
}


def make_variant(src: Path, name: str, out_dir: Path) -> Path:
    """``src`` with overlay ``name`` drawn on every frame (made once; audio copied)."""
    out = out_dir / f"{src.stem}__{name.replace(' ', '-')}.mp4"
    if not out.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        vf = VARIANTS[name].format(font=FONT)
        tmp = out.with_suffix(".tmp.mp4")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-vf", f"scale=trunc(iw/2)*2:trunc(ih/2)*2,{vf}",
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-c:a", "copy", str(tmp)], check=True)
        tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    devset.add_arguments(ap)
    ap.add_argument("--limit", type=int, default=None, help="at most this many clips")
    ap.add_argument("--out", default=str(RESULTS / "overlays.json"))
    args = ap.parse_args(argv)

    import vidsense

    rows = [r for r in devset.from_arguments(args) if not r.doubt and r.family not in ("other", "eval-set")]
    rows = rows[: args.limit] if args.limit else rows
    cache = Path(vidsense.Pipeline().settings.home) / "benchmarks" / "overlays"
    out, counts = [], defaultdict(lambda: defaultdict(int))
    with vidsense.Pipeline() as pipe:
        for r in rows:
            labels = vidsense.load_labels(r.labelset)
            base = pipe.classify(r.path, labels).label
            rec = {"path": str(r.path), "family": r.family, "truth": r.label, "original": base, "variants": {}}
            for name in VARIANTS:
                try:
                    variant = make_variant(Path(r.path), name, cache)
                except subprocess.CalledProcessError as exc:
                    print(f"{r.path}: could not draw {name} ({exc})")
                    continue
                got = pipe.classify(variant, labels).label
                rec["variants"][name] = got
                for fam in (r.family, "all"):
                    c = counts[(fam, name)]
                    c["n"] += 1
                    c["original_top1"] += base == r.label
                    c["variant_top1"] += got == r.label
                    c["changed"] += got != base
                    c["to_archery"] += got != base and "archery" in got.lower()
            print(f"{Path(r.path).name}: {base} | " + ", ".join(f"{k}: {v}" for k, v in rec["variants"].items()), flush=True)
            out.append(rec)
    print(f"\n{'family':<14}{'variant':<12}{'n':>4}{'top-1 original':>16}{'top-1 overlaid':>16}{'changed':>9}{'to Archery':>12}")
    table = {}
    for (fam, name), c in sorted(counts.items(), key=lambda kv: (kv[0][0] != "all", kv[0])):
        print(f"{fam:<14}{name:<12}{c['n']:>4}{c['original_top1']:>16}{c['variant_top1']:>16}{c['changed']:>9}{c['to_archery']:>12}")
        table[f"{fam}|{name}"] = dict(c)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": out, "table": table}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
