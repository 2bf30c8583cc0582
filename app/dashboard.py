"""The vidsense explanation dashboard (Streamlit): ``vidsense dashboard``.

Pick a video (from a folder inside the root it was started with, or uploaded)
and a label set, press Explain: the page shows the video with a time cursor,
the timeline per modality, the prediction, the concept explanation (global,
local, temporal), occlusion, and interventions that re-run the reasoner or the
concept model. An upload is on disk, in a private folder, only while a model
reads it.

It calls only the SDK (``vidsense.*``); everything drawn comes from
``ExplanationResult.to_dict()`` and ``Timeline.to_dict()``. Models live in one
cached :class:`vidsense.Pipeline` (``st.cache_resource``); explanations and
re-classifications are cached by their inputs (``st.cache_data``).
Defaults are the CLI's (the configured route, no LLM occlusion) and can come from the URL:
``?video=bikes.mp4&labels=ucf101&reasoner=llm&occlusion=1``.
"""

from __future__ import annotations

import contextvars
import os
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Callable

import streamlit as st

import vidsense
from vidsense.app import dashboard_views as views
from vidsense.app.dashboard_cmd import FOLDER_ENV, ROOT_ENV
from vidsense.app.roots import UploadFolder, list_videos, upload_problem

CUSTOM = "custom (paste labels)"
# The routes, each with what it costs on a CPU, said before it runs.
REASONERS: dict[str, str] = {
    "cascade": "evidence fusion; the LLM only on close calls (the default): seconds",
    "fused": "evidence fusion, no LLM: seconds",
    "llm": "the LLM reads the timeline: 10-40 s a clip on a CPU",
    "embedding": "the timeline against label descriptions: seconds",
    "concepts": "the concept bottleneck answers: seconds",
}
# The SDK's progress stages (``Pipeline.explain(progress=)``), as the status box words them.
STAGES = {"perceiving": "Perceiving the video...", "reasoning": "Classifying...", "explaining": "Explaining...", "done": "Done"}


@st.cache_resource(show_spinner="Loading models...")
def pipeline() -> vidsense.Pipeline:
    """The one Pipeline of this server (settings from vidsense.toml / VIDSENSE_* variables)."""
    return vidsense.Pipeline()


@st.cache_data(show_spinner=False, max_entries=32)
def explain(
    video: str, stamp: tuple[int, int], labels: str | tuple[str, ...], reasoner: str, occlusion: bool, _progress: Callable[[str, float], None] | None = None
) -> dict[str, Any]:
    """Explanation and timeline of one video (``stamp`` = size, mtime: a changed file re-runs; ``_progress``, not part of the key, is told the stages)."""
    res = pipeline().explain(video, _labels(labels), reasoner=reasoner, llm_occlusion=occlusion, progress=_progress)
    return {"result": res.to_dict(), "timeline": res.classification.timeline.to_dict()}


@st.cache_data(show_spinner=False, max_entries=64)
def reclassify(timeline: dict[str, Any], labels: str | tuple[str, ...], reasoner: str, drop_windows: tuple[int, ...], drop_modalities: tuple[str, ...]) -> dict[str, Any]:
    """The reasoner's prediction for the timeline with windows / modalities removed."""
    tl = vidsense.Timeline.from_dict(timeline).without_windows(drop_windows)
    keep = sorted({o.modality for o in tl.observations} - set(drop_modalities))
    pred = pipeline().classify_timeline(tl, _labels(labels), modalities=keep, top_k=5, reasoner=reasoner)
    return {"label": pred.label, "top_k": [{"label": s.label, "score": s.score} for s in pred.top_k], "low_confidence": pred.low_confidence}


@st.cache_data(show_spinner=False, max_entries=64)
def intervene(video: str, stamp: tuple[int, int], labels: str | tuple[str, ...], reasoner: str, occlusion: bool, action: str, concepts: tuple[int, ...], factor: float) -> list[dict[str, Any]]:
    """The concept model's label before / after removing or boosting each concept.

    Runs on the explained timeline (cached by :func:`explain`): no perception or LLM call again.
    """
    data = explain(video, stamp, labels, reasoner, occlusion)
    timeline = vidsense.Timeline.from_dict(data["timeline"])
    target = data["result"]["explanation"]["agreement"]["explained_label"]
    specs = [vidsense.InterventionSpec(action, concept=c, factor=factor) for c in concepts]  # type: ignore[arg-type]
    return [r.model_dump(by_alias=True, mode="json") for r in pipeline().intervene(timeline, specs, labels=_labels(labels), target=target)]


