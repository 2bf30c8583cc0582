"""Generating a concept bank with the configured LLM (once per label set and model).

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
import sys
from pathlib import Path
from typing import Callable

from vidsense.concepts.bank import ConceptBank, bank_path, generate_bank, merge_near_duplicates

log = logging.getLogger(__name__)

MAX_TOKENS = 96


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


def build_bank(settings, labelset, descriptions: dict[str, str] | None = None, progress: Callable[[int, int], None] | None = None) -> ConceptBank:
    """Generate (or resume generating) the concept bank of ``labelset`` with the configured LLM.

    Args:
        settings: :class:`~vidsense.services.settings.Settings` (LLM, home).
        labelset: a :class:`~vidsense.agents.labels.LabelSet`.
        descriptions: optional per-label descriptions put into each prompt.
        progress: called with ``(done, total)``.
    """
    from vidsense.agents.llm import load_llm
    from vidsense.concepts.activations import SentenceEncoder

    llm = load_llm(settings)
    generator = f"llm:{settings.llm_model and Path(str(settings.llm_model)).name}"
    out = bank_path(settings.home, labelset.name, generator)
    out.parent.mkdir(parents=True, exist_ok=True)
    fn = journaled(lambda p: llm.generate([{"role": "user", "content": p}], max_tokens=MAX_TOKENS), out.with_suffix(".journal.json"))
    bank = generate_bank(labelset.labels, descriptions, fn, label_set=labelset.name, generator=generator, readable=labelset.readable, progress=progress)
    bank = merge_near_duplicates(bank, SentenceEncoder(settings).encode)
    bank.save(out)
    return bank


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Generate a concept bank with the configured LLM.")
    ap.add_argument("labels", help="label set name, file or 'a,b,c'")
    ap.add_argument("--out", help="also write the bank here (e.g. concepts/banks/ucf101.json)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    from vidsense.agents.labels import load_labels
    from vidsense.services.settings import load_settings

    settings = load_settings(llm_threads=args.threads)
    labelset = load_labels(args.labels)
    bank = build_bank(settings, labelset, progress=lambda i, n: print(f"{labelset.name}: {i}/{n}", file=sys.stderr, flush=True))
    if args.out:
        bank.save(args.out)
    print(f"{labelset.name}: {len(bank)} concepts for {len(bank.labels)} labels")


if __name__ == "__main__":
    main()
