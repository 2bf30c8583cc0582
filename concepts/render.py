"""A plain-text view of an explanation for terminals (``--format text``)."""

from __future__ import annotations

from vidsense.concepts.explanation import Explanation


def render_text(expl: Explanation, max_concepts: int = 6) -> str:
    """A plain-text view of an explanation for terminals (``--format text``).

    With a view of the model that answered (fused and cascade routes), that view comes first
    and the concept bank's model follows, headed as the second model it is.
    """
    p, a, g = expl.prediction, expl.agreement, expl.global_
    lines = _answer_model_lines(expl, max_concepts) if expl.answer_model is not None else []
    if lines:
        lines += _answer_lines(expl) if expl.answer is not None else []
    if p is None or a is None or g is None or expl.local is None or expl.temporal is None or expl.attributions is None:
        lines += [f"Note: {n}" for n in expl.notes]
        return "\n".join(lines + _occlusion_lines(expl))
    if lines:
        lines.append("\nA second model, the concept bank's (it did not give the answer):")
    lines.append(f"Concept model: {p.label} ({p.probability:.2f})   top-{len(p.top_k)}: " + ", ".join(f"{s.label} {s.score:.2f}" for s in p.top_k))
    if a.llm_label is not None:
        route = f" (route {a.answer_route})" if a.answer_route else ""
        if a.agrees:
            verdict = "the concept model agrees"
        else:
            p_answer = f", p={a.answer_probability:.2f}" if a.answer_probability is not None else ""
            verdict = f"the concept model ranks it #{a.llm_label_rank}{p_answer}; the views below explain the answer, not the concept model's top-1"
        lines.append(f"Answer: {a.llm_label}{route} - {verdict}")
    lines += [f"Note: {n}" for n in expl.notes]
    if expl.answer is not None and expl.answer_model is None:
        lines += _answer_lines(expl)
    lines.append(f"\nWhy {g.label}: concepts (time-weighted contribution)")
    peak = max((c.value for c in g.concepts), default=0.0) or 1.0
    for c in g.concepts[:max_concepts]:
        lines.append(f"  {c.text:28.28s} {_what(c.kind, c.source):18s} {c.value:+.3f} {_bar(c.value / peak)}")
    lines.append("\nWhen: most important windows")
    for t in expl.local.top_windows:
        w, lw = expl.windows[t], expl.local.windows[t]
        tops = ", ".join(f"{c.text} {c.value:+.2f}" for c in lw.top_concepts) or "-"
        lines.append(f"  [{w.label:>9s}] weight {lw.importance:.2f} {_bar(lw.importance)}  {tops}")
    if expl.temporal.concepts:
        lines.append("\nHow in time: where each top concept's evidence comes from")
        for ca in expl.temporal.concepts[:3]:
            src = ", ".join(f"{expl.windows[q].label}<-{expl.windows[s].label}" for q, s in enumerate(ca.peak_source) if q != s)
            lines.append(f"  {ca.text}: gate {ca.gate:.2f}; " + (src or "each window uses its own evidence"))
    ig = expl.attributions.integrated_gradients
    if ig is not None:
        lines.append(f"\nIntegrated Gradients (delta {ig.convergence_delta:.1e}): " + ", ".join(f"{c.text} {c.value:+.3f}" for c in ig.by_concept[:max_concepts]))
    fa = expl.attributions.feature_ablation
    if fa is not None and fa.by_modality:
        lines.append("Without each modality: " + ", ".join(f"{m.group} {-m.delta:+.3f}" for m in fa.by_modality))
    lines += _occlusion_lines(expl)
    if expl.interventions:
        lines.append("\nInterventions")
        for r in expl.interventions:
            what = f"{r.action} {r.target}" + (f" x{r.factor:g}" if r.action == "boost_concept" else "")
            change = f"-> {r.label_after}" if r.changed else "(same label)"
            lines.append(f"  {what:36.36s} p({g.label}) {r.probability_before:.2f} -> {r.probability_after:.2f} {change}")
    return "\n".join(lines)


