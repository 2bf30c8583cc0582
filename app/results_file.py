"""The batch output file of ``vidsense classify --output``: JSON lines or CSV.

Rows are appended and flushed (and fsynced) one video at a time, so a crash
loses at most the video in flight. ``--resume`` reads the content hashes
already present and the batch skips those videos.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, TextIO

from vidsense import InputError

CSV_COLUMNS = ("video", "label", "score", "top_k", "labelset", "reasoner", "low_confidence", "sha256", "total_s", "error", "notes")


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    top = row.get("top_k") or []
    return {
        "video": row["video"],
        "label": row.get("label", ""),
        "score": top[0]["score"] if top else "",
        "top_k": json.dumps(top) if top else "",
        "labelset": row.get("labelset", ""),
        "reasoner": row.get("reasoner", ""),
        "low_confidence": row.get("low_confidence", ""),
        "sha256": row.get("sha256", ""),
        "total_s": (row.get("timings") or {}).get("total", ""),
        "error": row.get("error", ""),
        "notes": "; ".join(row.get("notes") or []),
    }


def _jsonl_hashes(text: str) -> set[str]:
    out = set()
    for line in text.splitlines():
        try:
            sha = json.loads(line).get("sha256")
        except (json.JSONDecodeError, AttributeError):
            continue  # a line cut by a crash
        if sha:
            out.add(sha)
    return out


def _csv_hashes(text: str) -> set[str]:
    return {r["sha256"] for r in csv.DictReader(io.StringIO(text)) if r.get("sha256")}


# suffix -> (reader of the hashes already written, needs a header)
FORMATS: dict[str, tuple[Callable[[str], set[str]], bool]] = {".jsonl": (_jsonl_hashes, False), ".csv": (_csv_hashes, True)}


def output_format(path: Path) -> str:
    """The format of ``path`` from its suffix (``.jsonl`` / ``.json`` or ``.csv``)."""
    suffix = ".jsonl" if path.suffix.lower() in (".jsonl", ".json", ".ndjson") else path.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"--output {path}: expected a .jsonl or .csv file")
    return suffix


class ResultsFile:
    """Append-only batch output.

    Args:
        path: the output file.
        resume: keep the existing rows and report their hashes in :attr:`done`;
            without it an existing file is an error (never overwritten silently)
            unless ``overwrite``.
        overwrite: replace an existing file.
    """

    def __init__(self, path: Path, *, resume: bool = False, overwrite: bool = False) -> None:
        self.path = path
        self.format = output_format(path)
        self.done: set[str] = set()
        if path.is_dir():
            raise InputError(f"--output {path}: is a directory")
        exists = path.exists() and path.stat().st_size > 0
        if exists and not (resume or overwrite):
            raise InputError(f"--output {path}: file exists; pass --resume to continue it or --overwrite to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        if exists and resume:
            text = self._drop_partial_line()
            self.done = FORMATS[self.format][0](text)
            self._fh: TextIO = open(path, "a", encoding="utf-8", newline="")
            write_header = False
        else:
            self._fh = open(path, "w", encoding="utf-8", newline="")
            write_header = FORMATS[self.format][1]
        self._csv = csv.DictWriter(self._fh, fieldnames=CSV_COLUMNS) if self.format == ".csv" else None
        if write_header:
            self._csv.writeheader()
            self._sync()

    def _drop_partial_line(self) -> str:
        """Cut a last line that a crash left without its newline, so appends start clean."""
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            data = data[: data.rfind(b"\n") + 1]
            with open(self.path, "r+b") as f:
                f.truncate(len(data))
        return data.decode("utf-8", errors="replace")

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (a result's ``to_dict()`` or an error record) and flush it to disk."""
        if self._csv is not None:
            self._csv.writerow(_csv_row(row))
        else:
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._sync()

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "ResultsFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
