"""Manifests: CSV files listing labelled videos (``path,label[,labelset]``).

Relative paths are relative to the manifest's folder. Used by evaluation and
by few-shot fitting of the concept model.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from vidsense.services.errors import InputError


@dataclass(frozen=True)
class ManifestRow:
    """One labelled video."""

    path: Path
    label: str
    labelset: str = ""
    line: int = 0


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Parse a manifest CSV (header ``path,label`` and optional ``labelset``).

    Raises:
        InputError: missing file, missing columns, or no rows.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: manifest not found" if not p.exists() else f"{p}: is not a file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read manifest ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "path" not in fields or "label" not in fields:
        raise InputError(f"{p}: manifest needs a header with columns path,label (got {','.join(fields) or 'nothing'})")
    rows = []
    for i, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not row.get("path"):
            continue
        video = Path(row["path"]).expanduser()
        if not video.is_absolute():
            video = p.parent / video
        rows.append(ManifestRow(video, row.get("label", ""), row.get("labelset", ""), i))
    if not rows:
        raise InputError(f"{p}: manifest has no rows")
    return rows
