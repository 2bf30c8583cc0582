"""Per-label lists of what a video of the label shows, written by the bundled LLM (#23 item 4).

    .venv/bin/python benchmarks/label_lists.py                 # the plain-words sets and the user set (bundled LLM, ~30 min)
    .venv/bin/python benchmarks/label_lists.py --sets ucf101    # any bundled name or label file

For each label the LLM lists the things a perception model could name in such a video:
Kinetics-style actions, objects, sounds and body movements ("riding a bicycle: pedaling,
bicycle, helmet, road, wind noise"). ``benchmarks/label_texts.py`` measures whether carrying
the recognised classes into a label by these lists beats carrying them by the label's name.
Written to ``benchmarks/results/label_lists/<set>.json`` (resumable; one label a prompt, as the
plain-words labels: the 1.5B model keeps one label straight, not a numbered batch).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import devset

RESULTS = Path(__file__).resolve().parent / "results" / "label_lists"
LABELSETS = Path(__file__).resolve().parents[1] / "agents" / "labelsets"
DEFAULT_SETS = tuple(str(LABELSETS / f"{n}.plain.txt") for n in devset.PLAIN_SETS) + (str(devset.OTHER_LABELS),)
MAX_ITEMS = 10
MAX_TOKENS = 64

SYSTEM = (
    "You help a video classifier. Given an activity, list what its video would show that a camera "
    "and microphone can pick up: the movements people make, the objects and places seen, and the "
    "sounds heard. Short items of 1 to 4 words, separated by commas, at most 10, nothing else."
)
EXAMPLES = (
    ("riding a bicycle", "pedaling, bicycle, helmet, road, steering handlebars, cyclist, wheels turning, wind noise"),
    ("kneading dough", "pressing dough with hands, dough, flour, kitchen counter, rolling pin, folding, bowl"),
)


def path_for(spec: str) -> Path:
    """Where the lists of label set ``spec`` (a bundled name or a file) are kept."""
    return RESULTS / f"{Path(spec).stem if Path(spec).suffix else spec}.json"


def prompt(label: str) -> list[dict[str, str]]:
    """The chat messages asking for ``label``'s list (the examples as earlier turns: given in one
    message, the 1.5B model copied them)."""
    turns = [m for a, b in EXAMPLES for m in ({"role": "user", "content": a}, {"role": "assistant", "content": b})]
    return [{"role": "system", "content": SYSTEM}, *turns, {"role": "user", "content": label}]


def items(answer: str, label: str) -> list[str]:
    """The list in an answer: its first line, split at commas, cleaned, at most :data:`MAX_ITEMS`."""
    line = (answer.strip().splitlines() or [""])[0]
    line = line.split(":", 1)[1] if line.lower().startswith(label.lower() + ":") else line
    out = []
    for part in line.split(","):
        part = re.sub(r"\s+", " ", part).strip(" .;\"'").lower()
        if part and len(part.split()) <= 6 and part not in out:
            out.append(part)
    return out[:MAX_ITEMS]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), help="bundled names or label files")
    args = ap.parse_args(argv)

    from vidsense.agents.labels import load_labels
    from vidsense.agents.llm import LlamaCppModel
    from vidsense.services.settings import load_settings

    settings = load_settings()
    llm = LlamaCppModel(settings.model_env().resolve(str(settings.llm_model), role="LLM"), n_ctx=2048)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for spec in args.sets:
        ls = load_labels(spec)
        path = path_for(spec)
        done = json.loads(path.read_text()) if path.is_file() else {}
        for i, (label, readable) in enumerate(zip(ls.labels, ls.readable)):
            if label in done:
                continue
            done[label] = items(llm.generate(prompt(readable), max_tokens=MAX_TOKENS), readable)
            if i % 20 == 19:
                path.write_text(json.dumps(done, indent=1))
                print(f"  {path.stem}: {len(done)}/{len(ls)}", file=sys.stderr, flush=True)
        path.write_text(json.dumps(done, indent=1))
        print(f"wrote {path} ({sum(bool(v) for v in done.values())} of {len(ls)} labels with a list)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
