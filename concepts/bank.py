"""Concept banks: the human-readable vocabulary the concept bottleneck speaks.

A bank holds, for one label set, short concepts ("soccer ball", "grass
field", "repeated kicking", "crowd cheering"), each with a kind and the
classes it supports (with weights). The support matrix is what makes the
MoTIF model work with no training: it becomes the classifier's initial weights.

Three ways to get a bank:

* :func:`generate_bank` asks an LLM once per label (``generate_fn(prompt) ->
  str`` is the seam the LLM plugs into) and parses its free-form answer.
* :func:`fallback_bank` is deterministic and needs no model at all: it takes
  the readable label name as a sub-action concept ("apply eye makeup"), each
  noun of the label name as an object concept ("makeup"), and short key
  phrases of the label's description (runs of content words between stop
  words and punctuation, at most three words) as concepts whose kind is guessed
  from a small lexicon (scene words, sound words, speech words, ``-ing``
  verbs). Phrases shared by several labels support all of them.
* :func:`apply_user_file` lets a user replace or extend a bank with a YAML/JSON
  file (format in its docstring).

Near-duplicates ("soccer ball" / "a soccer ball" / "football") are merged by
embedding cosine similarity with :func:`merge_near_duplicates`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np

from vidsense.services.errors import InputError

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

# Lexicon for guessing a kind from the words of a phrase (fallback bank and untagged LLM lines).
_SCENE_WORDS = frozenset(
    "field court pool gym room kitchen bathroom stage street road beach sea ocean river lake water snow mountain "
    "forest park track arena stadium studio outdoors outdoor indoors indoor floor ground ice rink ring mat hall "
    "garden yard sky air table desk shop classroom office bedroom".split()
)
_SOUND_WORDS = frozenset(
    "sound sounds music noise cheering applause clapping crowd whistle splash splashing engine bang thud drum "
    "drums singing song beat ringing barking laughter laughing".split()
)
_SPEECH_WORDS = frozenset("speech talking talk speaking saying says words voice commentary instructions counting".split())
_STOP_WORDS = frozenset(
    "a an the and or but of to in on at by for with from into onto over under up down out off as is are was were "
    "be been being it its this that these those their his her he she they them one ones some someone somebody person "
    "people man woman who whom which while where when then than there here very also typically usually often using "
    "uses use may can could will would should each other another such both either their own".split()
)
# Verbs too vague to be a concept on their own when they appear in a label name ("ApplyEyeMakeup").
_VAGUE_VERBS = frozenset("apply do does make get take put use play have go give set".split())
_PREAMBLE = re.compile(r"^(here|sure|certainly|below|the following|these are|concepts?\b|output)", re.I)
_BULLET = re.compile(r"^\s*(?:[-*\u2022>]+|\(?\d+[.)]|[a-z][.)])\s*", re.I)


@dataclass(frozen=True)
class Concept:
    """One human-interpretable concept.

    Attributes:
        text: the concept as a short phrase, e.g. ``"soccer ball"``.
        kind: ``object``, ``scene``, ``sub-action``, ``sound`` or ``speech``.
        supports: ``(label, weight)`` pairs, sorted by label; weight in (0, 1].
    """

    text: str
    kind: ConceptKind = "object"
    supports: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown concept kind {self.kind!r}; expected one of {', '.join(KINDS)}")

    @property
    def support(self) -> dict[str, float]:
        """Supported labels and their weights."""
        return dict(self.supports)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"text": self.text, "kind": self.kind, "supports": dict(self.supports)}


def make_concept(text: str, kind: str, supports: Mapping[str, float]) -> Concept:
    """Build a :class:`Concept` with normalised text and canonically ordered support."""
    return Concept(
        text=normalise_text(text),
        kind=_KIND_ALIASES.get(kind.strip().lower(), kind),  # type: ignore[arg-type]
        supports=tuple(sorted((str(k), round(float(v), 4)) for k, v in supports.items() if float(v) > 0)),
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
            concepts=tuple(make_concept(c["text"], c.get("kind", "object"), _support_of(c.get("supports", {}))) for c in data["concepts"]),
            generator=str(data.get("generator", "")),
        )

    def save(self, path: str | Path) -> Path:
        """Write the bank as JSON (atomically) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
        return path

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


