"""Generating a concept bank with an LLM: the prompt, parsing the answers, and running the configured model.

:func:`generate_bank` asks an LLM once per label (``generate_fn(prompt) ->
str`` is the seam the LLM plugs into) and :func:`parse_concepts` parses its
free-form answer. :func:`build_bank` runs that with the configured LLM, once
per label set and model.

Generation asks the LLM one short question per label, so a 101-class set costs
a few minutes on a CPU; answers are kept in a resumable JSON journal beside the
bank, so an interrupted run picks up where it stopped. The result is merged for
near-duplicates and cached under ``$VIDSENSE_HOME/concepts/banks/``; the bundled
banks for UCF-101 and HMDB-51 were made with this module::

    python -m vidsense.concepts.generate ucf101 --out concepts/banks/ucf101.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from vidsense.agents.embeddings import TextEncoder
from vidsense.agents.llm import LanguageModel
from vidsense.concepts.bank import (
    _KIND_ALIASES,
    KINDS,
    ConceptBank,
    ConceptKind,
    bank_path,
    fallback_bank,
    make_concept,
    normalise_text,
    readable_label,
)
from vidsense.concepts.merge import merge_near_duplicates
from vidsense.concepts.phrases import guess_kind
from vidsense.services.progress import Counts, counted, terminal_line
from vidsense.services.schema import LabelSet

log = logging.getLogger(__name__)

MAX_TOKENS = 96


# ---------------------------------------------------------------------------
# LLM generation (the seam)

GenerateFn = Callable[[str], str]

_PREAMBLE = re.compile(r"^(here|sure|certainly|below|the following|these are|concepts?\b|output)", re.I)
_BULLET = re.compile(r"^\s*(?:[-*\u2022>]+|\(?\d+[.)]|[a-z][.)])\s*", re.I)

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
    progress: Counts | None = None,
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
        readable: human-readable label forms (default: :func:`~vidsense.concepts.bank.readable_label`).
        per_label: concepts to ask for per label.
        include_fallback: also add :func:`~vidsense.concepts.bank.fallback_bank`'s concepts (the label name
            itself and its nouns), which anchor each class.
        progress: called with ``(done, total)`` after each label.
    """
    readable = list(readable) if readable is not None else [readable_label(x) for x in labels]
    descriptions = descriptions or {}
    found: dict[str, tuple[str, dict[str, float]]] = {}
    if include_fallback:
        for c in fallback_bank(labels, {}, label_set, readable).concepts:
            found[c.text] = (c.kind, c.support)
    for label, name in counted(list(zip(labels, readable)), progress):
        answer = generate_fn(concept_prompt(name, descriptions.get(label, ""), per_label))
        for text, kind in parse_concepts(answer)[: per_label * 2]:
            _, support = found.setdefault(text, (kind, {}))
            support[label] = 1.0
    concepts = tuple(make_concept(text, kind, support) for text, (kind, support) in found.items())
    return ConceptBank(label_set=label_set, labels=tuple(labels), concepts=concepts, generator=generator)


def parse_concepts(answer: str) -> list[tuple[str, ConceptKind]]:
    """Concepts from an LLM answer, robust to the usual mess.

    Accepts a JSON list (of strings or of ``{"text"|"concept", "kind"}``
    objects, possibly inside a code fence or an object), or lines such as
    ``- object: soccer ball``, ``1. Sound | crowd cheering``, ``**Scene**: grass field``
    or a bare ``kicking``. Preambles, headings and over-long lines are dropped;
    untagged concepts get a kind from :func:`~vidsense.concepts.phrases.guess_kind`.

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
# Running the configured LLM


def journaled(generate_fn: Callable[[str], str], journal: Path) -> Callable[[str], str]:
    """Wrap ``generate_fn`` so every answer is saved at once and reused on a rerun."""
    answers: dict[str, str] = json.loads(journal.read_text(encoding="utf-8")) if journal.is_file() else {}

    def fn(prompt: str) -> str:
        if prompt not in answers:
            answers[prompt] = generate_fn(prompt)
            tmp = journal.with_suffix(".tmp")
            tmp.write_text(json.dumps(answers, indent=1), encoding="utf-8")
            os.replace(tmp, journal)
        return answers[prompt]

    return fn


def build_bank(
    labelset: LabelSet,
    llm: LanguageModel,
    encoder: TextEncoder,
    home: Path,
    *,
    descriptions: dict[str, str] | None = None,
    progress: Counts | None = None,
) -> ConceptBank:
    """Generate (or resume generating) the concept bank of ``labelset`` with ``llm``.

    Args:
        labelset: the label set.
        llm: the model that writes the concepts.
        encoder: the sentence encoder near-duplicate concepts are merged with.
        home: ``$VIDSENSE_HOME``: the bank and its journal of answers are kept under it.
        descriptions: optional per-label descriptions put into each prompt.
        progress: called with ``(done, total)``.
    """
    generator = f"llm:{llm.name}"
    out = bank_path(home, labelset.name, generator)
    out.parent.mkdir(parents=True, exist_ok=True)
    fn = journaled(lambda p: llm.generate([{"role": "user", "content": p}], max_tokens=MAX_TOKENS), out.with_suffix(".journal.json"))
    bank = generate_bank(labelset.labels, descriptions, fn, label_set=labelset.name, generator=generator, readable=labelset.readable, progress=progress)
    bank = merge_near_duplicates(bank, encoder.encode)
    bank.save(out)
    return bank


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Generate a concept bank with the configured LLM.")
    ap.add_argument("labels", help="label set name, file or 'a,b,c'")
    ap.add_argument("--out", help="also write the bank here (e.g. concepts/banks/ucf101.json)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress line on stderr")
    args = ap.parse_args(argv)
    from vidsense.agents.labels import load_labels
    from vidsense.agents.reasoner import Reasoner, ReasonerConfig
    from vidsense.services.settings import load_settings

    settings = load_settings(llm_threads=args.threads)
    room = Reasoner(ReasonerConfig.from_settings(settings), settings.model_env())
    labelset = load_labels(args.labels)
    bank = build_bank(labelset, room.llm, room.encoder, settings.home, progress=terminal_line(labelset.name, quiet=args.quiet))
    if args.out:
        bank.save(args.out)
    print(f"{labelset.name}: {len(bank)} concepts for {len(bank.labels)} labels")


if __name__ == "__main__":
    main()