@st.cache_data(show_spinner=False, max_entries=64)
def intervene_answer(video: str, stamp: tuple[int, int], labels: str | tuple[str, ...], reasoner: str, occlusion: bool, specs: tuple[tuple[str, Any], ...]) -> list[dict[str, Any]]:
    """The answer a user would get under each intervention on the model that answered
    (``specs``: ``(action, concept / window / source)``); no perception or LLM call again."""
    data = explain(video, stamp, labels, reasoner, occlusion)
    timeline = vidsense.Timeline.from_dict(data["timeline"])
    target = data["result"]["explanation"]["answer_model"]["label"]
    keys = {"remove_concept": "concept", "boost_concept": "concept", "drop_window": "window", "drop_source": "source"}
    made = [vidsense.InterventionSpec(action, **{keys[action]: value}) for action, value in specs]  # type: ignore[arg-type]
    return [r.model_dump(by_alias=True, mode="json") for r in pipeline().intervene(timeline, made, labels=_labels(labels), target=target, model="answer")]


def _labels(spec: str | tuple[str, ...]) -> str | list[str]:
    return list(spec) if isinstance(spec, tuple) else spec


def _stamp(path: Path) -> tuple[int, int]:
    st_ = path.stat()
    return st_.st_size, st_.st_mtime_ns


def _root() -> Path:
    """The only folder whose videos the page lists and plays (``vidsense dashboard --root``)."""
    return Path(os.environ.get(ROOT_ENV) or os.getcwd()).resolve()


def _uploads() -> UploadFolder:
    """This session's private upload folder; it goes when the session's state does."""
    if "upload_folder" not in st.session_state:
        st.session_state["upload_folder"] = UploadFolder()
    return st.session_state["upload_folder"]


def show_stages(status: Any) -> Callable[[str, float], None]:
    """A progress bar in ``status`` (an ``st.status`` box) that the SDK's stages move.

    The SDK calls it from inside the cached :func:`explain`, where Streamlit records each
    element call to replay it on a cache hit, and the replay fails once the box is gone;
    run in the page's own context (taken here), the updates are drawn but not recorded.
    """
    bar = status.progress(0.0, text=STAGES["perceiving"])
    page = contextvars.copy_context()

    def show(stage: str, fraction: float) -> None:
        page.run(bar.progress, min(max(fraction, 0.0), 1.0), text=STAGES.get(stage, stage))

    return show


def _on_disk(req: dict[str, Any]) -> AbstractContextManager:
    """Keeps the request's video on disk while a model may read it: an upload only for that long."""
    if req["upload"] is None:
        return nullcontext()
    return _uploads().holding(Path(req["video"]).name, req["upload"])


def pick_video(settings: vidsense.Settings, query: dict[str, str], root: Path) -> tuple[Path, bytes | None] | None:
    """Sidebar: a video from a folder inside ``root``, or an upload (with its bytes); ``None`` (with a message) when unusable."""
    source = st.sidebar.radio("Video", ["From a folder", "Upload"], key="source", horizontal=True)
    if source == "Upload":
        allowed = sorted(vidsense.VIDEO_EXTENSIONS)
        up = st.sidebar.file_uploader(
            f"Upload a video (up to {settings.max_upload_mb} MB)", type=[e[1:] for e in allowed],
            max_upload_size=settings.max_upload_mb, key="upload",
        )
        if up is None:
            return None
        problem = upload_problem(up.name, up.size, settings.max_upload_mb, allowed)
        if problem:
            st.sidebar.error(problem)
            return None
        data = up.getvalue()
        return _uploads().path_for(up.name, data), data
    examples = vidsense.example_video().parent.resolve()
    default = os.environ.get(FOLDER_ENV) or str(examples if examples.is_relative_to(root) else root)
    folder = st.sidebar.text_input("Folder", value=default, key="folder")
    try:
        base, videos = list_videos(folder, root)
    except vidsense.InputError as exc:
        st.sidebar.error(str(exc))
        return None
    names = [str(v.relative_to(base)) for v in videos]
    wanted = query.get("video")
    index = names.index(wanted) if wanted in names else 0
    name = st.sidebar.selectbox("Video file", names, index=index, key="video")
    return base / name, None


