"""Types that cross rooms: label sets, label scores, predictions, manifest rows.

Every room reads and writes these, so they live once, at the bottom of the
dependency order (services <- agents <- concepts <- vidsense <- app). The one
manifest reader is here too: ``classify``, ``eval`` and ``concepts fit`` read
manifests the same way (byte-order mark, relative paths, ``labelset`` column).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vidsense.services.errors import InputError

log = logging.getLogger(__name__)

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])")


def readable(label: str) -> str:
    """Human-readable form of a label as data sets spell them.

    ``"SoccerJuggling"`` -> ``"soccer juggling"``, ``"draw_sword"`` -> ``"draw sword"``,
    ``"YoYo"`` -> ``"yo yo"``; labels that already contain spaces
    (Kinetics, SSv2) keep their words and only lose stray underscores.
    """
    text = label.strip()
    if " " not in text:
        text = text.replace("_", " ").replace("-", " ")
        text = _CAMEL.sub(" ", text)
    else:
        text = text.replace("_", " ")
    text = re.sub(r"\s+", " ", text).strip()
    # Keep acronyms in CamelCase names readable rather than lower-casing everything blindly.
    return " ".join(w if (w.isupper() and len(w) > 1) else w.lower() for w in text.split(" "))


@dataclass(frozen=True)
class LabelSet:
    """An ordered, duplicate-free list of candidate labels.

    Attributes:
        name: bundled name, file stem, or ``"custom"`` for an inline list.
        labels: the labels exactly as the set spells them.
        readable: human-readable form of each label, same order.
    """

    name: str
    labels: tuple[str, ...]
    readable: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def sha256(self) -> str:
        """Stable identity of the label list (for caches)."""
        return hashlib.sha256("\n".join(self.labels).encode()).hexdigest()

    def index(self, label: str) -> int:
        """Position of ``label`` (exact spelling)."""
        return self.labels.index(label)

    @classmethod
    def from_labels(cls, name: str, labels: list[str] | tuple[str, ...], source: str = "") -> "LabelSet":
        """Clean a raw list: strip blanks, drop duplicates (with a warning), reject empty.

        Raises:
            InputError: when no label is left.
        """
        cleaned: list[str] = []
        seen: set[str] = set()
        dupes: list[str] = []
        blanks = 0
        for raw in labels:
            lab = raw.strip()
            if not lab or lab.startswith("#"):
                blanks += bool(not lab)
                continue
            if lab in seen:
                dupes.append(lab)
                continue
            seen.add(lab)
            cleaned.append(lab)
        where = source or name
        if dupes:
            log.warning("%s: dropped %d duplicate label(s): %s", where, len(dupes), ", ".join(sorted(set(dupes))[:5]))
        if blanks and cleaned and source:
            log.warning("%s: skipped %d blank line(s)", where, blanks)
        if not cleaned:
            raise InputError(f"{where}: label list is empty")
        return cls(name=name, labels=tuple(cleaned), readable=tuple(readable(lab) for lab in cleaned))


@dataclass(frozen=True)
class LabelScore:
    """A label (exact spelling of its set) and its probability."""

    label: str
    score: float


@dataclass(frozen=True)
class SourceVote:
    """What one evidence source said about a video (the fused route keeps one per source).

    Attributes:
        source: the evidence source (``action``, ``objects``, ``speech``, ...).
        weight: its weight in the fusion.
        coverage: share of the video's windows it had evidence in.
        top: its own best labels with its probabilities.
        contribution: how far it pushed the predicted label above the average label (fused log-score units).
    """

    source: str
    weight: float
    coverage: float
    top: tuple[LabelScore, ...]
    contribution: float


@dataclass(frozen=True)
class Prediction:
    """A reasoner's answer for one timeline.

    Attributes:
        label: the chosen label, spelled as in the label set.
        top_k: best labels with probabilities, best first.
        labelset: name of the label set.
        reasoner: registry name of the reasoner.
        candidates: every label the reasoner scored, with its probability
            (the shortlist for large sets), best first.
        low_confidence: nothing was observed, or the top probability is low.
        justification: the LLM's one- or two-sentence reason ('' unless asked for).
        stats: timings (seconds) and token counts.
        route: which route answered (``fused``, ``llm``, ``embedding``; '' when the method has one route).
        route_reason: why that route ran.
        evidence: each evidence source's vote (fused and cascade routes).
        warnings: what a reader must know before trusting the label, e.g. that only
            speech or on-screen text supports it, not what is seen.
    """

    label: str
    top_k: tuple[LabelScore, ...]
    labelset: str
    reasoner: str
    candidates: tuple[LabelScore, ...]
    low_confidence: bool = False
    justification: str = ""
    stats: dict[str, float] = field(default_factory=dict, compare=False, hash=False)
    route: str = ""
    route_reason: str = ""
    evidence: tuple[SourceVote, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def probability(self, label: str) -> float:
        """Probability of ``label`` (0 when it was not a candidate)."""
        return next((c.score for c in self.candidates if c.label == label), 0.0)

    def rank(self, label: str, set_size: int) -> float:
        """1-based rank of ``label``; a label outside the candidates ranks in the middle of the rest."""
        names = [c.label for c in self.candidates]
        if label in names:
            return float(names.index(label) + 1)
        rest = set_size - len(names)
        return len(names) + (rest + 1) / 2 if rest > 0 else float(set_size)


@dataclass(frozen=True)
class ManifestRow:
    """One labelled video of a manifest.

    Attributes:
        path: the video (relative paths resolved against the manifest's folder).
        label: its true label ('' when the manifest only lists videos).
        labelset: the row's label set (its ``labelset`` column, else the default given
            to :func:`read_manifest`; a file next to the manifest becomes its full path).
        line: the row's line in the file (the header is line 1).
    """

    path: Path
    label: str
    labelset: str = ""
    line: int = 0


def read_manifest(path: str | Path, labels: str | None = None) -> list[ManifestRow]:
    """Parse a manifest CSV (header ``path,label`` and an optional ``labelset``).

    A byte-order mark (Excel's "CSV UTF-8") is accepted; column names are
    case-insensitive; rows without a path are skipped.

    Args:
        path: the CSV file.
        labels: label set for rows without a ``labelset`` value.

    Raises:
        InputError: missing file, unreadable file, missing columns, a row with more
            values than the header (naming its line), or no rows.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: manifest not found" if not p.exists() else f"{p}: is not a file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read manifest ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    fields = [(f or "").strip().lower() for f in reader.fieldnames or []]
    if "path" not in fields or "label" not in fields:
        raise InputError(f"{p}: manifest needs a header with columns path,label[,labelset] (got {','.join(fields) or 'nothing'})")
    rows = []
    for raw in reader:
        i = reader.line_num
        if None in raw:
            # A path with an unquoted comma splits into two values: guessing which part is the
            # path would classify the wrong file, so the line is named instead.
            extra = ",".join(v or "" for v in raw[None])
            raise InputError(f"{p}: line {i} has more values than the header's {len(fields)} columns (extra: {extra!r}); quote a path or label that contains a comma")
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        if not row.get("path"):
            continue
        video = Path(row["path"]).expanduser()
        if not video.is_absolute():
            video = p.parent / video
        ls = row.get("labelset") or labels or ""
        if ls and not Path(ls).is_absolute() and (p.parent / ls).is_file():
            ls = str(p.parent / ls)
        rows.append(ManifestRow(video, row.get("label", ""), ls, i))
    if not rows:
        raise InputError(f"{p}: manifest has no rows")
    return rows
