"""Evaluation harness: accuracy of a reasoner over a labelled manifest.

A manifest is a CSV file with columns ``path,label`` and an optional
``labelset`` (a bundled name or a label file, per row); relative paths are
relative to the manifest. Each video is described once (its timeline is
reused for every label set and every modality ablation), then classified.
A row that fails is reported as an error and counted; it never aborts the run.

Metrics, overall and per label set: top-1 and top-5 accuracy (fractions),
mean rank of the true label (1 = best; a label the LLM never scored because
the shortlist dropped it gets the mean rank of the unscored labels), recall of
the true label in the shortlist (its rank is at most the shortlist size), mean
per-stage latency, and a confusion listing (true -> predicted, counts).

Zero-shot: with the Kinetics-400 action recogniser in the loop, results on the
Kinetics label sets are not zero-shot; each per-set score says so.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from vidsense.agents.labels import load_labels
from vidsense.agents.reasoner import Reasoner
from vidsense.agents.scoring import make_prediction
from vidsense.services.errors import InputError, VidsenseError
from vidsense.services.progress import Counts, counted
from vidsense.services.schema import LabelSet, ManifestRow, Prediction, read_manifest
from vidsense.services.timeline import MODALITIES, Timeline

log = logging.getLogger(__name__)

DescribeFn = Callable[[str, Any], Timeline]
ClassifyFn = Callable[..., Prediction]
SHORTLIST_DEFAULT = 20


@dataclass(frozen=True)
class RowResult:
    """The outcome of one (row, modality subset).

    Attributes:
        rank: 1-based rank of the true label (``None`` on error).
        in_shortlist: the true label's rank is within the shortlist size.
        top5: the best five labels predicted.
        error: one-line reason when the row failed, else ''.
        concept_label: the concept model's own top-1 (what its explanation would
            pick unprompted); '' when no concept model was asked.
    """

    line: int
    path: str
    label: str
    labelset: str
    modalities: str
    predicted: str = ""
    probability: float = 0.0
    rank: float | None = None
    in_shortlist: bool = False
    low_confidence: bool = False
    top5: tuple[str, ...] = ()
    latency: dict[str, float] = field(default_factory=dict)
    error: str = ""
    route: str = ""
    concept_label: str = ""


@dataclass(frozen=True)
class Score:
    """Accuracy of a group of rows (errors count as misses).

    ``agreement``: share of the rows with a concept label where the concept model's
    top-1 is the returned label, i.e. where the explanation is of a model that gave
    the same answer (``None`` when no concept model was asked).
    """

    n: int
    errors: int
    top1: float
    top5: float
    mean_rank: float | None
    shortlist_recall: float
    agreement: float | None = None


@dataclass(frozen=True)
class LabelSetScore:
    """Score on one label set, and whether it is a zero-shot result."""

    labelset: str
    zero_shot: bool
    score: Score


@dataclass(frozen=True)
class EvalReport:
    """Everything one evaluation run measured (``to_dict`` for JSON)."""

    manifest: str
    reasoner: str
    modalities: str
    overall: Score
    per_labelset: tuple[LabelSetScore, ...]
    latency_s: dict[str, float]
    confusion: tuple[tuple[str, str, int], ...]
    rows: tuple[RowResult, ...]
    ablations: dict[str, Score] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)

    @property
    def top1(self) -> float:
        return self.overall.top1

    @property
    def top5(self) -> float:
        return self.overall.top5

    def to_text(self) -> str:
        """A plain-text summary (see :func:`format_report`)."""
        return format_report(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``top1`` / ``top5`` at the top level."""
        d = asdict(self)
        d["top1"], d["top5"] = self.top1, self.top5
        d["confusion"] = [{"true": t, "predicted": p, "count": c} for t, p, c in self.confusion]
        return d


def ablation_sets() -> dict[str, list[str] | None]:
    """``all``, every single modality, and every all-but-one subset."""
    out: dict[str, list[str] | None] = {"all": None}
    out.update({m: [m] for m in MODALITIES})
    out.update({f"no-{m}": [x for x in MODALITIES if x != m] for m in MODALITIES})
    return out