def pick_labels(query: dict[str, str]) -> str | tuple[str, ...]:
    """Sidebar: a bundled label set, or pasted labels (checked when Explain is pressed)."""
    options = [*vidsense.bundled_names(), CUSTOM]
    wanted = query.get("labels")
    index = options.index(wanted) if wanted in options else 0
    choice = st.sidebar.selectbox("Label set", options, index=index, key="labelset")
    if choice != CUSTOM:
        return choice
    text = st.sidebar.text_area("Labels (one per line or comma-separated)", key="custom_labels")
    return tuple(views.parse_labels(text))


def show_header(cls: dict[str, Any], expl: dict[str, Any]) -> None:
    top = cls["top_k"][0]
    st.subheader(f"Prediction: {cls['label']}  ({top['score']:.2f})")
    st.caption(f"label set {cls['labelset']} · reasoner {cls['reasoner']} · {cls['timings'].get('total', 0):.1f} s")
    if cls.get("low_confidence"):
        st.warning("Low confidence: little was observed, or the top probability is low.")
    answered = expl.get("answer_model")
    if answered:
        st.caption(f"Explained by the model that answered: the {answered['route']} route in bottleneck form (its probabilities are the answer's); "
                   f"decided by {answered['decided_by']}.")
        if answered.get("note"):
            st.info(answered["note"])
    agree = expl.get("agreement")
    if agree and agree.get("agrees") is False and not answered:
        st.info(f"The concept model prefers {agree['concept_label']}; the views below explain the concept evidence for {agree['explained_label']}.")
    for warning in cls.get("warnings", []):
        st.warning(warning)
    for note in cls.get("notes", []):
        st.caption(f"note: {note}")


def show_video_and_prediction(video: str | bytes, cls: dict[str, Any], timeline: dict[str, Any]) -> int:
    """Video with its time cursor next to the probabilities; returns the cursor's window."""
    windows = timeline["windows"]
    left, right = st.columns([3, 2])
    with left:
        cursor = st.select_slider(
            "Time cursor (window)", options=list(range(len(windows))), key="cursor",
            format_func=lambda i: f"{windows[i]['start_s']:.1f}-{windows[i]['end_s']:.1f} s",
        ) if len(windows) > 1 else 0
        st.video(video, start_time=int(windows[cursor]["start_s"]) if windows else 0)
        lines = views.window_texts(timeline, cursor)
        st.markdown("**In this window:**\n" + ("\n".join(f"- {t}" for t in lines) if lines else "\n_(nothing observed)_"))
    with right:
        st.plotly_chart(views.probability_figure(cls["top_k"]), key="chart_probability")
        if cls.get("justification"):
            st.markdown(f"**Why (LLM):** {cls['justification']}")
        if cls.get("route"):
            reason = cls.get("route_reason")
            st.caption(f"Route: {cls['route']}" + (f" ({reason})" if reason else ""))
        if cls.get("evidence"):
            st.markdown("**Which evidence voted for what** (push toward the predicted label, fused log-score):")
            st.dataframe(
                [{"source": v["source"], "its top label": v["top"][0]["label"], "push": v["contribution"], "weight": v["weight"], "coverage": v["coverage"]} for v in cls["evidence"]],
                key="table_evidence",
            )
    return cursor


