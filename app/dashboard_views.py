"""What the dashboard draws, as pure functions of the SDK's JSON.

Every figure is built from ``ExplanationResult.to_dict()`` (``result``) or
``Timeline.to_dict()`` (``timeline``), so the views can be tested without
Streamlit and show exactly what the SDK returned.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import plotly.graph_objects as go

# One colour per modality, shared by every chart that splits by modality.
MODALITY_COLOURS = {"sight": "#1f77b4", "speech": "#d62728", "sound": "#2ca02c", "text": "#9467bd"}
CURSOR_COLOUR = "rgba(255, 165, 0, 0.25)"
_SPLIT = re.compile(r"[\n,]")


def parse_labels(text: str) -> list[str]:
    """Labels pasted one per line or comma-separated, blanks dropped."""
    return [s.strip() for s in _SPLIT.split(text or "") if s.strip()]


def _layout(fig: go.Figure, title: str, height: int = 320) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), showlegend=fig.layout.showlegend)
    return fig


def probability_figure(top_k: Sequence[Mapping[str, Any]], title: str = "Prediction") -> go.Figure:
    """Horizontal probability bars, best label on top."""
    labels = [t["label"] for t in top_k][::-1]
    scores = [t["score"] for t in top_k][::-1]
    fig = go.Figure(go.Bar(x=scores, y=labels, orientation="h", text=[f"{s:.2f}" for s in scores], textposition="auto", marker_color="#1f77b4"))
    fig.update_xaxes(range=[0, 1], title="probability")
    return _layout(fig, title, height=60 + 36 * len(labels))


def _cursor(fig: go.Figure, window: Mapping[str, Any] | None) -> None:
    if window is not None:
        fig.add_vrect(x0=window["start_s"], x1=window["end_s"], fillcolor=CURSOR_COLOUR, line_width=0)


def timeline_figure(timeline: Mapping[str, Any], cursor: int | None = None) -> go.Figure:
    """Observations per modality on a shared time axis; the hover shows the text."""
    fig = go.Figure()
    for modality, colour in MODALITY_COLOURS.items():
        obs = [o for o in timeline["observations"] if o["modality"] == modality]
        if not obs:
            continue
        fig.add_trace(go.Bar(
            base=[o["start_s"] for o in obs],
            x=[max(o["end_s"] - o["start_s"], 0.05) for o in obs],
            y=[f"{modality}: {o.get('kind') or o['source_model']}" for o in obs],
            orientation="h",
            name=modality,
            marker_color=colour,
            opacity=0.8,
            hovertext=[f"{o['source_model']}: {o['text']} ({o.get('score', 1.0):.2f})" for o in obs],
            hoverinfo="text",
        ))
    windows = timeline["windows"]
    _cursor(fig, windows[cursor] if cursor is not None and 0 <= cursor < len(windows) else None)
    fig.update_layout(barmode="overlay", showlegend=True)
    fig.update_xaxes(title="time (s)", range=[0, (timeline.get("video") or {}).get("duration_s") or (windows[-1]["end_s"] if windows else 1)])
    rows = {y for trace in fig.data for y in trace.y}
    return _layout(fig, "Timeline per modality (hover for the text)", height=140 + 28 * len(rows))


def window_texts(timeline: Mapping[str, Any], index: int) -> list[str]:
    """The observations of one window as ``modality/model: text`` lines."""
    return [f"{o['modality']} / {o['source_model']}: {o['text']}" for o in timeline["observations"] if o["window"] == index]


def global_figure(explanation: Mapping[str, Any]) -> go.Figure:
    """Global concept importance for the explained class."""
    g = explanation["global"]
    concepts = g["concepts"][::-1]
    fig = go.Figure(go.Bar(x=[c["value"] for c in concepts], y=[f"{c['text']} ({c['kind']})" for c in concepts], orientation="h", marker_color="#ff7f0e"))
    fig.update_xaxes(title="time-weighted contribution")
    return _layout(fig, f"Why {g['label']}: concept importance", height=80 + 26 * max(len(concepts), 1))


def answer_concepts_figure(explanation: Mapping[str, Any]) -> go.Figure:
    """The answering model's concepts and text terms: Integrated Gradients of log p(answer), largest on top."""
    m = explanation["answer_model"]
    items = (m["concepts"] + m["text_terms"])[::-1]
    fig = go.Figure(go.Bar(
        x=[c["attribution"] for c in items], y=[f"{c['text']} ({c['source']})" for c in items], orientation="h",
        marker_color=["#2ca02c" if c["attribution"] >= 0 else "#d62728" for c in items],
        hovertext=[f"log p without it: {c['removal']:+.2f}" if c["concept"] >= 0 else "whole-video text term" for c in items],
    ))
    fig.update_xaxes(title="attribution to log p (Integrated Gradients)")
    title = f"Why {m['label']}: concepts (IG gap {m['ig_gap']:+.0e})"
    return _layout(fig, title, height=80 + 26 * max(len(items), 1))