def key_phrases(text: str, max_words: int = 3) -> list[str]:
    """Runs of content words between stop words and punctuation, longest runs cut to ``max_words``.

    ``"A person kicks a soccer ball on a grass field."`` -> ``["kicks", "soccer ball", "grass field"]``.
    """
    out: list[str] = []
    for chunk in re.split(r"[.,;:!?()\[\]\"/]+", text.lower()):
        run: list[str] = []
        for word in re.findall(r"[a-z][a-z'\-]*", chunk) + [""]:
            if word and word not in _STOP_WORDS:
                run.append(word)
                continue
            if run:
                phrase = " ".join(run[-max_words:])
                if phrase not in out and len(phrase) > 2:
                    out.append(phrase)
            run = []
    return out


def guess_kind(phrase: str, default: ConceptKind = "object") -> ConceptKind:
    """The kind a phrase most likely has, from a small lexicon (first matching rule wins)."""
    words = phrase.lower().split()
    rules: tuple[tuple[ConceptKind, Callable[[list[str]], bool]], ...] = (
        ("speech", lambda ws: any(w in _SPEECH_WORDS for w in ws)),
        ("sound", lambda ws: any(w in _SOUND_WORDS for w in ws)),
        ("scene", lambda ws: any(w in _SCENE_WORDS for w in ws)),
        ("sub-action", lambda ws: any(w.endswith("ing") and len(w) > 4 for w in ws) or (len(ws) == 1 and ws[0].endswith("s") and not ws[0].endswith("ss"))),
    )
    for kind, rule in rules:
        if words and rule(words):
            return kind
    return default


# ---------------------------------------------------------------------------
# LLM generation (the seam)

GenerateFn = Callable[[str], str]

PROMPT = (
    "You help recognise the action \"{readable}\" in short videos{description}.\n"
    "List {n} short concepts (1 to 4 words each) that a viewer could see or hear in such a video: "
    "objects, the scene, sub-actions (body movements), sounds, and typical speech.\n"
    "Write one concept per line as `kind: concept`, where kind is one of object, scene, sub-action, sound, speech.\n"
    "Do not name the action itself. No explanations."
)


def concept_prompt(readable: str, description: str = "", n: int = 8) -> str:
    """The prompt :func:`generate_bank` sends for one label."""
    desc = f" ({description.strip().rstrip('.')})" if description.strip() else ""
    return PROMPT.format(readable=readable, description=desc, n=n)