def show_interventions(req: dict[str, Any], data: dict[str, Any]) -> None:
    expl = data["result"]["explanation"]
    cls = data["result"]["classification"]
    timeline = data["timeline"]
    windows = timeline["windows"]
    st.markdown("**Remove windows or modalities and re-run the reasoner** on the same timeline.")
    present = sorted({o["modality"] for o in timeline["observations"]})
    c1, c2 = st.columns(2)
    drop_w = c1.multiselect("Drop windows", list(range(len(windows))), format_func=lambda i: f"{windows[i]['start_s']:.1f}-{windows[i]['end_s']:.1f} s", key="drop_windows")
    drop_m = c2.multiselect("Drop modalities", present, key="drop_modalities")
    if st.button("Re-classify", key="reclassify"):
        try:
            with st.spinner("Re-classifying..."):
                st.session_state["llm_intervention"] = (tuple(drop_w), tuple(drop_m), reclassify(timeline, req["labels"], req["reasoner"], tuple(drop_w), tuple(drop_m)))
        except vidsense.VidsenseError as exc:
            st.error(str(exc))
    done = st.session_state.get("llm_intervention")
    if done:
        dw, dm, after = done
        what = ", ".join([f"window {windows[w]['start_s']:.1f}-{windows[w]['end_s']:.1f} s" for w in dw] + [f"modality {m}" for m in dm]) or "nothing"
        verdict = "same label" if after["label"] == cls["label"] else f"label changes to **{after['label']}**"
        st.markdown(f"Without {what}: {cls['label']} → {after['label']} ({verdict}).")
        st.plotly_chart(views.compare_figure(cls["top_k"], after["top_k"]), key="chart_compare")

    if expl.get("answer_model"):
        show_answer_interventions(req, expl)
    if not expl.get("global"):
        return
    st.markdown("**Toggle concepts in the concept model** (MoTIF intervention, a second model: it does not change the answer).")
    order = [c["concept"] for c in expl["global"]["concepts"]]
    texts = {c["index"]: c["text"] for c in expl["concepts"]}
    options = order + [i for i in texts if i not in order]
    c3, c4 = st.columns(2)
    picked = c3.multiselect("Concepts", options, format_func=lambda i: texts[i], key="concepts")
    action = c4.radio("Action", ["remove_concept", "boost_concept"], key="concept_action", horizontal=True)
    if st.button("Apply to the concept model", key="intervene") and picked:
        try:
            with st.spinner("Applying the interventions to the concept model..."), _on_disk(req):
                st.session_state["concept_intervention"] = intervene(req["video"], req["stamp"], req["labels"], req["reasoner"], req["occlusion"], action, tuple(picked), 2.0)
        except vidsense.VidsenseError as exc:
            st.error(str(exc))
    if st.session_state.get("concept_intervention"):
        st.dataframe(st.session_state["concept_intervention"], key="table_concept_intervention")
    with st.expander("Standard interventions recorded with the explanation"):
        st.dataframe(expl["interventions"])


def show_answer_interventions(req: dict[str, Any], expl: dict[str, Any]) -> None:
    """Interventions on the model that answered: each re-ranks the answer a user would get."""
    m = expl["answer_model"]
    st.markdown(f"**Change what the answering model saw** and re-rank the answer (now {m['label']}, p={m['probability']:.2f}).")
    concepts = {c["concept"]: f"{c['text']} ({c['source']})" for c in m["concepts"]}
    windows = {i: f"{w['start_s']:.1f}-{w['end_s']:.1f} s" for i, w in enumerate(m["windows"])}
    c1, c2, c3 = st.columns(3)
    removed = c1.multiselect("Remove concepts", list(concepts), format_func=lambda i: concepts[i], key="answer_remove")
    boosted = c1.multiselect("Double concepts", list(concepts), format_func=lambda i: concepts[i], key="answer_boost")
    dropped_w = c2.multiselect("Empty windows", list(windows), format_func=lambda i: windows[i], key="answer_windows")
    dropped_s = c3.multiselect("Drop sources", m["sources"], key="answer_sources")
    specs = tuple([("remove_concept", c) for c in removed] + [("boost_concept", c) for c in boosted] + [("drop_window", w) for w in dropped_w] + [("drop_source", s) for s in dropped_s])
    if st.button("Re-rank the answer", key="answer_intervene", type="primary") and specs:
        try:
            with st.spinner("Re-ranking..."), _on_disk(req):
                st.session_state["answer_intervention"] = intervene_answer(req["video"], req["stamp"], req["labels"], req["reasoner"], req["occlusion"], specs)
        except vidsense.VidsenseError as exc:
            st.error(str(exc))
    for r in st.session_state.get("answer_intervention") or []:
        verdict = f"the answer changes to **{r['label_after']}**" if r["changed"] else "same answer"
        st.markdown(f"{r['action']} {r['target']}: p({m['label']}) {r['probability_before']:.2f} → {r['probability_after']:.2f}, {verdict}.")
        st.plotly_chart(views.compare_figure(m["top_k"], r["top_k_after"]), key=f"chart_answer_{r['action']}_{r['target']}")
    with st.expander("Standard interventions on the answering model"):
        st.dataframe([{k: v for k, v in r.items() if k != "top_k_after"} for r in m["interventions"]], key="table_answer_interventions")