def _score(rows: list[RowResult]) -> Score:
    n = len(rows)
    ok = [r for r in rows if not r.error]
    ranks = [r.rank for r in ok if r.rank is not None]
    explained = [r for r in ok if r.concept_label]
    return Score(
        n=n,
        errors=n - len(ok),
        top1=round(sum(r.rank == 1 for r in ok) / n, 4) if n else 0.0,
        top5=round(sum(r.rank is not None and r.rank <= 5 for r in ok) / n, 4) if n else 0.0,
        mean_rank=round(sum(ranks) / len(ranks), 2) if ranks else None,
        shortlist_recall=round(sum(r.in_shortlist for r in ok) / n, 4) if n else 0.0,
        agreement=round(sum(r.concept_label == r.predicted for r in explained) / len(explained), 4) if explained else None,
    )


def _zero_shot(labelset: str, timelines: Iterable[Timeline]) -> bool:
    """False when a Kinetics-trained recogniser contributed and the set is Kinetics."""
    kinetics_in_loop = any("kinetics" in note.lower() for tl in timelines for note in tl.notes)
    return not (kinetics_in_loop and Path(labelset).stem.lower().startswith(("kinetics", "k400", "k700")))


def evaluate(
    manifest_path: str | Path,
    describe: DescribeFn,
    classify: ClassifyFn,
    labels: str | None = None,
    *,
    name: str = "llm",
    ablate: bool = False,
    shortlist_size: int = SHORTLIST_DEFAULT,
    progress: Counts | None = None,
    concept_label: Callable[[Timeline, LabelSet], str] | None = None,
) -> EvalReport:
    """Classify every manifest row and measure accuracy.

    Args:
        manifest_path: CSV with ``path,label[,labelset]``.
        describe: ``describe(video, modalities) -> Timeline``.
        classify: ``classify(timeline, labelset, modalities=..., top_k=...) -> Prediction``.
        labels: label set for rows without a ``labelset`` column.
        name: what the report calls the reasoner.
        ablate: also run every single modality and every all-but-one subset.
        shortlist_size: the shortlist size for recall.
        progress: called with ``(rows done, rows)`` after each row.
        concept_label: ``(timeline, labelset) -> label``: the concept model's top-1, for the
            agreement metric (full-modality rows only; a failure leaves the row without one).

    Returns:
        The report; ``rows`` holds the full-modality rows and, with
        ``ablate``, every ablation's rows too.

    Raises:
        InputError: the manifest itself is unreadable (row problems are counted instead).
    """
    rows = read_manifest(manifest_path, labels)
    variants = ablation_sets() if ablate else {"all": None}
    timelines: dict[str, Timeline | str] = {}
    perception_s: dict[str, float] = {}
    labelsets: dict[str, LabelSet | str] = {}
    results: dict[str, list[RowResult]] = {k: [] for k in variants}
    for row in counted(rows, progress):
        video = str(row.path)
        base = RowResult(row.line, video, row.label, row.labelset or "?", "all")
        if video not in timelines:
            t0 = time.perf_counter()
            try:
                timelines[video] = describe(video, None)
            except (VidsenseError, OSError, ValueError, RuntimeError) as exc:
                timelines[video] = f"{type(exc).__name__}: {exc}"
            perception_s[video] = time.perf_counter() - t0
        tl = timelines[video]
        ls = _labelset(row, labelsets)
        for key, mods in variants.items():
            r = _classify_row(base, key, mods, tl, ls, classify, shortlist_size, perception_s[video])
            if concept_label is not None and mods is None and not r.error and isinstance(tl, Timeline) and isinstance(ls, LabelSet):
                try:
                    r = replace(r, concept_label=concept_label(tl, ls))
                except (VidsenseError, ValueError, RuntimeError) as exc:
                    log.warning("%s: no concept label (%s)", video, exc)
            results[key].append(r)
    main = results["all"]
    good_tls = [t for t in timelines.values() if isinstance(t, Timeline)]
    by_set: dict[str, list[RowResult]] = {}
    for r in main:
        by_set.setdefault(r.labelset, []).append(r)
    per_set = tuple(LabelSetScore(name, _zero_shot(name, good_tls), _score(rs)) for name, rs in by_set.items())
    latency: dict[str, list[float]] = {}
    for r in main:
        for k, v in r.latency.items():
            latency.setdefault(k, []).append(v)
    confusion = Counter((r.label, r.predicted) for r in main if not r.error and r.predicted != r.label)
    all_rows = tuple(r for key in variants for r in results[key])
    return EvalReport(
        manifest=str(manifest_path),
        reasoner=name,
        modalities="all",
        overall=_score(main),
        per_labelset=per_set,
        latency_s={k: round(sum(v) / len(v), 3) for k, v in latency.items()},
        confusion=tuple((t, p, c) for (t, p), c in confusion.most_common()),
        rows=all_rows,
        ablations={k: _score(v) for k, v in results.items() if k != "all"},
        routes=dict(Counter(r.route for r in main if not r.error and r.route)),
    )


