"""Editing concept banks: merging near-duplicates, class specificity, and user files.

* :func:`merge_near_duplicates` merges near-duplicates ("soccer ball" / "a
  soccer ball" / "football") by embedding cosine similarity.
* :func:`class_specificity` scores how much better each concept fits each
  class than the other classes (the zero-shot model weights support by it).
* :func:`apply_user_file` lets a user replace or extend a bank with a YAML/JSON
  file (format in its docstring).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vidsense.concepts.bank import _KIND_ALIASES, KINDS, ConceptBank, _support_of, make_concept, normalise_text
from vidsense.concepts.phrases import guess_kind
from vidsense.services.errors import InputError


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
