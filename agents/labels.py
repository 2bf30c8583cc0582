"""Label sets: the candidates a video is classified into.

A label set comes from a bundled name (``ucf101``, ``hmdb51``, ``kinetics400``,
``kinetics700``, ``ssv2``), a text file with one label per line, or an inline
comma-separated list. Outputs always use a label exactly as the set spells it;
the human-readable form that prompts and embeddings read is derived here, once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

from vidsense.services.errors import InputError

log = logging.getLogger(__name__)

BUNDLED: dict[str, str] = {
    "ucf101": "ucf101.txt",
    "hmdb51": "hmdb51.txt",
    "kinetics400": "kinetics400.txt",
    "kinetics700": "kinetics700.txt",
    "ssv2": "ssv2.txt",
}
# Accepted spellings of the bundled names.
ALIASES: dict[str, str] = {"k400": "kinetics400", "k700": "kinetics700", "something-something-v2": "ssv2", "sthsthv2": "ssv2"}

# Bundled labels whose mechanical readable form misleads a language model or a
# sentence embedding ("pullup" became "pulls up her pants", "wave" a water wave
# in generated descriptions). Outputs still use the label as the set spells it.
READABLE_OVERRIDES: dict[str, dict[str, str]] = {
    "hmdb51": {
        "catch": "catch something thrown",
        "dive": "dive into water",
        "fall_floor": "fall to the floor",
        "flic_flac": "flic flac (back handspring)",
        "golf": "golf swing",
        "hit": "hit something with a stick or hand",
        "kick": "kick something",
        "kiss": "kiss someone",
        "pick": "pick something up",
        "pullup": "pull ups on a bar",
        "pushup": "push ups on the floor",
        "shoot_ball": "shoot a ball at a basket",
        "shoot_bow": "shoot a bow and arrow",
        "situp": "sit ups on the floor",
        "swing_baseball": "swing a baseball bat",
        "sword": "sword fight",
        "turn": "turn around",
        "wave": "wave a hand",
    },
}

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


def bundled_names() -> list[str]:
    """Names of the label sets that ship with vidsense."""
    return list(BUNDLED)


@lru_cache(maxsize=16)
def _bundled(name: str) -> LabelSet:
    text = resources.files("vidsense.agents").joinpath("labelsets", BUNDLED[name]).read_text(encoding="utf-8")
    ls = LabelSet.from_labels(name, text.splitlines())
    over = READABLE_OVERRIDES.get(name, {})
    return replace(ls, readable=tuple(over.get(lab, r) for lab, r in zip(ls.labels, ls.readable)))


def load_labels(spec: str | list[str] | tuple[str, ...] | LabelSet) -> LabelSet:
    """Resolve ``--labels``: a bundled name, a path to a text file, or ``"a,b,c"``.

    A list or tuple is taken as the labels themselves.

    Raises:
        InputError: unknown name, unreadable file, or an empty list.
    """
    if isinstance(spec, LabelSet):
        return spec
    if isinstance(spec, (list, tuple)):
        return LabelSet.from_labels("custom", list(spec))
    raw = spec.strip()
    if not raw:
        raise InputError("--labels: label list is empty")
    key = ALIASES.get(raw.lower(), raw.lower())
    if key in BUNDLED:
        return _bundled(key)
    path = Path(raw).expanduser()
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read label file ({exc})") from None
        return LabelSet.from_labels(path.stem, text.splitlines(), source=str(path))
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a label file with one label per line")
    if "," in raw:
        return LabelSet.from_labels("custom", raw.split(","), source="--labels")
    if path.suffix or "/" in raw:
        raise InputError(f"{raw}: label file not found")
    raise InputError(f"unknown label set {raw!r}; use one of {', '.join(BUNDLED)}, a file with one label per line, or 'a,b,c'")