def _labelset(row: ManifestRow, cache: dict[str, LabelSet | str]) -> LabelSet | str:
    if not row.labelset:
        return "no label set: add a labelset column or pass --labels"
    if row.labelset not in cache:
        try:
            cache[row.labelset] = load_labels(row.labelset)
        except InputError as exc:
            cache[row.labelset] = str(exc)
    return cache[row.labelset]


def _classify_row(base: RowResult, key: str, mods, tl, ls, classify: ClassifyFn, n_short: int, perception_s: float) -> RowResult:
    from dataclasses import replace

    base = replace(base, modalities=key)
    if isinstance(tl, str):
        return replace(base, error=tl)
    if isinstance(ls, str):
        return replace(base, error=ls)
    if base.label not in ls.labels:
        return replace(base, error=f"label {base.label!r} is not in label set {ls.name}")
    t0 = time.perf_counter()
    try:
        pred = classify(tl, ls, modalities=mods, top_k=5)
    except (VidsenseError, ValueError, RuntimeError) as exc:
        return replace(base, error=f"{type(exc).__name__}: {exc}")
    reasoning_s = time.perf_counter() - t0
    rank = pred.rank(base.label, len(ls))
    latency = {"perception": perception_s, "reasoning": reasoning_s}
    # Prompt tokens ride along: they are what an LLM route costs (about 1 s per 100 on 2 cores).
    latency.update({k: v for k, v in pred.stats.items() if k.endswith("_s") or k == "prompt_tokens"})
    return replace(
        base,
        predicted=pred.label,
        probability=pred.top_k[0].score,
        rank=rank,
        in_shortlist=rank <= n_short,
        low_confidence=pred.low_confidence,
        route=pred.route,
        top5=tuple(c.label for c in pred.top_k[:5]),
        latency={k: round(v, 4) for k, v in latency.items()},
    )


# Variants of the score strategy compared by :func:`compare_variants`:
# name -> (hints in the prompt, calibration weight, embedding weight).
VARIANTS: dict[str, tuple[bool, float, float]] = {
    "raw": (True, 0.0, 0.0),
    "calibrated": (True, 1.0, 0.0),
    "calibrated-half": (True, 0.5, 0.0),
    "raw+embedding": (True, 0.0, 1.0),
    "calibrated+embedding": (True, 1.0, 1.0),
    "calibrated+embedding-half": (True, 1.0, 0.5),
    "no-hints-raw": (False, 0.0, 0.0),
    "no-hints-calibrated": (False, 1.0, 0.0),
    "no-hints-calibrated+embedding": (False, 1.0, 1.0),
}