def generate_bank(
    labels: Sequence[str],
    descriptions: Mapping[str, str] | None,
    generate_fn: GenerateFn,
    label_set: str = "custom",
    generator: str = "llm",
    readable: Sequence[str] | None = None,
    per_label: int = 8,
    include_fallback: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ConceptBank:
    """Ask an LLM for concepts, one prompt per label, and parse the answers.

    A label the LLM answers with nothing usable still gets the fallback
    concepts, so every label stays predictable by the zero-shot model.

    Args:
        labels: exact label spellings, in classifier order.
        descriptions: optional description per label (included in the prompt).
        generate_fn: ``prompt -> completion`` (the LLM).
        label_set: the label set's name.
        generator: recorded in the bank, e.g. ``llm:qwen2.5-coder-1.5b``.
        readable: human-readable label forms (default: :func:`readable_label`).
        per_label: concepts to ask for per label.
        include_fallback: also add :func:`fallback_bank`'s concepts (the label name
            itself and its nouns), which anchor each class.
        progress: called with ``(done, total)`` after each label.
    """
    readable = list(readable) if readable is not None else [readable_label(x) for x in labels]
    descriptions = descriptions or {}
    found: dict[str, tuple[str, dict[str, float]]] = {}
    if include_fallback:
        for c in fallback_bank(labels, {}, label_set, readable).concepts:
            found[c.text] = (c.kind, c.support)
    for i, (label, name) in enumerate(zip(labels, readable)):
        answer = generate_fn(concept_prompt(name, descriptions.get(label, ""), per_label))
        for text, kind in parse_concepts(answer)[: per_label * 2]:
            _, support = found.setdefault(text, (kind, {}))
            support[label] = 1.0
        if progress is not None:
            progress(i + 1, len(labels))
    concepts = tuple(make_concept(text, kind, support) for text, (kind, support) in found.items())
    return ConceptBank(label_set=label_set, labels=tuple(labels), concepts=concepts, generator=generator)


def parse_concepts(answer: str) -> list[tuple[str, ConceptKind]]:
    """Concepts from an LLM answer, robust to the usual mess.

    Accepts a JSON list (of strings or of ``{"text"|"concept", "kind"}``
    objects, possibly inside a code fence or an object), or lines such as
    ``- object: soccer ball``, ``1. Sound | crowd cheering``, ``**Scene**: grass field``
    or a bare ``kicking``. Preambles, headings and over-long lines are dropped;
    untagged concepts get a kind from :func:`guess_kind`.

    Returns:
        ``(normalised text, kind)`` pairs, deduplicated, in answer order.
    """
    items = _parse_json_concepts(answer)
    if items is None:
        items = []
        heading_kind: ConceptKind | None = None
        for raw in answer.splitlines():
            line = _BULLET.sub("", raw.replace("**", "").replace("__", "")).strip()
            if not line or line.startswith("```"):
                continue
            head, sep, rest = _split_kind(line)
            if sep and not rest:  # a heading such as "Objects:"
                heading_kind = head
                continue
            if head is None and (_PREAMBLE.match(line) or line.endswith(":")):
                continue
            for part in re.split(r"\s*[,;]\s*", rest):
                items.append((part, head or heading_kind))
    out: list[tuple[str, ConceptKind]] = []
    seen: set[str] = set()
    for text, kind in items:
        t = normalise_text(re.sub(r"\s*[(\[].*$", "", text))  # drop "(because ...)" tails
        if not t or len(t.split()) > 5 or len(t) < 3 or t in seen or not re.search(r"[a-z]", t):
            continue
        seen.add(t)
        out.append((t, kind if kind in KINDS else guess_kind(t)))
    return out


def _split_kind(line: str) -> tuple[ConceptKind | None, bool, str]:
    """``"object: ball"`` -> ``("object", True, "ball")``; a line without a known kind prefix -> ``(None, False, line)``."""
    m = re.match(r"^\s*\[?([A-Za-z][A-Za-z \-]{1,15}?)\]?\s*[:|\u2013\u2014]\s*(.*)$", line) or re.match(
        r"^\s*\(([A-Za-z][A-Za-z \-]{1,15}?)\)\s*(.*)$", line
    )
    if m and m.group(1).strip().lower() in _KIND_ALIASES:
        return _KIND_ALIASES[m.group(1).strip().lower()], True, m.group(2).strip()
    return None, False, line


def _parse_json_concepts(answer: str) -> list[tuple[str, Any]] | None:
    start = min((i for i in (answer.find("["), answer.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None
    end = max(answer.rfind("]"), answer.rfind("}"))
    try:
        data = json.loads(answer[start : end + 1])
    except ValueError:
        return None
    if isinstance(data, dict):  # {"concepts": [...]} or {"object": [...], "sound": [...]}
        if isinstance(data.get("concepts"), list):
            data = data["concepts"]
        else:
            data = [{"text": t, "kind": k} for k, v in data.items() for t in (v if isinstance(v, list) else [v])]
    if not isinstance(data, list):
        return None
    out: list[tuple[str, Any]] = []
    for item in data:
        if isinstance(item, str):
            out.append((item, None))
        elif isinstance(item, dict):
            text = item.get("text") or item.get("concept") or item.get("name")
            kind = _KIND_ALIASES.get(str(item.get("kind") or item.get("type") or "").lower())
            if isinstance(text, str):
                out.append((text, kind))
    return out


# ---------------------------------------------------------------------------
# Editing


def class_specificity(bank: ConceptBank, embed_fn: Callable[[list[str]], np.ndarray], class_texts: Sequence[str]) -> np.ndarray:
    """``[K, C]``: how much better each concept fits each class than the other classes.

    The cosine similarity of concept ``j`` to class ``k``'s text (its
    description, or its name), as a z-score over the classes of the set. A
    concept that fits every class alike ("camera", "person") scores about 0 for
    all of them; "yo yo" scores high for YoYo only. The zero-shot concept model
    weights each class's supporting concepts by it: a small LLM attaches
    generic concepts to classes, and before this weighting one class that owned
    three of them (UCF-101's YoYo) won on every clip.

    Args:
        bank: the concept bank (columns).
        embed_fn: texts -> L2-normalised ``[n, d]`` embeddings.
        class_texts: one text per label of the bank, in its order.
    """
    if len(class_texts) != len(bank.labels):
        raise ValueError(f"{len(class_texts)} class texts for {len(bank.labels)} labels")
    sims = np.asarray(embed_fn(list(class_texts))) @ np.asarray(embed_fn(list(bank.texts))).T
    return ((sims - sims.mean(axis=0)) / (sims.std(axis=0) + 1e-6)).astype(np.float32)


def merge_near_duplicates(bank: ConceptBank, embed_fn: Callable[[list[str]], np.ndarray], threshold: float = 0.88) -> ConceptBank:
    """Merge concepts whose embeddings' cosine similarity is at least ``threshold``.

    Greedy in bank order: each concept joins the first earlier kept concept it
    is similar enough to; the kept concept's text and kind win, support weights
    are combined by maximum.

    Args:
        bank: the bank to clean.
        embed_fn: ``texts -> [n, d]`` embeddings (need not be normalised).
        threshold: cosine similarity at or above which two concepts are one.
    """
    if len(bank) < 2:
        return bank
    emb = np.asarray(embed_fn(bank.texts), dtype=np.float32)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    keep: list[int] = []
    support: dict[int, dict[str, float]] = {}
    for j, c in enumerate(bank.concepts):
        if keep:
            sims = emb[keep] @ emb[j]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                target = support[keep[best]]
                for label, w in c.supports:
                    target[label] = max(target.get(label, 0.0), w)
                continue
        keep.append(j)
        support[j] = c.support
    concepts = tuple(make_concept(bank.concepts[j].text, bank.concepts[j].kind, support[j]) for j in keep)
    return replace(bank, concepts=concepts)


def apply_user_file(bank: ConceptBank, path: str | Path) -> ConceptBank:
    """Replace or extend ``bank`` with a user's YAML or JSON file.

    Format::

        mode: extend            # or "replace" (default: extend)
        remove: [crowd]         # concept texts to drop (extend mode)
        concepts:
          - text: soccer ball
            kind: object        # object | scene | sub-action | sound | speech
            supports: {SoccerJuggling: 1.0, SoccerPenalty: 0.8}   # or a list of labels (weight 1)

    A listed concept that already exists gets the file's kind and its support
    merged in (the file's weights win).

    Raises:
        InputError: unreadable file, unknown label or kind, or a concept without text.
    """
    path = Path(path)
    data = _read_user_file(path)
    mode = str(data.get("mode", "extend")).lower()
    if mode not in ("extend", "replace"):
        raise InputError(f"{path}: mode must be 'extend' or 'replace', got {mode!r}")
    known = set(bank.labels)
    found: dict[str, tuple[str, dict[str, float]]] = {}
    if mode == "extend":
        removed = {normalise_text(str(t)) for t in data.get("remove", []) or []}
        found = {c.text: (c.kind, c.support) for c in bank.concepts if c.text not in removed}
    for i, item in enumerate(data.get("concepts", []) or []):
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict) or not str(item.get("text", "")).strip():
            raise InputError(f"{path}: concept #{i + 1} has no text")
        text = normalise_text(str(item["text"]))
        kind = _KIND_ALIASES.get(str(item.get("kind", "")).lower()) or (found[text][0] if text in found else guess_kind(text))
        if item.get("kind") and str(item["kind"]).lower() not in _KIND_ALIASES:
            raise InputError(f"{path}: concept {text!r} has unknown kind {item['kind']!r}; expected one of {', '.join(KINDS)}")
        support = _support_of(item.get("supports", {}))
        unknown = sorted(set(support) - known)
        if unknown:
            raise InputError(f"{path}: concept {text!r} supports unknown label {unknown[0]!r} (label set {bank.label_set!r})")
        merged = dict(found[text][1]) if text in found else {}
        merged.update(support)
        found[text] = (kind, merged)
    concepts = tuple(make_concept(t, k, s) for t, (k, s) in found.items())
    generator = "user" if mode == "replace" else f"{bank.generator}+user"
    return replace(bank, concepts=concepts, generator=generator)


def _read_user_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read concept file ({exc.strerror or exc})") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            import yaml

            data = yaml.safe_load(raw)
    except Exception as exc:  # yaml and json raise different families
        raise InputError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'} ({str(exc).splitlines()[0]})") from None
    if isinstance(data, list):
        data = {"concepts": data}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping with a 'concepts' list")
    return data


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