def _occlusion_lines(expl: Explanation) -> list[str]:
    """The route's own probability of its answer with each window and modality removed."""
    o = expl.occlusion
    if o is None:
        return []
    worst = sorted(o.windows, key=lambda s: -s.drop)[:3]
    lines = [f"\nOcclusion of {o.label} (the route re-scored, p={o.base_probability:.2f}): windows " + ", ".join(f"{expl.windows[int(s.group)].label} {-s.drop:+.2f}" for s in worst)]
    if o.modalities:
        lines.append("  modalities: " + ", ".join(f"{s.group} {-s.drop:+.2f}" for s in o.modalities))
    return lines


def _answer_model_lines(expl: Explanation, max_concepts: int) -> list[str]:
    """The views of the model that answered: concepts, windows, text terms, interventions."""
    m = expl.answer_model
    assert m is not None
    lines = [f"Answer: {m.label} (p={m.probability:.2f}, route {m.route}); decided by {m.decided_by}   top-{len(m.top_k)}: "
             + ", ".join(f"{s.label} {s.score:.2f}" for s in m.top_k)]
    if m.note:
        lines.append(f"  ({m.note})")
    lines.append(f"\nWhy {m.label}: the answering model's concepts (Integrated Gradients of log p, gap {m.ig_gap:+.1e} of {m.ig_total:.2f};"
                 " 'without' = log p with the concept removed)")
    peak = max((abs(c.attribution) for c in m.concepts), default=0.0) or 1.0
    for c in m.concepts[:max_concepts]:
        lines.append(f"  {c.text:28.28s} {_what('', c.source):18s} {c.attribution:+.3f} without {c.removal:+.2f} {_bar(abs(c.attribution) / peak)}")
    for c in m.text_terms:
        lines.append(f"  {c.text:28.28s} {'text source':18s} {c.attribution:+.3f}")
    lines.append("\nWhen: each window's relevance (IG) and what emptying it does to log p")
    for w in m.windows:
        tops = ", ".join(f"{c.text} {c.attribution:+.2f}" for c in w.top_concepts) or "-"
        lines.append(f"  [{w.start_s:4.1f}-{w.end_s:4.1f} s] {w.relevance:+.2f}  without {w.ablation:+.2f}  {tops}")
    lines.append("\nInterventions on the answering model (the answer a user would get)")
    for r in m.interventions:
        what = f"{r.action} {r.target}" + (f" x{r.factor:g}" if r.action == "boost_concept" else "")
        change = f"-> {r.label_after}" if r.changed else "(same label)"
        lines.append(f"  {what:40.40s} p({m.label}) {r.probability_before:.2f} -> {r.probability_after:.2f} {change}")
    return lines


def _answer_lines(expl: Explanation, max_sources: int = 5) -> list[str]:
    """The answer as the fused route weighed it: sources, the classes behind each, the windows."""
    ans = expl.answer
    assert ans is not None
    lines = [f"\nWhat decided {ans.label} ({ans.route} route, its own evidence; push above the average label):"]
    for s in [s for s in ans.sources if s.contribution > 0][:max_sources]:
        classes = ", ".join(f"{c.text} {c.value:+.2f}" for c in s.concepts) or "-"
        lines.append(f"  {s.source:9s} {s.contribution:+.2f}  {classes}")
    against = [s for s in ans.sources if s.contribution < 0]
    if against:
        lines.append("  against: " + ", ".join(f"{s.source} {s.contribution:+.2f}" for s in against))
    peak = max(ans.windows, default=0.0)
    if peak > 0:
        best = sorted(range(len(ans.windows)), key=lambda t: -ans.windows[t])[:3]
        lines.append("  from windows: " + ", ".join(f"{expl.windows[t].label} {ans.windows[t]:+.2f}" for t in best if ans.windows[t] > 0))
    if ans.note:
        lines.append(f"  ({ans.note})")
    return lines


# How an evidence concept's source reads in a table.
_SOURCE_WORDS = {"action": "action recogniser", "objects": "object detector", "scene": "image classifier", "sound": "sound tagger", "gesture": "pose gesture"}


def _what(kind: str, source: str) -> str:
    """The kind of a text concept, or the perception model an evidence concept comes from."""
    return _SOURCE_WORDS.get(source, source) if source else kind


def _bar(frac: float, width: int = 12) -> str:
    n = int(round(max(0.0, min(1.0, frac)) * width))
    return "#" * n + "." * (width - n)