def main() -> None:
    st.set_page_config(page_title="vidsense", layout="wide")
    st.title("vidsense: why this label?")
    query = dict(st.query_params)
    try:
        settings = pipeline().settings
    except vidsense.VidsenseError as exc:
        st.error(f"Cannot start: {exc}")
        st.stop()
    picked = pick_video(settings, query, _root())
    labels = pick_labels(query)
    # The CLI's defaults: the configured route, and no LLM occlusion (minutes on a CPU) unless asked for.
    names = list(REASONERS)
    default = query.get("reasoner") if query.get("reasoner") in REASONERS else settings.reasoner
    reasoner = st.sidebar.radio("Reasoner", names, index=names.index(default) if default in names else 0, captions=list(REASONERS.values()), key="reasoner")
    occlusion = st.sidebar.checkbox(
        "LLM occlusion: re-score the LLM without each window and modality (one LLM call each: minutes on a CPU)",
        value=query.get("occlusion", "0") == "1", key="occlusion",
    )
    if st.sidebar.button("Explain", type="primary", key="run"):
        st.session_state.pop("request", None)
        for key in ("llm_intervention", "concept_intervention", "answer_intervention"):
            st.session_state.pop(key, None)
        try:
            vidsense.load_labels(_labels(labels))
            if picked is None:
                raise vidsense.InputError("pick a video first (from a folder or an upload)")
            video, upload = picked
            stamp = _stamp(video) if upload is None else (len(upload), 0)  # an upload's name is its content hash
            st.session_state["request"] = {"video": str(video), "upload": upload, "stamp": stamp, "labels": labels, "reasoner": reasoner, "occlusion": occlusion}
        except vidsense.VidsenseError as exc:
            st.error(str(exc))
    req = st.session_state.get("request")
    if req is None:
        st.info("Pick a video and a label set in the sidebar, then press Explain.")
        return
    try:
        name = Path(req["video"]).name
        with st.status(f"Perceiving, classifying and explaining {name}...") as status, _on_disk(req):
            data = explain(req["video"], req["stamp"], req["labels"], req["reasoner"], req["occlusion"], _progress=show_stages(status))
            status.update(label=f"{name}: explained", state="complete", expanded=False)
    except vidsense.VidsenseError as exc:
        st.error(str(exc))
        st.session_state.pop("request", None)
        return
    except Exception as exc:  # noqa: BLE001 - a video failing mid-run must leave the app usable
        st.error(f"{Path(req['video']).name}: failed ({type(exc).__name__}: {' '.join(str(exc).split())})")
        st.session_state.pop("request", None)
        return
    cls, expl, timeline = data["result"]["classification"], data["result"]["explanation"], data["timeline"]
    show_header(cls, expl)
    cursor = show_video_and_prediction(req["upload"] if req["upload"] is not None else req["video"], cls, timeline)
    st.plotly_chart(views.timeline_figure(timeline, cursor), key="chart_timeline")
    names = (["Answer model"] if expl.get("answer_model") else []) + (["Concept model", "Attention"] if expl.get("global") else []) + ["Occlusion", "Interventions"]
    tabs = dict(zip(names, st.tabs(names)))
    if "Answer model" in tabs:
        with tabs["Answer model"]:
            c1, c2 = st.columns(2)
            c1.plotly_chart(views.answer_concepts_figure(expl), key="chart_answer_concepts")
            c2.plotly_chart(views.answer_windows_figure(expl, cursor), key="chart_answer_windows")
    if "Concept model" in tabs:
        with tabs["Concept model"]:
            if expl.get("answer_model"):
                st.caption("A second model, the concept bank's: it did not give the answer.")
            c1, c2 = st.columns(2)
            c1.plotly_chart(views.global_figure(expl), key="chart_global")
            c2.plotly_chart(views.local_heatmap(expl, cursor), key="chart_local")
        with tabs["Attention"]:
            maps = expl["temporal"]["concepts"]
            if maps:
                texts = {c["concept"]: c["text"] for c in maps}
                chosen = st.selectbox("Concept", list(texts), format_func=lambda i: texts[i], key="attention_concept")
                st.plotly_chart(views.attention_figure(expl, chosen), key="chart_attention")
            else:
                st.info("No attention maps in this explanation.")
    occl, interv = tabs["Occlusion"], tabs["Interventions"]
    with occl:
        rows = views.occlusion_frames(expl)
        c1, c2 = st.columns(2)
        c1.plotly_chart(views.occlusion_figure(rows["modalities"], "Without each modality"), key="chart_occlusion_modalities")
        c2.plotly_chart(views.occlusion_figure(rows["windows"], "Without each window"), key="chart_occlusion_windows")
        if expl.get("occlusion") is None:
            st.caption("Occlusion was off" + (": bars show the concept model only." if expl.get("global") else "."))
    with interv:
        show_interventions(req, data)


main()
