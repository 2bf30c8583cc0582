"""Label descriptions: one sentence per class on what such a video looks and sounds like.

Bare label names embed poorly next to timeline text ("YoYo" vs "hand moving a
small toy up and down"), and a small LLM maps observations onto labels better
when it is told what each label looks like. So every label gets one short
description of what is seen, heard and how people move, written once by the
bundled LLM:

- bundled label sets ship theirs as package data
  (``agents/labelsets/<name>.descriptions.json``), made with
  ``python -m vidsense.agents.describe_labels ucf101 hmdb51 ...``;
- a user's own label set gets them on first use, cached under
  ``settings.home/descriptions/<labelset sha256>.json``.

Generation writes after every batch and resumes from what is on disk, so an
interrupted run loses at most one batch.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from vidsense.agents.embeddings import TextEncoder
from vidsense.agents.labels import BUNDLED, load_labels
from vidsense.agents.llm import LanguageModel
from vidsense.services.files import write_text_atomically
from vidsense.services.progress import Counts, terminal_line
from vidsense.services.schema import LabelSet

log = logging.getLogger(__name__)

# Labels per prompt: the fixed instructions are paid once per batch, and the
# batch stays short enough that a 1.5B model keeps the numbering straight.
BATCH = 6
# A description is one sentence; anything longer is cut at the first sentence end.
MAX_WORDS = 40
MIN_WORDS = 6
# Tokens allowed per label in a batch answer (numbering and a ~25-word sentence).
TOKENS_PER_LABEL = 44
# A description whose own label is not among its nearest this many labels is asked again.
REVIEW_RANK = 25

SYSTEM = (
    "You describe video classes for a video classifier. The classes come from a human action "
    "recognition dataset: read every class name as something a person does with their body or "
    "with objects. For each class you write one plain sentence of 12 to 25 words saying what is "
    "seen in such a video (people, objects, place), what is heard, and how people or things move."
)
_NUMBERED = re.compile(r"^\s*(\d{1,3})\s*[.):-]\s*(.+?)\s*$")
# Answers that talk about the task rather than the video.
_OFF_TOPIC = re.compile(r"^(sure|here|i |i'm|as an|sorry|certainly|class|description)\b", re.IGNORECASE)
_DIR_LOCK = threading.Lock()


def _user_prompt(names: list[str]) -> str:
    listing = "\n".join(f"{i}. {n}" for i, n in enumerate(names, start=1))
    return (
        f"Classes:\n{listing}\n\n"
        f"Write {len(names)} lines, one per class in the same order, each starting with the "
        "class number, e.g. '1. A man ...'."
    )


def _single_prompt(name: str) -> str:
    # Asked alone with the batch prompt, the model lists several five-word
    # variants ("1. A man climbs a ladder. 2. ..."), too thin to use.
    return (
        f"Class: {name}\n\nDescribe a typical video of this class in one sentence of 12 to 25 words: "
        "who is there and where, what is heard, and how they move."
    )


def clean(text: str, label: str) -> str:
    """Normalise one generated description; '' when it is unusable.

    Unusable: empty, too short, about the task instead of the video, or just
    the label repeated.
    """
    text = text.strip().strip('"').strip()
    text = re.sub(r"^(\d{1,3}\s*[.):-]\s*)+", "", text)  # a number the model repeated ("1. 1. A man ...")
    text = re.sub(r"\s*\.\.\.\s*", " ", text)  # "A man ... arranging flowers"
    # "A typical video of X shows ...": the frame words would make "video" look
    # like evidence for X wherever descriptions are compared with concepts.
    typical = re.match(r"(?:In )?an? typical video (?:of|for) .{1,80}? (?:shows|features|involves|includes|depicts|would show|has)\s+(.+)", text, re.IGNORECASE)
    if typical:
        text = typical.group(1)[:1].upper() + typical.group(1)[1:]
    text = re.sub(r"^\*\*[^*]+\*\*\s*[:-]?\s*", "", text)  # "**Archery**: ..." headings
    text = re.sub(r"^[^:]{1,60}:\s+", lambda m: "" if label.lower() in m.group(0).lower() else m.group(0), text)
    text = re.sub(r"\s+", " ", text)
    first = re.match(r"(.+?[.!?])(\s|$)", text)
    if first and len(first.group(1).split()) >= MIN_WORDS:
        text = first.group(1)
    words = text.split()
    if len(words) > MAX_WORDS:
        text = " ".join(words[:MAX_WORDS]).rstrip(",;") + "."
    if len(words) < MIN_WORDS or _OFF_TOPIC.match(text) or text.lower().rstrip(".") == label.lower():
        return ""
    return text


def on_topic(desc: str, name: str, others: list[str]) -> bool:
    """A description is not copied from a neighbour in the batch.

    It must not name another multi-word label of the set that is not part of
    its own name ("IceDancing: A woman performing a hula hoop." fails). Word
    overlap with the own label is not required: good descriptions use
    synonyms (Archery: "shoots an arrow", Biking: "a cyclist pedals").
    """
    low = desc.lower()
    return not any(o in low and o not in name for o in others if " " in o)


def _parse(answer: str, names: list[str]) -> list[str]:
    """Descriptions in ``names`` order from a numbered answer ('' where missing)."""
    out = [""] * len(names)
    lines = [ln for ln in answer.splitlines() if ln.strip()]
    numbered = [m for m in map(_NUMBERED.match, lines) if m]
    if not numbered and len(lines) == len(names):
        # Unnumbered but one line per class: the order is still usable.
        return [clean(ln, n) for ln, n in zip(lines, names)]
    for m in numbered:
        if 1 <= int(m.group(1)) <= len(names):
            i = int(m.group(1)) - 1
            if not out[i]:
                out[i] = clean(m.group(2), names[i])
    return out


def _ask(llm: LanguageModel, names: list[str]) -> list[str]:
    if len(names) == 1:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": _single_prompt(names[0])}]
        answer = llm.generate(messages, max_tokens=TOKENS_PER_LABEL + 16).strip()
        return [clean(answer.splitlines()[0] if answer else "", names[0])]
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": _user_prompt(names)}]
    return _parse(llm.generate(messages, max_tokens=TOKENS_PER_LABEL * len(names)), names)


Similarity = Callable[[list[str], list[str]], "np.ndarray"]


def misaligned(descriptions: list[str], names: list[str], similarity: Similarity | None) -> set[int]:
    """Positions whose description is closer to another label of the batch than to its own.

    A small model answering a numbered batch sometimes skips a number, so every
    later line describes its neighbour ("kick ball: A woman kisses a man");
    sentence embeddings catch that shift.
    """
    live = [i for i, d in enumerate(descriptions) if d]
    if similarity is None or len(names) < 2 or not live:
        return set()
    sims = np.asarray(similarity([descriptions[i] for i in live], names))
    return {i for row, i in zip(sims, live) if int(np.argmax(row)) != i}


def generate_descriptions(
    llm: LanguageModel,
    labelset: LabelSet,
    *,
    existing: dict[str, str] | None = None,
    batch: int = BATCH,
    on_batch: Callable[[dict[str, str]], None] | None = None,
    reuse: dict[str, str] | None = None,
    similarity: Similarity | None = None,
    progress: Counts | None = None,
) -> dict[str, str]:
    """Describe every label of ``labelset`` not yet in ``existing``.

    Labels whose batch answer is missing, malformed, off-topic (see
    :func:`on_topic`) or repeats another label's description are asked again
    one at a time (existing ones that fail the check too); a label that still fails gets
    the plain template so the result is always complete.

    Args:
        llm: any backend with ``generate``.
        labelset: the labels to describe (prompts use their readable form).
        existing: descriptions already made (kept; their labels are skipped).
        batch: labels per prompt.
        on_batch: called with the descriptions so far after every batch (to save them).
        reuse: ``{readable label (lower case): description}`` made for other sets
            (most Kinetics-700 classes are Kinetics-400 classes); taken as is.
        similarity: ``(texts, names) -> [len(texts), len(names)]`` similarities
            (sentence embeddings); when given, batch answers that fit another
            label of the batch better than their own are asked again alone.
        progress: called with ``(0, labels to describe)`` first, then ``(labels described, labels
            to describe)`` after each label.

    Returns:
        ``{label: description}`` for every label, in label-set order.
    """
    names_all = [r.lower() for r in labelset.readable]
    done = {lab: desc for lab, desc in (existing or {}).items() if lab in labelset.labels}
    for lab, read in zip(labelset.labels, names_all):
        if done.get(lab) and not on_topic(done[lab], read, names_all):
            log.info("%s: regenerating off-topic description of %r", labelset.name, lab)
            del done[lab]
    pool = reuse or {}
    for lab, read in zip(labelset.labels, labelset.readable):
        if not done.get(lab) and pool.get(read.lower()):
            done[lab] = pool[read.lower()]
    if similarity is not None:
        _review(llm, labelset, done, similarity)
    todo = [i for i, lab in enumerate(labelset.labels) if not done.get(lab)]
    if progress is not None and todo:
        progress(0, len(todo))  # a batch's labels come back together: say how many there are before the first
    for start in range(0, len(todo), batch):
        part = todo[start : start + batch]
        names = [labelset.readable[i] for i in part]
        got = _ask(llm, names)
        shifted = misaligned(got, names, similarity)
        seen = set(done.values())
        for k, (i, name, desc) in enumerate(zip(part, names, got)):
            if k in shifted:
                log.info("%s: %r's batch answer fits another label; asking again", labelset.name, labelset.labels[i])
                desc = ""
            if not desc or desc in seen or not on_topic(desc, name.lower(), names_all):
                desc = _ask(llm, [name])[0]
            if not desc or desc in seen or not on_topic(desc, name.lower(), names_all):
                log.warning("%s: no usable description for %r; using the template", labelset.name, labelset.labels[i])
                desc = template(name)
            done[labelset.labels[i]] = desc
            seen.add(desc)
            if progress is not None:
                progress(start + k + 1, len(todo))
        if on_batch is not None:
            on_batch(done)
    return {lab: done[lab] for lab in labelset.labels}


def _rank(similarities: np.ndarray, own: int) -> int:
    """Rank (1 = best) of position ``own`` in a row of similarities."""
    return int((similarities > similarities[own]).sum()) + 1


def template(name: str) -> str:
    """The plain description a label gets when none could be generated."""
    return f"A video of a person {name}."


def _review(llm: LanguageModel, labelset: LabelSet, done: dict[str, str], similarity: Similarity) -> None:
    """Ask again, alone, for every description its own label ranks badly against.

    A description that sits closer to 25 other labels of the set than to its
    own was usually written for a neighbour ("IceDancing: A woman performing a
    hula hoop"). The better-ranked of the old and the new one is kept: some
    labels (e.g. "hopscotch") embed poorly whatever the sentence.
    """
    have = [i for i, lab in enumerate(labelset.labels) if done.get(lab)]
    if not have:
        return
    names = list(labelset.readable)
    sims = np.asarray(similarity([done[labelset.labels[i]] for i in have], names))
    for row, i in zip(sims, have):
        rank = _rank(row, i)
        if rank <= REVIEW_RANK:
            continue
        lab = labelset.labels[i]
        new = _ask(llm, [labelset.readable[i]])[0]
        if new:
            new_rank = _rank(np.asarray(similarity([new], names))[0], i)
            log.info("%s: %r ranked its own label %d; a new description ranks it %d", labelset.name, lab, rank, new_rank)
            if new_rank < rank:
                done[lab] = new


def _write_json(path: Path, data: dict[str, str]) -> None:
    """Write atomically so a crash never leaves half a file to resume from."""
    write_text_atomically(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def _read_json(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def bundled_path(name: str) -> Path:
    """Source-tree path of a bundled set's descriptions file."""
    return Path(str(resources.files("vidsense.agents").joinpath("labelsets", f"{name}.descriptions.json")))


def cache_path(home: Path, labelset: LabelSet) -> Path:
    """Where a user label set's generated descriptions are cached (under ``home``, ``$VIDSENSE_HOME``)."""
    return Path(home) / "descriptions" / f"{labelset.sha256}.json"


def describe_to_file(
    llm: LanguageModel,
    labelset: LabelSet,
    path: Path,
    batch: int = BATCH,
    reuse: dict[str, str] | None = None,
    similarity: Similarity | None = None,
    progress: Counts | None = None,
) -> dict[str, str]:
    """Generate descriptions into ``path``, resuming from what it holds (``progress``: see :func:`generate_descriptions`)."""
    # Existing entries pass the current cleaning rules again, so a rule added
    # later applies to files made before it.
    readable = dict(zip(labelset.labels, labelset.readable))
    existing = {k: clean(v, readable[k]) for k, v in _read_json(path).items() if k in readable and v}
    existing = {k: v for k, v in existing.items() if v}
    if len(existing) < len(labelset):
        log.info("%s: describing %d of %d labels", labelset.name, len(labelset) - len(existing), len(labelset))
    done = generate_descriptions(llm, labelset, existing=existing, batch=batch, on_batch=lambda d: _write_json(path, d), reuse=reuse, similarity=similarity, progress=progress)
    return _finish(path, done)


def embedding_similarity(encoder: TextEncoder) -> Similarity:
    """Cosine similarity in ``encoder``'s sentence-embedding space."""
    # The review compares one new sentence with all labels of a set (700 for
    # Kinetics-700) again and again: the label side is embedded once per list.
    names_memo: dict[tuple[str, ...], np.ndarray] = {}

    def similarity(texts: list[str], names: list[str]) -> np.ndarray:
        key = tuple(names)
        if key not in names_memo:
            names_memo[key] = encoder.encode(list(names))
        return encoder.encode(list(texts)) @ names_memo[key].T

    return similarity


def _finish(path: Path, data: dict[str, str]) -> dict[str, str]:
    _write_json(path, data)
    return data


def _pool(folder: Path, exclude: str = "") -> dict[str, str]:
    """Every usable description already written in ``folder`` for other sets, keyed by readable label.

    Entries pass :func:`clean` again; the set being generated (``exclude``) is
    left out, or an entry dropped from it would come straight back.
    """
    pool: dict[str, str] = {}
    for f in sorted(folder.glob("*.descriptions.json")):
        name = f.name.removesuffix(".descriptions.json")
        if name not in BUNDLED or name == exclude:
            continue
        ls = load_labels(name)
        data = _read_json(f)
        for lab, read in zip(ls.labels, ls.readable):
            text = clean(data.get(lab, ""), read)
            if text:
                pool[read.lower()] = text
    return pool


def is_bundled(labelset: LabelSet) -> bool:
    """Whether ``labelset`` is a bundled set, or part of one (occlusion re-scores a shortlist)."""
    return labelset.name in BUNDLED and set(labelset.labels) <= set(load_labels(labelset.name).labels)


def bundled_descriptions(labelset: LabelSet) -> dict[str, str]:
    """The shipped descriptions of ``labelset``'s labels (``{}`` for a user's set).

    The routes without an LLM read only these: a user set's generated descriptions exist only
    after the ``llm`` route ran on it, and a route whose answer depended on which route ran
    before would give one user two answers for one video.
    """
    if not is_bundled(labelset):
        return {}
    bundled = _read_json(bundled_path(labelset.name))
    return {lab: bundled[lab] for lab in labelset.labels if lab in bundled}


def label_descriptions(
    labelset: LabelSet,
    home: Path,
    *,
    llm: Callable[[], LanguageModel] | None = None,
    encoder: TextEncoder | Callable[[], TextEncoder] | None = None,
    generate: bool = True,
    progress: Counts | None = None,
) -> dict[str, str]:
    """Descriptions for ``labelset``: bundled, cached, or generated now and cached.

    Args:
        labelset: the label set.
        home: the cache root (``$VIDSENSE_HOME``).
        llm: returns the model to generate with; called only when descriptions are missing.
        encoder: sentence encoder for the review of generated descriptions (none: no review), or a
            function returning it, called only when descriptions are generated.
        generate: when False (or without ``llm``), return only what exists (possibly ``{}``).
        progress: called with ``(labels described, labels to describe)`` after each generated label.

    Returns:
        ``{label: description}``; labels without one are absent.
    """
    if is_bundled(labelset):
        return bundled_descriptions(labelset)
    path = cache_path(home, labelset)
    cached = _read_json(path)
    if len(cached) >= len(labelset) or not generate or llm is None:
        return cached
    if encoder is not None and not hasattr(encoder, "encode"):
        encoder = encoder()  # type: ignore[operator]
    with _DIR_LOCK:
        return describe_to_file(llm(), labelset, path, similarity=embedding_similarity(encoder) if encoder is not None else None, progress=progress)


def main(argv: list[str] | None = None) -> int:
    """Generate the bundled descriptions files (``python -m vidsense.agents.describe_labels``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labelsets", nargs="+", help="bundled names or label files")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="model store name or GGUF path")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the package's labelsets/)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress line on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from vidsense.agents.embeddings import load_sentence_encoder
    from vidsense.agents.llm import LlamaCppModel
    from vidsense.services.settings import load_settings

    settings = load_settings()
    env = settings.model_env()
    llm = LlamaCppModel(env.resolve(args.model, role="LLM"), n_ctx=2048, n_threads=args.threads)
    similarity = embedding_similarity(load_sentence_encoder(str(settings.embedding_model), env))
    for spec in args.labelsets:
        ls = load_labels(spec)
        path = (args.out / f"{ls.name}.descriptions.json") if args.out else bundled_path(ls.name)
        describe_to_file(llm, ls, path, batch=args.batch, reuse=_pool(path.parent, exclude=ls.name), similarity=similarity, progress=terminal_line(ls.name, quiet=args.quiet))
        log.info("%s: %s written", ls.name, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
