"""A plain-text view of an explanation for terminals (``--format text``)."""

from __future__ import annotations

from vidsense.concepts.schema import Explanation


def render_text(expl: Explanation, max_concepts: int = 6) -> str:
    """A plain-text view of an explanation for terminals (``--format text``)."""
    p, a, g = expl.prediction, expl.agreement, expl.global_
    lines = [f"Concept model: {p.label} ({p.probability:.2f})   top-{len(p.top_k)}: " + ", ".join(f"{s.label} {s.score:.2f}" for s in p.top_k)]
    if a.llm_label is not None:
        verdict = "agrees" if a.agrees else f"disagrees (LLM's label is #{a.llm_label_rank} for the concept model)"
        lines.append(f"LLM: {a.llm_label} - concept model {verdict}")
    lines += [f"Note: {n}" for n in expl.notes]
    lines.append(f"\nWhy {g.label}: concepts (time-weighted contribution)")
    peak = max((c.value for c in g.concepts), default=0.0) or 1.0
    for c in g.concepts[:max_concepts]:
        lines.append(f"  {c.text:28.28s} {c.kind:10s} {c.value:+.3f} {_bar(c.value / peak)}")
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
    if expl.occlusion is not None:
        o = expl.occlusion
        worst = sorted(o.windows, key=lambda s: -s.drop)[:3]
        lines.append(f"\nLLM occlusion of {o.label} (p={o.base_probability:.2f}): windows " + ", ".join(f"{expl.windows[int(s.group)].label} {-s.drop:+.2f}" for s in worst))
        if o.modalities:
            lines.append("  modalities: " + ", ".join(f"{s.group} {-s.drop:+.2f}" for s in o.modalities))
    if expl.interventions:
        lines.append("\nInterventions")
        for r in expl.interventions:
            what = f"{r.action} {r.target}" + (f" x{r.factor:g}" if r.action == "boost_concept" else "")
            change = f"-> {r.label_after}" if r.changed else "(same label)"
            lines.append(f"  {what:36.36s} p({g.label}) {r.probability_before:.2f} -> {r.probability_after:.2f} {change}")
    return "\n".join(lines)


def _bar(frac: float, width: int = 12) -> str:
    n = int(round(max(0.0, min(1.0, frac)) * width))
    return "#" * n + "." * (width - n)