def answer_windows_figure(explanation: Mapping[str, Any], cursor: int | None = None) -> go.Figure:
    """Per window: its relevance (IG summed over its concepts) and what emptying it does to log p(answer)."""
    m = explanation["answer_model"]
    xs = [f"{w['start_s']:.0f}-{w['end_s']:.0f} s" for w in m["windows"]]
    fig = go.Figure([
        go.Bar(x=xs, y=[w["relevance"] for w in m["windows"]], name="relevance (IG)", marker_color="#1f77b4",
               hovertext=[", ".join(c["text"] for c in w["top_concepts"]) or "-" for w in m["windows"]]),
        go.Bar(x=xs, y=[w["ablation"] for w in m["windows"]], name="log p change when emptied", marker_color="#ff7f0e"),
    ])
    if cursor is not None and 0 <= cursor < len(xs):
        fig.add_vline(x=cursor, line_color="orange", line_width=2)
    fig.update_layout(barmode="group", showlegend=True)
    fig.update_yaxes(title="log p(answer)")
    return _layout(fig, "When: each window's part in the answer")


def local_heatmap(explanation: Mapping[str, Any], cursor: int | None = None) -> go.Figure:
    """Windows x top concepts contribution matrix."""
    loc = explanation["local"]
    texts = {c["index"]: c["text"] for c in explanation["concepts"]}
    xs = [texts.get(c, str(c)) for c in loc["concepts"]]
    ys = [w["label"] for w in explanation["windows"]]
    fig = go.Figure(go.Heatmap(z=loc["matrix"], x=xs, y=ys, colorscale="RdBu", zmid=0, colorbar=dict(title="contrib.")))
    if cursor is not None and 0 <= cursor < len(ys):
        fig.add_hline(y=cursor, line_color="orange", line_width=2)
    fig.update_yaxes(autorange="reversed", title="window")
    return _layout(fig, "When: concept contribution per window", height=160 + 26 * len(ys))


def attention_figure(explanation: Mapping[str, Any], concept: int) -> go.Figure:
    """One concept's attention map: row = query window, column = the window it reads from."""
    maps = {c["concept"]: c for c in explanation["temporal"]["concepts"]}
    ca = maps[concept]
    ys = [w["label"] for w in explanation["windows"]]
    fig = go.Figure(go.Heatmap(z=ca["attention"], x=ys, y=ys, colorscale="Viridis", zmin=0, zmax=1, colorbar=dict(title="attention")))
    fig.update_yaxes(autorange="reversed", title="query window")
    fig.update_xaxes(title="attended window")
    return _layout(fig, f"Temporal attention: {ca['text']} (gate {ca['gate']:.2f})", height=200 + 22 * len(ys))


def occlusion_frames(explanation: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Rows for the occlusion bars: ``windows`` and ``modalities``, from the LLM
    occlusion (when run) and the concept model's feature ablation.

    Each row: ``group`` (window label or modality), ``drop`` (probability lost
    without it) and ``source`` (``LLM`` or ``concept model``).
    """
    labels = {str(w["index"]): w["label"] for w in explanation["windows"]}
    rows: dict[str, list[dict[str, Any]]] = {"windows": [], "modalities": []}
    occ = explanation.get("occlusion")
    if occ:
        rows["windows"] += [{"group": labels.get(s["group"], s["group"]), "drop": s["drop"], "source": "LLM"} for s in occ["windows"]]
        rows["modalities"] += [{"group": s["group"], "drop": s["drop"], "source": "LLM"} for s in occ["modalities"]]
    fa = (explanation.get("attributions") or {}).get("feature_ablation")
    if fa:
        rows["windows"] += [{"group": labels.get(s["group"], s["group"]), "drop": s["delta"], "source": "concept model"} for s in fa["by_window"]]
        rows["modalities"] += [{"group": s["group"], "drop": s["delta"], "source": "concept model"} for s in fa["by_modality"]]
    return rows


def occlusion_figure(rows: Sequence[Mapping[str, Any]], title: str) -> go.Figure:
    """Grouped bars of the probability lost when each group is removed."""
    fig = go.Figure()
    for source, colour in (("LLM", "#d62728"), ("concept model", "#7f7f7f")):
        sel = [r for r in rows if r["source"] == source]
        if sel:
            fig.add_trace(go.Bar(x=[r["group"] for r in sel], y=[r["drop"] for r in sel], name=source, marker_color=colour))
    fig.update_layout(barmode="group", showlegend=True)
    fig.update_yaxes(title="probability lost without it")
    return _layout(fig, title)


def compare_figure(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Probabilities before and after an intervention, over the labels of either."""
    labels = list(dict.fromkeys([t["label"] for t in before] + [t["label"] for t in after]))
    b = {t["label"]: t["score"] for t in before}
    a = {t["label"]: t["score"] for t in after}
    fig = go.Figure([
        go.Bar(x=labels, y=[b.get(lab, 0.0) for lab in labels], name="before", marker_color="#1f77b4"),
        go.Bar(x=labels, y=[a.get(lab, 0.0) for lab in labels], name="after", marker_color="#ff7f0e"),
    ])
    fig.update_layout(barmode="group", showlegend=True)
    fig.update_yaxes(range=[0, 1], title="probability")
    return _layout(fig, "Prediction before / after")
