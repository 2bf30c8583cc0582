"""Which label text the perception classes transfer to: the label's name, its description, or a list (#23 item 4).

    .venv/bin/python benchmarks/label_texts.py                 # the development set and its plain-words rows, bundled weights
    .venv/bin/python benchmarks/label_texts.py --describe      # first generate the user set's descriptions (bundled LLM, minutes)
    .venv/bin/python benchmarks/label_lists.py                 # first generate the per-label lists (bundled LLM, ~30 min)

The transfer scorers (action, objects, scene, sound, gesture) carry each recognised class into
the label set by the cosine of MiniLM embeddings. Variants of what a label is embedded as:

- ``names``: the label's readable name (what ships);
- ``described``: the text the text scorers embed, ``a video of a person <label>. <description>``;
- ``max``: the larger of the two cosines; ``mean``: their mean;
- ``listed``: the label with the LLM's list of what its video shows (``benchmarks/label_lists.py``:
  actions, objects, sounds, movements), ``<label>: <item>, <item>, ...``, as one text;
- ``items``: the best cosine of the name and each listed item alone.

The lists exist for the plain-words sets and the user's set (the rows the issue asks about:
the plain-words rows and the free-text family); elsewhere those variants read the names.

A class that names a label still passes straight through (by name, in every variant). The
fusion weights are the bundled ones and nothing is fitted, so every number is out of sample;
the variants are few and are judged on every family. The user's own set
(``devset_other_labels.txt``) gets its descriptions the way a user's set does: generated once
with the bundled LLM (``--describe``), kept in ``benchmarks/results/`` so the shipped route's
cache is not touched. Prints the per-family table and writes ``benchmarks/results/label_texts.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import devset
import fusion_cv
import label_lists
import numpy as np

from vidsense.agents.evidence import SourceScores, TransferScorer, class_weights, open_log_normalise
from vidsense.agents.fusion import DEFAULT_WEIGHTS, FitExample, FusionWeights
from vidsense.agents.shortlist import label_texts

RESULTS = Path(__file__).resolve().parent / "results"
USER_DESCRIPTIONS = RESULTS / "devset_other_labels.descriptions.json"
VARIANTS = ("names", "described", "max", "mean", "listed", "items")
LISTED = ("listed", "items")


def similarities(scorer: TransferScorer, classes: list[str], ls, descriptions: dict[str, str], variant: str, lists: dict[str, list[str]] | None = None) -> np.ndarray:
    """``[classes, labels]`` cosines of one variant (``names`` where the set has no descriptions or lists)."""
    vectors = scorer.index.embed(classes)
    names = vectors @ scorer.index.embed(list(ls.readable)).T
    if variant in LISTED:
        if not lists:
            return names
        if variant == "listed":
            # The label and its list as one text: "riding a bicycle: pedaling, bicycle, helmet".
            texts = [f"{r}: {', '.join(lists.get(lab, []))}" for lab, r in zip(ls.labels, ls.readable)]
            return vectors @ scorer.index.embed(texts).T
        # The best of the name and each listed item: a class reaches a label through any one of them.
        best = names.copy()
        for k, lab in enumerate(ls.labels):
            if lists.get(lab):
                best[:, k] = np.maximum(best[:, k], (vectors @ scorer.index.embed(lists[lab]).T).max(axis=1))
        return best
    if variant == "names" or not descriptions:
        return names
    described = vectors @ scorer.index.embed(label_texts(ls, descriptions)).T
    return {"described": described, "max": np.maximum(names, described), "mean": (names + described) / 2}[variant]


def transfer_scores(scorer: TransferScorer, tl, ls, descriptions: dict[str, str], variant: str, lists: dict[str, list[str]] | None = None) -> SourceScores | None:
    """The scorer's source scores with the variant's cosines (the pass-through still by name)."""
    weights, coverage = class_weights(tl, scorer.kinds, scorer.modalities, scorer.name_of)
    if not weights:
        return None
    classes = sorted(weights)
    names = scorer.index.embed(classes) @ scorer.index.embed(list(ls.readable)).T
    t = np.exp(scorer.sharpness * (similarities(scorer, classes, ls, descriptions, variant, lists) - 1.0))
    for i, row in enumerate(names):
        if row.max() >= scorer.name_match:
            t[i] = 0.0
            t[i, int(row.argmax())] = 1.0
    mass = np.array([weights[c] for c in classes]) @ t
    return SourceScores(scorer.name, open_log_normalise(mass), coverage)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    devset.add_arguments(ap)
    ap.add_argument("--describe", action="store_true", help="generate the user set's descriptions with the bundled LLM first")
    ap.add_argument("--out", default=str(RESULTS / "label_texts.json"))
    args = ap.parse_args(argv)

    import vidsense
    from vidsense.agents.describe_labels import describe_to_file

    rows = devset.from_arguments(args)
    rows += devset.plain_rows(rows)
    pipe = vidsense.Pipeline()
    user = vidsense.load_labels(str(devset.OTHER_LABELS))
    if args.describe:
        RESULTS.mkdir(parents=True, exist_ok=True)
        describe_to_file(pipe.reasoner.llm, user, USER_DESCRIPTIONS)
    user_descriptions = json.loads(USER_DESCRIPTIONS.read_text(encoding="utf-8")) if USER_DESCRIPTIONS.is_file() else {}
    fused = pipe.reasoner.fused_method()
    scorers = [s for s in fused.scorers if isinstance(s, TransferScorer)]
    weights = FusionWeights(DEFAULT_WEIGHTS)
    cases: dict[str, list[fusion_cv.Case]] = {v: [] for v in VARIANTS}
    for r in rows:
        ls = vidsense.load_labels(r.labelset)
        tl = pipe.describe(r.path)
        base, _ = fused.sources(tl, ls)
        descriptions = user_descriptions if r.labelset == str(devset.OTHER_LABELS) else pipe.reasoner.descriptions(ls, generate=False)
        listed = label_lists.path_for(r.labelset)
        lists = json.loads(listed.read_text(encoding="utf-8")) if listed.is_file() else {}
        for v in VARIANTS:
            mine = {s.name: transfer_scores(s, tl, ls, descriptions, v, lists) for s in scorers}
            scores = tuple(mine.get(s.source, s) if s.source in mine else s for s in base)
            cases[v].append(fusion_cv.Case(r, FitExample(tuple(s for s in scores if s is not None), ls.index(r.label)), len(ls), 0.0))
    results = {v: fusion_cv.tally(cs, [weights] * len(cs)) for v, cs in cases.items()}
    fusion_cv.print_table("transfer label texts, bundled weights (top-1 / top-5; nothing fitted)", results, 0.0)
    print(f"user set descriptions: {len(user_descriptions)} of {len(user)} labels" + ("" if user_descriptions else " (run with --describe)"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"variants": results, "user_descriptions": len(user_descriptions)}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
