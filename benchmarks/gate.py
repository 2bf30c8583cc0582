"""The regression gate: the default route's top-1 / top-5 per development family against a committed baseline.

``benchmarks/routes.py --save-baseline benchmarks/baseline.json`` writes the baseline;
``benchmarks/routes.py --check benchmarks/baseline.json`` fails (exit 1) when any family's
top-1 or top-5 falls by more than :data:`SLACK` clips (the ``all`` line gates too: one clip
lost on each of several families is a change). Rows in doubt are tallied apart
(``doubt``) and never gate. Not in CI: it needs the real models and ``../shared``.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Sequence

import devset
from devset import DevRow

# Clips a family may lose before the gate fails: one clip's answer may flip on a tie or a
# cache rebuilt on another machine; two is a change.
SLACK = 1
DOUBT = devset.DOUBT


@dataclass(frozen=True)
class Tally:
    """Hits of one family: rows, true label first, true label in the top five."""

    n: int
    top1: int
    top5: int


def tally(rows: Sequence[DevRow], ranks: Sequence[float | None]) -> dict[str, Tally]:
    """``{family: Tally}`` of the rows not in doubt, plus ``all`` and ``doubt`` (a failed row counts as
    a miss; plain-words rows apart, see :func:`devset.tally_keys`)."""
    acc: dict[str, list[int]] = {}
    for row, r in zip(rows, ranks):
        for key in devset.tally_keys(row):
            t = acc.setdefault(key, [0, 0, 0])
            t[0] += 1
            t[1] += r is not None and r == 1
            t[2] += r is not None and r <= 5
    return {k: Tally(*v) for k, v in sorted(acc.items())}


def named_and_plain(rows: Sequence[DevRow], ranks: Sequence[float | None]) -> dict[str, tuple[Tally, Tally]]:
    """For each set with a plain-words variant: its rows' hits with the set's names and in plain words
    (the same clips, rows in doubt left out)."""
    plain = {row.labelset: row.family.removeprefix("plain ") for row in rows if row.plain}
    names = set(plain.values())
    acc: dict[tuple[str, bool], list[int]] = {}
    for row, r in zip(rows, ranks):
        name = plain.get(row.labelset, row.labelset)
        if row.doubt or name not in names:
            continue
        t = acc.setdefault((name, row.plain), [0, 0, 0])
        t[0] += 1
        t[1] += r is not None and r == 1
        t[2] += r is not None and r <= 5
    return {n: (Tally(*acc.get((n, False), [0, 0, 0])), Tally(*acc.get((n, True), [0, 0, 0]))) for n in sorted(names)}


def format_tally(t: dict[str, Tally]) -> str:
    """One line per family: ``top1 / top5 of n``."""
    return "\n".join(f"{fam:<12} top1 {v.top1:>3} / {v.n:<3} top5 {v.top5:>3} / {v.n:<3}" for fam, v in t.items())


# CPU features that change some models' outputs: ONNX Runtime's integer kernels (YAMNet) and the pose
# model round differently with AVX-512 VNNI (measured: YAMNet's scores on seeded noise, and a gesture
# or two per variant of benchmarks/gestures_real.py, moved between an AVX2 and an AVX-512 machine).
INSTRUCTIONS = ("avx2", "avx512f", "avx512_vnni", "amx_tile")


def machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """What the numbers were measured on: the CPU, the instruction sets in :data:`INSTRUCTIONS` it has, and the model runtimes."""
    text = cpuinfo.read_text(encoding="utf-8", errors="replace") if cpuinfo.is_file() else ""
    lines = text.splitlines()
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor() or platform.machine())
    versions = {}
    for dist in ("onnxruntime", "torch", "tflite-runtime", "ai-edge-litert"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": model, "instructions": [f for f in INSTRUCTIONS if f in flags], **versions}


def save(path: Path, t: dict[str, Tally], rows: Sequence[DevRow], ranks: Sequence[float | None], about: dict) -> Path:
    """Write the baseline: the tallies, every row's rank (to name what moved), what produced them and on what machine."""
    per_row = [{"path": r.path.name, "label": r.label, "labelset": Path(r.labelset).name, "family": r.family, "rank": k} for r, k in zip(rows, ranks)]
    out = {**about, "machine": machine(), "families": {k: vars(v) for k, v in t.items()}, "rows": per_row}
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return path


def check(path: Path, t: dict[str, Tally], rows: Sequence[DevRow], ranks: Sequence[float | None]) -> list[str]:
    """What fell against the baseline at ``path`` (empty: the gate passes). Rows in doubt never gate."""
    base = json.loads(path.read_text(encoding="utf-8"))
    then, now_on = base.get("machine", {}).get("instructions"), machine()["instructions"]
    if then is not None and then != now_on:
        print(f"  note: the baseline was measured on a CPU with {', '.join(then) or 'none of ' + ', '.join(INSTRUCTIONS)}, this one has "
              f"{', '.join(now_on) or 'none of them'}: some models round differently there, so a clip may move without a change")
    failures = []
    for fam, b in base["families"].items():
        if fam.startswith(DOUBT):
            continue
        now = t.get(fam)
        if now is None or now.n != b["n"]:
            failures.append(f"{fam}: {0 if now is None else now.n} rows against the baseline's {b['n']} (the set changed: rebuild the baseline with the change)")
            continue
        for metric in ("top1", "top5"):
            if getattr(now, metric) < b[metric] - SLACK:
                failures.append(f"{fam}: {metric} {getattr(now, metric)}/{now.n}, baseline {b[metric]}/{b['n']}")
    before = {(r["path"], r["labelset"], r["label"]): r["rank"] for r in base.get("rows", [])}
    for row, k in zip(rows, ranks):
        was = before.get((row.path.name, Path(row.labelset).name, row.label))
        if was == 1 and k != 1:
            print(f"  lost top-1: {row.path.name} [{row.family}] {row.label!r} now rank {k}")
        elif was is not None and was != 1 and k == 1:
            print(f"  gained top-1: {row.path.name} [{row.family}] {row.label!r}")
    return failures
