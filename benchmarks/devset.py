"""The labelled development set that the benchmarks and the fusion fit read: one manifest, each row with its family.

    .venv/bin/python benchmarks/devset.py                      # build the manifest and print the families
    .venv/bin/python benchmarks/devset.py --describe           # and describe every clip once (fills the perception cache)
    .venv/bin/python benchmarks/devset.py --write-labels       # rewrite devset_other_labels.txt from clips.csv

Rows come from two places:

- ``../shared/devset/clips.csv`` beside the repository (``--shared``): real clips of UCF-101,
  HMDB-51, Kinetics, KARD, NTU, SSv2, ... with their ``family``. A row whose labelset is
  ``other:<dataset>`` is ranked against :data:`OTHER_LABELS`, one label file made of every
  such label (a user's own set), kept here with the benchmark.
- ``benchmarks/eval_set.py``'s clips (``--eval-set``, built into ``~/.cache/vidsense/eval-set``),
  family ``eval-set``; skipped with a note when that manifest has not been built.

A family with fewer than :data:`MIN_CLIPS` clips is pooled as ``other``: no number is read off
a handful of clips of one kind. Rows whose ``evidence`` says DOUBT keep ``doubt=True``: they
are reported apart and kept out of fitting. ``group`` names the footage a row comes from
(the eval set's narrated and cut variants share their source's), so k-fold splits never put
the same footage on both sides.

Never read from tests: a user's clone has no ``../shared``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "devset"
DEFAULT_EVAL_SET = Path.home() / ".cache" / "vidsense" / "eval-set" / "manifest.csv"
DEFAULT_OUT = Path.home() / ".cache" / "vidsense" / "devset" / "manifest.csv"
OTHER_LABELS = Path(__file__).resolve().parent / "devset_other_labels.txt"
EVAL_FAMILY = "eval-set"
POOLED = "other"
# Fewest clips a family needs to be reported (and left out in cross-validation) on its own.
MIN_CLIPS = 5
# The table line of rows whose label is in doubt.
DOUBT = "doubt"
# Bundled sets that have a plain-words variant (benchmarks/plain_labels.py).
PLAIN_SETS = ("ucf101", "hmdb51", "kinetics400")


@dataclass(frozen=True)
class DevRow:
    """One labelled row of the development set.

    Attributes:
        path: the video file.
        label: the true label, spelled as in its label set.
        labelset: a bundled set's name, or the path of :data:`OTHER_LABELS`.
        family: the family after pooling (``other`` for families under :data:`MIN_CLIPS` clips).
        origin: the family as the source wrote it (``ntu60``, ``eval-set``, ...).
        group: the footage it comes from: rows of one group are always on one side of a split.
        doubt: the label is uncertain (counted apart, never fitted on).
        plain: the row asks again for a bundled set's row against that set's plain-words variant
            (:func:`plain_rows`): it is tallied on its own, never in ``all``, never fitted on.
    """

    path: Path
    label: str
    labelset: str
    family: str
    origin: str
    group: str
    doubt: bool = False
    plain: bool = False


def clips_csv_rows(folder: Path, other_labels: Path = OTHER_LABELS) -> list[DevRow]:
    """The rows of ``folder/clips.csv`` (family not yet pooled)."""
    with open(folder / "clips.csv", newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    rows = []
    for r in records:
        labelset = str(other_labels) if r["labelset"].startswith("other:") else r["labelset"]
        rows.append(DevRow(folder / r["file"], r["label"], labelset, r["family"], r["family"], f"devset:{r['sha256']}", "DOUBT" in r["evidence"]))
    return rows


def other_labels_of(folder: Path) -> list[str]:
    """Every ``other:*`` label of ``folder/clips.csv``, in file order, once each."""
    with open(folder / "clips.csv", newline="", encoding="utf-8") as f:
        return list(dict.fromkeys(r["label"] for r in csv.DictReader(f) if r["labelset"].startswith("other:")))


def eval_set_rows(manifest: Path) -> list[DevRow]:
    """The rows of ``benchmarks/eval_set.py``'s manifest, grouped by the footage each clip was made from."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_set import CLIPS

    source = {c.name: c.source for c in CLIPS}
    with open(manifest, newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    return [DevRow(Path(r["path"]), r["label"], r["labelset"], EVAL_FAMILY, EVAL_FAMILY, f"eval-set:{source.get(Path(r['path']).name, r['path'])}") for r in records]


def pool(rows: list[DevRow], min_clips: int = MIN_CLIPS) -> list[DevRow]:
    """Rows whose family has fewer than ``min_clips`` clips moved to family ``other``."""
    clips = Counter(fam for fam, _ in {(r.origin, r.path) for r in rows})
    return [r if clips[r.origin] >= min_clips else DevRow(r.path, r.label, r.labelset, POOLED, r.origin, r.group, r.doubt) for r in rows]


def check_other_labels(rows: list[DevRow], other_labels: Path = OTHER_LABELS) -> None:
    """Every row ranked against the user's own set must find its label in it.

    Raises:
        SystemExit: a label is missing (rerun with ``--write-labels``).
    """
    have = {ln.strip() for ln in other_labels.read_text(encoding="utf-8").splitlines() if ln.strip()}
    missing = sorted({r.label for r in rows if r.labelset == str(other_labels)} - have)
    if missing:
        raise SystemExit(f"{other_labels.name} lacks {missing}: rerun benchmarks/devset.py --write-labels")


def build(shared: Path | None = DEFAULT_SHARED, eval_manifest: Path | None = DEFAULT_EVAL_SET, notes: list[str] | None = None) -> list[DevRow]:
    """The whole development set, families pooled; ``notes`` collects what was skipped and why."""
    notes = notes if notes is not None else []
    rows: list[DevRow] = []
    if shared is not None and (shared / "clips.csv").is_file():
        rows += clips_csv_rows(shared)
        check_other_labels(rows)
    else:
        notes.append(f"no development clips at {shared} (pass --shared)")
    if eval_manifest is not None and eval_manifest.is_file():
        rows += eval_set_rows(eval_manifest)
    else:
        notes.append(f"no eval-set manifest at {eval_manifest} (build it with benchmarks/eval_set.py)")
    return pool(rows)


def plain_rows(rows: list[DevRow], sets: tuple[str, ...] = PLAIN_SETS) -> list[DevRow]:
    """The rows ranked against UCF-101, HMDB-51 or Kinetics-400, again against the set's plain-words
    variant (``agents/labelsets/<name>.plain.txt``, line for line; ``benchmarks/plain_labels.py``).

    Their family is ``plain <set>``: a user who types "putting on eye makeup" for ApplyEyeMakeup.
    """
    from vidsense.agents.labels import load_labels

    out = []
    for name in sets:
        path = ROOT / "agents" / "labelsets" / f"{name}.plain.txt"
        if not path.is_file():
            continue
        index = {lab: i for i, lab in enumerate(load_labels(name).labels)}
        plain = path.read_text(encoding="utf-8").splitlines()
        out += [DevRow(r.path, plain[index[r.label]], str(path), f"plain {name}", r.origin, r.group, r.doubt, plain=True) for r in rows if r.labelset == name]
    return out


def tally_keys(row: DevRow) -> tuple[str, ...]:
    """The lines of a per-family table a row counts in: its family and ``all``, or ``doubt``.

    Plain-words rows (:func:`plain_rows`) ask again for clips already counted, so they count in
    their own family and ``all plain`` (``doubt plain``), never in ``all``.
    """
    plain = " plain" if row.plain else ""
    return (DOUBT + plain,) if row.doubt else (row.family, "all" + plain)


def write_manifest(rows: list[DevRow], path: Path) -> Path:
    """``path,label,labelset,family,origin,group,doubt`` CSV that ``vidsense eval`` reads too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "labelset", "family", "origin", "group", "doubt"])
        for r in rows:
            w.writerow([str(r.path), r.label, r.labelset, r.family, r.origin, r.group, int(r.doubt)])
    return path


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The flags every benchmark that reads the development set takes."""
    ap.add_argument("--shared", default=str(DEFAULT_SHARED), help=f"development clips folder with clips.csv (default {DEFAULT_SHARED})")
    ap.add_argument("--eval-set", default=str(DEFAULT_EVAL_SET), help=f"eval_set.py's manifest (default {DEFAULT_EVAL_SET}; 'none' to leave it out)")


def from_arguments(args: argparse.Namespace) -> list[DevRow]:
    """The development set the flags of :func:`add_arguments` name, printing what was skipped."""
    notes: list[str] = []
    rows = build(Path(args.shared).expanduser(), None if args.eval_set == "none" else Path(args.eval_set).expanduser(), notes)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if not rows:
        raise SystemExit("development set is empty")
    return rows


def summary(rows: list[DevRow]) -> str:
    """One line per family: clips, rows, rows in doubt, and what was pooled into it."""
    lines = [f"{'family':<12} {'clips':>5} {'rows':>5} {'doubt':>5}  from"]
    for fam in sorted({r.family for r in rows}):
        mine = [r for r in rows if r.family == fam]
        origins = ", ".join(f"{o} {n}" for o, n in sorted(Counter(o for o, _ in {(r.origin, r.path) for r in mine}).items()))
        lines.append(f"{fam:<12} {len({r.path for r in mine}):>5} {len(mine):>5} {sum(r.doubt for r in mine):>5}  {origins}")
    lines.append(f"{'all':<12} {len({r.path for r in rows}):>5} {len(rows):>5} {sum(r.doubt for r in rows):>5}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"manifest to write (default {DEFAULT_OUT})")
    ap.add_argument("--write-labels", action="store_true", help=f"rewrite {OTHER_LABELS.name} from clips.csv")
    ap.add_argument("--describe", action="store_true", help="describe every clip once, filling the perception cache")
    args = ap.parse_args(argv)
    if args.write_labels:
        OTHER_LABELS.write_text("\n".join(other_labels_of(Path(args.shared).expanduser())) + "\n", encoding="utf-8")
        print(f"wrote {OTHER_LABELS}")
    rows = from_arguments(args)
    print(summary(rows))
    print(f"manifest: {write_manifest(rows, Path(args.out).expanduser())}")
    if args.describe:
        import time

        import vidsense

        pipe = vidsense.Pipeline()
        videos = list(dict.fromkeys(r.path for r in rows))
        for i, video in enumerate(videos, 1):
            t0 = time.perf_counter()
            try:
                tl = pipe.describe(video)
                print(f"[{i}/{len(videos)}] {video.name}: {len(tl.windows)} windows, {time.perf_counter() - t0:.1f} s", flush=True)
            except Exception as exc:  # noqa: BLE001 - one unreadable clip must not stop the pass
                print(f"[{i}/{len(videos)}] {video.name}: FAILED {type(exc).__name__}: {exc}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
