"""Concept banks: the data classes, and how a bank is stored, found and built without a model.

A bank holds, for one label set, short concepts ("soccer ball", "grass
field", "repeated kicking", "crowd cheering"), each with a kind and the
classes it supports (with weights). The support matrix is what makes the
MoTIF model work with no training: it becomes the classifier's initial weights.

This module holds the bank itself (:class:`Concept`, :class:`ConceptBank`,
JSON save and load, the cache path, the banks bundled with the package) and
:func:`fallback_bank`, which is deterministic and needs no model at all: it
takes the readable label name as a sub-action concept ("apply eye makeup"),
each noun of the label name as an object concept ("makeup"), and short key
phrases of the label's description (runs of content words between stop words
and punctuation, at most three words) as concepts whose kind is guessed from a
small lexicon (scene words, sound words, speech words, ``-ing`` verbs; see
:mod:`vidsense.concepts.phrases`). Phrases shared by several labels support all
of them.

Making a bank with an LLM is :mod:`vidsense.concepts.generate`; editing one
(merging near-duplicates, class specificity, a user's YAML/JSON file) is
:mod:`vidsense.concepts.merge`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

from vidsense.concepts.phrases import _STOP_WORDS, _VAGUE_VERBS, guess_kind, key_phrases
from vidsense.services.errors import InputError
from vidsense.services.files import write_text_atomically

ConceptKind = Literal["object", "scene", "sub-action", "sound", "speech"]
KINDS: tuple[ConceptKind, ...] = ("object", "scene", "sub-action", "sound", "speech")
FORMAT_VERSION = 1

# Words an LLM uses for each kind; the key is what we store.
_KIND_ALIASES: dict[str, ConceptKind] = {
    "object": "object", "objects": "object", "item": "object", "items": "object", "equipment": "object",
    "scene": "scene", "scenes": "scene", "place": "scene", "setting": "scene", "location": "scene", "environment": "scene",
    "sub-action": "sub-action", "subaction": "sub-action", "sub action": "sub-action", "action": "sub-action",
    "actions": "sub-action", "motion": "sub-action", "movement": "sub-action", "pose": "sub-action", "sub-actions": "sub-action",
    "sound": "sound", "sounds": "sound", "audio": "sound", "noise": "sound",
    "speech": "speech", "dialogue": "speech", "words": "speech", "spoken": "speech", "text": "speech",
}


@dataclass(frozen=True)
class Concept:
    """One human-interpretable concept.

    Attributes:
        text: the concept as a short phrase, e.g. ``"soccer ball"``.
        kind: ``object``, ``scene``, ``sub-action``, ``sound`` or ``speech``.
        supports: ``(label, weight)`` pairs, sorted by label; weight in (0, 1].
        source: '' for a concept read from the window text (its activation is a
            text cosine); otherwise the evidence source whose class it is
            (``action``, ``objects``, ``scene``, ``sound``, ``gesture``): its
            activation is that perception model's own score in the window
            (see :mod:`vidsense.concepts.evidence_concepts`).
    """

    text: str
    kind: ConceptKind = "object"
    supports: tuple[tuple[str, float], ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown concept kind {self.kind!r}; expected one of {', '.join(KINDS)}")

    @property
    def support(self) -> dict[str, float]:
        """Supported labels and their weights."""
        return dict(self.supports)

    @property
    def evidence(self) -> bool:
        """Whether the activation is a perception model's score (not a text cosine)."""
        return bool(self.source)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``source`` only on evidence concepts, so text banks keep their hash)."""
        d: dict[str, Any] = {"text": self.text, "kind": self.kind, "supports": dict(self.supports)}
        if self.source:
            d["source"] = self.source
        return d


def make_concept(text: str, kind: str, supports: Mapping[str, float], source: str = "") -> Concept:
    """Build a :class:`Concept` with normalised text and canonically ordered support."""
    return Concept(
        text=normalise_text(text),
        kind=_KIND_ALIASES.get(kind.strip().lower(), kind),  # type: ignore[arg-type]
        supports=tuple(sorted((str(k), round(float(v), 4)) for k, v in supports.items() if float(v) > 0)),
        source=source,
    )


@dataclass(frozen=True)
class ConceptBank:
    """Concepts for one label set, with the classes each supports.

    Attributes:
        label_set: name of the label set (e.g. ``ucf101``).
        labels: the label set's labels, exact spellings, in classifier order.
        concepts: the concepts, in activation-column order.
        generator: how the bank was made (``fallback``, ``llm:<model>``, ``user``, ...).
    """

    label_set: str
    labels: tuple[str, ...]
    concepts: tuple[Concept, ...]
    generator: str = "fallback"
    _hash: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        known = set(self.labels)
        for c in self.concepts:
            for label, _ in c.supports:
                if label not in known:
                    raise ValueError(f"concept {c.text!r} supports {label!r}, which is not a label of {self.label_set!r}")
        object.__setattr__(self, "_hash", _content_hash(self))

    @property
    def hash(self) -> str:
        """SHA-256 of the labels and concepts (not of the generator name): identifies the activation columns."""
        return self._hash

    @property
    def texts(self) -> list[str]:
        """Concept texts in column order."""
        return [c.text for c in self.concepts]

    @property
    def evidence_columns(self) -> np.ndarray:
        """Boolean ``[C]``: True where the concept is an evidence concept (a perception score)."""
        return np.array([c.evidence for c in self.concepts], dtype=bool)

    def __len__(self) -> int:
        return len(self.concepts)

    def support_matrix(self) -> np.ndarray:
        """``[labels x concepts]`` float32 matrix of support weights (0 where a concept does not support a label)."""
        index = {label: i for i, label in enumerate(self.labels)}
        m = np.zeros((len(self.labels), len(self.concepts)), dtype=np.float32)
        for j, c in enumerate(self.concepts):
            for label, w in c.supports:
                m[index[label], j] = w
        return m

    def unsupported_labels(self) -> list[str]:
        """Labels no concept supports (the zero-shot model cannot predict them)."""
        covered = {label for c in self.concepts for label, _ in c.supports}
        return [label for label in self.labels if label not in covered]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (inverse of :meth:`from_dict`)."""
        return {
            "format_version": FORMAT_VERSION,
            "label_set": self.label_set,
            "generator": self.generator,
            "hash": self.hash,
            "labels": list(self.labels),
            "concepts": [c.to_dict() for c in self.concepts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ConceptBank":
        """Rebuild a bank from :meth:`to_dict` output."""
        return cls(
            label_set=str(data["label_set"]),
            labels=tuple(data["labels"]),
            concepts=tuple(
                make_concept(c["text"], c.get("kind", "object"), _support_of(c.get("supports", {})), str(c.get("source", "")))
                for c in data["concepts"]
            ),
            generator=str(data.get("generator", "")),
        )

    def save(self, path: str | Path) -> Path:
        """Write the bank as JSON (atomically) and return the path."""
        return write_text_atomically(path, json.dumps(self.to_dict(), indent=1, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> "ConceptBank":
        """Read a bank written by :meth:`save`.

        Raises:
            InputError: the file is missing or is not a concept bank.
        """
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise InputError(f"{path}: concept bank not found") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: not a concept bank ({exc})") from None


def normalise_text(text: str) -> str:
    """Lower-case, collapse spaces, strip quotes, trailing punctuation and a leading article."""
    t = re.sub(r"\s+", " ", text.strip().strip("\"'`").strip()).lower()
    t = re.sub(r"^(a|an|the)\s+", "", t)
    return t.rstrip(" .;,:!")


def readable_label(label: str) -> str:
    """``ApplyEyeMakeup`` / ``brush_hair`` / ``Playing tennis`` -> ``apply eye makeup`` / ``brush hair`` / ``playing tennis``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", label)
    return re.sub(r"[\s_\-/]+", " ", spaced).strip().lower()


def bank_path(home: Path, label_set: str, generator: str) -> Path:
    """Where a generated bank is cached: ``<home>/concepts/banks/<label_set>--<generator>.json``."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", generator).strip("-") or "bank"
    return Path(home) / "concepts" / "banks" / f"{label_set}--{slug}.json"


def bundled_bank(label_set: str) -> ConceptBank | None:
    """The bank shipped inside the package for ``label_set`` (``concepts/banks/<name>.json``), if any."""
    res = importlib.resources.files("vidsense.concepts").joinpath("banks", f"{label_set}.json")
    if not res.is_file():
        return None
    return ConceptBank.from_dict(json.loads(res.read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------
# Deterministic fallback


def fallback_bank(
    labels: Sequence[str],
    descriptions: Mapping[str, str] | None = None,
    label_set: str = "custom",
    readable: Sequence[str] | None = None,
    max_phrases: int = 6,
) -> ConceptBank:
    """A bank built from label names and descriptions alone (no model; see the module docstring).

    Args:
        labels: exact label spellings, in classifier order.
        descriptions: optional one-sentence description per label.
        label_set: the label set's name.
        readable: human-readable label forms (default: :func:`readable_label`).
        max_phrases: at most this many description phrases per label.
    """
    readable = list(readable) if readable is not None else [readable_label(x) for x in labels]
    if len(readable) != len(labels):
        raise ValueError(f"{len(readable)} readable forms for {len(labels)} labels")
    descriptions = descriptions or {}
    found: dict[str, tuple[str, dict[str, float]]] = {}

    def add(text: str, kind: str, label: str, weight: float) -> None:
        text = normalise_text(text)
        if len(text) < 3:
            return
        _, support = found.setdefault(text, (kind, {}))
        support[label] = max(support.get(label, 0.0), weight)

    for label, name in zip(labels, readable):
        add(name, "sub-action", label, 1.0)
        words = name.split()
        for w in words:
            if len(words) > 1 and w not in _STOP_WORDS and w not in _VAGUE_VERBS and not w.endswith("ing") and len(w) > 2:
                add(w, guess_kind(w, default="object"), label, 0.7)
        for phrase in key_phrases(descriptions.get(label, ""))[:max_phrases]:
            if phrase != name:
                add(phrase, guess_kind(phrase), label, 0.5)
    concepts = tuple(make_concept(text, kind, support) for text, (kind, support) in found.items())
    return ConceptBank(label_set=label_set, labels=tuple(labels), concepts=concepts, generator="fallback")


def _support_of(value: Any) -> dict[str, float]:
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    if isinstance(value, str):
        return {value: 1.0}
    if isinstance(value, Iterable):
        return {str(v): 1.0 for v in value}
    return {}


def _content_hash(bank: ConceptBank) -> str:
    payload = json.dumps({"labels": list(bank.labels), "concepts": [c.to_dict() for c in bank.concepts]}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
