"""Plain-words variants of the bundled UCF-101, HMDB-51 and Kinetics-400 label sets (#23 item 1).

    .venv/bin/python benchmarks/plain_labels.py                 # generate what is missing (bundled LLM, minutes)
    .venv/bin/python benchmarks/plain_labels.py --check         # only check the committed files

Users bring their own label texts ("putting on eye makeup", not ``ApplyEyeMakeup``), so the
benchmarks rank the development set's UCF-101, HMDB-51 and Kinetics-400 rows also against a
variant of each set written in plain words. Each label is rewritten once by the bundled LLM
(one label a prompt, few-shot), then spot-checked and corrected by hand; the result is
kept beside the bundled sets as ``agents/labelsets/<name>.plain.txt``, line for line with
``<name>.txt``. A run writes what it generated to ``benchmarks/results/plain_labels.json``
(resumable), and writes a ``.plain.txt`` only where none exists, so hand corrections are
never overwritten. ``--check`` verifies every committed file: one line per label, no empty or
repeated line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELSETS = ROOT / "agents" / "labelsets"
RESULTS = Path(__file__).resolve().parent / "results"
SETS = ("ucf101", "hmdb51", "kinetics400")
TOKENS_PER_LABEL = 16

SYSTEM = (
    "You rewrite the class names of a human action video dataset the way an ordinary person would "
    "describe the activity in their own words: a short lower-case phrase of 2 to 6 words that says "
    "what the person does, starting with a verb ending in -ing. Keep the meaning and add nothing, "
    "but say it differently from the class name: use other words where you can."
)
EXAMPLES = (
    ("ApplyEyeMakeup", "putting on eye makeup"),
    ("brush_hair", "combing someone's hair"),
    ("abseiling", "rappelling down a rock face"),
    ("YoYo", "playing with a yo-yo"),
    ("BaseballPitch", "throwing a pitch in baseball"),
    ("clap", "clapping hands"),
    ("auctioning", "selling things at an auction"),
    ("BandMarching", "marching in a band"),
)


def plain_path(name: str) -> Path:
    """Where the plain-words variant of bundled set ``name`` is kept."""
    return LABELSETS / f"{name}.plain.txt"


def prompt(name: str) -> list[dict[str, str]]:
    """The chat messages asking for ``name`` rewritten (few-shot, one label a prompt: asked for a
    numbered batch, the bundled 1.5B model copied the names or invented unrelated activities)."""
    shots = "\n".join(f"{a} -> {b}" for a, b in EXAMPLES)
    user = f"{shots}\n{name} ->\n\nAnswer with the phrase for '{name}' only."
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def tidy(text: str) -> str:
    """One generated label, normalised: its first line, lower case, no quotes, arrows or trailing punctuation."""
    text = (text.strip().splitlines() or [""])[0]
    text = text.split("->")[-1].strip().strip("\"'`").strip()
    text = re.sub(r"\s+", " ", text).rstrip(".;,").lower()
    return text if 1 <= len(text.split()) <= 8 else ""


def generate(llm, names: list[str], done: dict[str, str], save) -> dict[str, str]:
    """Rewrite every name not in ``done`` (the name itself where the answer is unusable)."""
    for i, name in enumerate(n for n in names if n not in done):
        done[name] = tidy(llm.generate(prompt(name), max_tokens=TOKENS_PER_LABEL)) or name
        if i % 20 == 19:
            save(done)
            print(f"  {len(done)}/{len(names)}", file=sys.stderr, flush=True)
    save(done)
    return done


def check(name: str) -> list[str]:
    """Problems of the committed variant of ``name`` (none: it is usable)."""
    from vidsense.agents.labels import load_labels

    path = plain_path(name)
    if not path.is_file():
        return [f"{path}: missing"]
    lines = path.read_text(encoding="utf-8").splitlines()
    original = load_labels(name).labels
    problems = []
    if len(lines) != len(original):
        problems.append(f"{path}: {len(lines)} lines for {len(original)} labels")
    if any(not ln.strip() for ln in lines):
        problems.append(f"{path}: an empty line")
    seen: dict[str, int] = {}
    for i, ln in enumerate(lines):
        if ln.strip().lower() in seen:
            problems.append(f"{path}:{i + 1}: '{ln}' repeats line {seen[ln.strip().lower()] + 1}")
        seen.setdefault(ln.strip().lower(), i)
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS))
    ap.add_argument("--check", action="store_true", help="only check the committed files")
    args = ap.parse_args(argv)
    if not args.check:
        from vidsense.agents.labels import load_labels
        from vidsense.agents.llm import LlamaCppModel
        from vidsense.services.settings import load_settings

        settings = load_settings()
        llm = LlamaCppModel(settings.model_env().resolve(str(settings.llm_model), role="LLM"), n_ctx=2048)
        store = RESULTS / "plain_labels.json"
        generated = json.loads(store.read_text()) if store.is_file() else {}

        def save(_: dict) -> None:
            store.parent.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps(generated, indent=1))

        for name in args.sets:
            ls = load_labels(name)
            print(f"{name}: {len(ls)} labels", file=sys.stderr)
            done = generate(llm, list(ls.labels), generated.setdefault(name, {}), save)
            if not plain_path(name).is_file():
                plain_path(name).write_text("\n".join(done[r] for r in ls.labels) + "\n", encoding="utf-8")
                print(f"wrote {plain_path(name)} (spot-check and correct it by hand)", file=sys.stderr)
    problems = [p for name in args.sets for p in check(name)]
    print("\n".join(problems) or "plain-words label sets: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
