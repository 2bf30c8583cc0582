"""The batch output file of ``vidsense classify --output``: JSON lines or CSV.

Rows are appended and flushed (and fsynced) one video at a time, so a crash
loses at most the video in flight. ``--resume`` reads the rows already present
and the batch skips a video only when a successful row has the same content
hash, label set, reasoner and top-k; failed rows are retried.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, TextIO

from vidsense import InputError

CSV_COLUMNS = ("video", "label", "score", "top_k", "labelset", "reasoner", "low_confidence", "sha256", "total_s", "error", "notes")


def printable(text: str) -> str:
    """``text`` with the undecodable bytes of a file name (lone surrogates) shown as ``\\xNN``.

    Python hands a non-UTF-8 file name over as a string with surrogate escapes,
    which no UTF-8 file or terminal accepts; this is how such a name is shown.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_line(row: dict[str, Any]) -> str:
    line = json.dumps(row, ensure_ascii=False)
    # A non-UTF-8 file name: escaped as \udcNN, valid JSON that json.loads turns back into the
    # same name (os.fsencode then gives its original bytes).
    return line if line.isascii() or not _SURROGATE.search(line) else json.dumps(row, ensure_ascii=True)


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    top = row.get("top_k") or []
    return {
        "video": printable(str(row["video"])),
        "label": row.get("label", ""),
        "score": top[0]["score"] if top else "",
        "top_k": json.dumps(top) if top else "",
        "labelset": row.get("labelset", ""),
        "reasoner": row.get("reasoner", ""),
        "low_confidence": row.get("low_confidence", ""),
        "sha256": row.get("sha256", ""),
        "total_s": (row.get("timings") or {}).get("total", ""),
        "error": printable(str(row.get("error", ""))),
        "notes": "; ".join(row.get("notes") or []),
    }


def _jsonl_rows(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if isinstance(row, dict):
            out.append(row)
    return out


def _csv_rows(text: str) -> list[dict[str, Any]]:
    out = []
    for r in csv.DictReader(io.StringIO(text)):
        try:
            top = json.loads(r["top_k"]) if r.get("top_k") else []
        except json.JSONDecodeError:
            top = []
        out.append({**r, "top_k": top})
    return out


# suffix -> (reader of the rows already written, needs a header)
FORMATS: dict[str, tuple[Callable[[str], list[dict[str, Any]]], bool]] = {".jsonl": (_jsonl_rows, False), ".csv": (_csv_rows, True)}


def done_key(sha256: str, labelset: str, reasoner: str, top_k: int) -> tuple[str, str, str, int]:
    """What makes a finished row reusable by ``--resume``: the same file, label set, reasoner and top-k."""
    return (sha256, labelset, reasoner, int(top_k))


def _row_key(row: dict[str, Any]) -> tuple[str, str, str, int] | None:
    """The :func:`done_key` of a successful row; None for an error row (it is retried)."""
    if row.get("error") or not row.get("sha256") or not row.get("label"):
        return None
    return done_key(str(row["sha256"]), str(row.get("labelset", "")), str(row.get("reasoner", "")), len(row.get("top_k") or []))


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
        self.done: set[tuple[str, str, str, int]] = set()
        if path.is_dir():
            raise InputError(f"--output {path}: is a directory")
        exists = path.exists() and path.stat().st_size > 0
        if exists and not (resume or overwrite):
            raise InputError(f"--output {path}: file exists; pass --resume to continue it or --overwrite to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        if exists and resume:
            text = self._drop_partial_line()
            self.done = {k for k in map(_row_key, FORMATS[self.format][0](text)) if k is not None}
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

    def failed_videos(self) -> list[str]:
        """The videos whose latest row in the file is an error (this run's and earlier runs')."""
        self._fh.flush()
        latest: dict[str, bool] = {}
        for row in FORMATS[self.format][0](self.path.read_text(encoding="utf-8", errors="replace")):
            latest[str(row.get("video", ""))] = bool(row.get("error"))
        return [v for v, failed in latest.items() if failed]

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (a result's ``to_dict()`` or an error record) and flush it to disk."""
        if self._csv is not None:
            self._csv.writerow(_csv_row(row))
        else:
            self._fh.write(_json_line(row) + "\n")
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