def compare_variants(
    manifest_path: str | Path,
    describe: DescribeFn,
    reasoner: Reasoner,
    labels: str | None = None,
    variants: dict[str, tuple[bool, float, float]] | None = None,
    progress: Counts | None = None,
    grammar: bool = True,
) -> dict[str, EvalReport]:
    """Evaluate calibration / evidence-combination variants of the LLM reasoner.

    Each video is described once and the LLM scores each (video, label set,
    hints) once; the variants only recombine that evidence, so comparing nine
    variants costs about two LLM passes. The embedding-only reasoner is
    included as ``embedding``, and with ``grammar`` the second strategy
    (one grammar-constrained generation per row, its own LLM pass) as ``grammar``.

    Args:
        manifest_path: CSV with ``path,label[,labelset]``.
        describe: ``describe(video, modalities) -> Timeline``.
        reasoner: the reasoning room whose models every variant shares.
        labels: label set for rows without a ``labelset`` column.
        variants: ``{name: (hints, calibration weight, embedding weight)}`` (default :data:`VARIANTS`).
        progress: called with ``(rows done, rows)`` over every variant's pass, after each row.
        grammar: also evaluate the grammar strategy.

    Returns:
        ``{variant name: report}``.
    """
    variants = variants or VARIANTS
    timelines: dict[str, Timeline] = {}
    shortlist_size = reasoner.config.shortlist

    def described(video: str, mods) -> Timeline:
        if video not in timelines:
            timelines[video] = describe(video, mods)
        return timelines[video]

    methods = {h: reasoner.llm_method(hints=h, calibration_weight=1.0) for h in {v[0] for v in variants.values()}}
    evidence: dict[tuple, Any] = {}

    def classifier(hints: bool, cw: float, ew: float) -> ClassifyFn:
        def classify(tl: Timeline, ls: LabelSet, *, modalities=None, top_k: int = 5) -> Prediction:
            # Keyed on the timeline's content: two rows of one video share the LLM pass.
            key = (hashlib.sha256(tl.to_json(sort_keys=True).encode()).hexdigest(), ls.sha256, hints, tuple(modalities or ()))
            if key not in evidence:
                evidence[key] = methods[hints].evidence(tl, ls, modalities)
            ev = evidence[key]
            probs = methods[hints].combine(ev, cw, ew)
            return make_prediction("llm", ls, ev.idx, probs, top_k, tl.only(modalities).is_empty, ev.stats)

        return classify

    passes = 1 + len(variants) + grammar
    out: dict[str, EvalReport] = {}

    def run(name: str, classify: ClassifyFn) -> None:
        before = len(out)

        def rows_done(done: int, total: int) -> None:
            if progress is not None:
                progress(before * total + done, passes * total)

        out[name] = evaluate(manifest_path, described, classify, labels, name=name, shortlist_size=shortlist_size, progress=rows_done)

    run("embedding", reasoner.method("embedding").classify)
    for name, (hints, cw, ew) in variants.items():
        run(name, classifier(hints, cw, ew))
    if grammar:
        run("grammar", reasoner.llm_method(strategy="grammar").classify)
    return out


def format_report(report: EvalReport) -> str:
    """A plain-text summary: overall, per label set, ablations, latency, confusions (``EvalReport.to_text``)."""

    def line(name: str, s: Score, extra: str = "") -> str:
        mr = f"{s.mean_rank:.1f}" if s.mean_rank is not None else "-"
        agree = f" agreement={s.agreement:.3f}" if s.agreement is not None else ""
        return f"{name:<22} n={s.n:<4} top1={s.top1:.3f} top5={s.top5:.3f} mean_rank={mr:<6} shortlist_recall={s.shortlist_recall:.3f} errors={s.errors}{agree}{extra}"

    out = [f"manifest {report.manifest}  reasoner {report.reasoner}", line("overall", report.overall)]
    out += [line(p.labelset, p.score, "" if p.zero_shot else "  (not zero-shot: Kinetics recogniser in the loop)") for p in report.per_labelset]
    if report.ablations:
        out.append("ablations (modalities the reasoner reads):")
        out += [line("  " + k, s) for k, s in report.ablations.items()]
    if report.routes:
        answered = sum(report.routes.values())
        out.append("routes: " + ", ".join(f"{k} {v} ({v / answered:.0%})" for k, v in sorted(report.routes.items())))
    if report.latency_s:
        out.append("mean latency (s): " + ", ".join(f"{k}={v:.2f}" for k, v in report.latency_s.items()))
    if report.confusion:
        out.append("confusions (true -> predicted: count):")
        out += [f"  {t} -> {p}: {c}" for t, p, c in report.confusion]
    errors = [r for r in report.rows if r.error and r.modalities == "all"]
    if errors:
        out.append("errors:")
        out += [f"  line {r.line} {r.path}: {r.error}" for r in errors]
    return "\n".join(out)
