"""The public SDK: batch classification, input expansion, DataFrames, exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_fixtures import LABELS, batch_folder
from media_fixtures import write_video

import vidsense


def test_lazy_names_are_the_explanation_schema_and_unknown_names_fail():
    from vidsense.concepts import explanation as schema

    assert vidsense.Explanation is schema.Explanation and vidsense.InterventionSpec is schema.InterventionSpec
    spec = vidsense.InterventionSpec("boost_concept", concept=1, factor=3.0)
    assert (spec.action, spec.concept, spec.factor) == ("boost_concept", 1, 3.0)
    with pytest.raises(AttributeError, match="no attribute 'Explainer'"):
        vidsense.Explainer  # noqa: B018


def test_bundled_label_sets_load_with_their_published_sizes():
    sizes = {"ucf101": 101, "hmdb51": 51, "kinetics400": 400, "kinetics700": 700, "ssv2": 174}
    assert vidsense.bundled_names() == list(sizes)
    for name, n in sizes.items():
        assert len(vidsense.load_labels(name)) == n, name


def test_collect_videos_expands_folders_globs_and_manifests(tmp_path, example_video):
    files = batch_folder(tmp_path / "v", example_video)
    write_video(tmp_path / "v" / "sub" / "wave.GIF", seconds=1.0, codec="gif", pix_fmt="rgb8")
    found = vidsense.collect_videos([tmp_path / "v"])
    # Animated GIFs are videos too (any case of suffix); readme.txt is not.
    assert [p.name for p in found] == ["bikes.mp4", "corrupt.mp4", "notes.mp4", "square.mp4", "wave.GIF"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nv/bikes.mp4,biking\nv/missing.mp4,biking\n")
    # Duplicates (same file through a glob and the manifest) are dropped; a missing file is kept to be reported.
    got = vidsense.collect_videos([str(tmp_path / "v" / "b*.mp4"), manifest, files["square"]])
    assert [p.name for p in got] == ["bikes.mp4", "missing.mp4", "square.mp4"]
    with pytest.raises(vidsense.InputError, match="pattern matches no files"):
        vidsense.collect_videos([str(tmp_path / "*.webm")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(vidsense.InputError, match="directory has no video files"):
        vidsense.collect_videos([tmp_path / "empty"])


def test_to_dataframe_takes_results_errors_and_dicts():
    ok = {"video": "a.mp4", "label": "biking", "top_k": [{"label": "biking", "score": 0.7}, {"label": "cooking", "score": 0.3}],
          "labelset": "custom", "reasoner": "llm", "low_confidence": False, "timings": {"total": 2.0, "perception": 1.5, "reasoning": 0.5},
          "sha256": "ab"}
    bad = vidsense.BatchError("b.mp4", "b.mp4: not a readable video or audio file", "processing", "cd")
    expl = {"video": "c.mp4", "classification": {**ok, "video": "c.mp4"}, "explanation": {"prediction": {"label": "cooking"}, "agreement": {"agrees": False}}}
    df = vidsense.to_dataframe([ok, bad, expl])
    assert list(df["video"]) == ["a.mp4", "b.mp4", "c.mp4"]
    assert df.loc[0, "score"] == 0.7 and df.loc[0, "top_k"] == ["biking", "cooking"] and df.loc[0, "total_s"] == 2.0
    assert df.loc[1, "error"].startswith("b.mp4") and df["label"].isna()[1]
    assert df.loc[2, "concept_label"] == "cooking" and not df.loc[2, "agrees"]


@pytest.mark.slow
def test_classify_many_threads_share_models_and_report_errors(cheap, tmp_path, example_video):
    files = batch_folder(tmp_path / "v", example_video)
    pipe = vidsense.Pipeline()
    videos = [files["bikes"], files["text"], tmp_path / "missing.mp4", files["square"], files["corrupt"]]
    items = list(pipe.classify_many(videos, LABELS, workers=2, ordered=True, reasoner="embedding"))
    assert [i.video for i in items] == [str(v) for v in videos]
    ok, text, missing, square, corrupt = items
    assert isinstance(ok, vidsense.ClassificationResult) and ok.label in LABELS.split(",")
    assert isinstance(square, vidsense.ClassificationResult)
    assert isinstance(text, vidsense.BatchError) and text.kind == "processing" and len(text.sha256) == 64
    assert isinstance(missing, vidsense.BatchError) and missing.kind == "input" and missing.sha256 == ""
    assert isinstance(corrupt, vidsense.BatchError) and "\n" not in corrupt.error
    # One loaded instance per model, whatever the number of workers.
    loaded = pipe.perceiver.model("visual-tags")
    reasoner = pipe.reasoner.method("embedding")
    encoder = pipe.reasoner.encoder
    assert pipe.perceiver.model_names == ["visual-tags"]
    # A second batch on the same Pipeline reuses them (and completion order covers every video).
    again = list(pipe.classify_many(videos[:2], LABELS, workers=2, reasoner="embedding"))
    assert {i.video for i in again} == {str(v) for v in videos[:2]}
    assert pipe.perceiver.model("visual-tags") is loaded and pipe.reasoner.method("embedding") is reasoner
    assert pipe.reasoner.encoder is encoder
    df = vidsense.to_dataframe(items)
    assert df["error"].notna().sum() == 3 and df["label"].notna().sum() == 2


@pytest.mark.slow
def test_evaluate_delegates_to_the_harness(cheap, tmp_path, example_video):
    batch_folder(tmp_path / "v", example_video)
    labels = tmp_path / "labels.txt"
    labels.write_text("biking\ncooking\nswimming\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nv/bikes.mp4,biking\nv/notes.mp4,cooking\n")
    report = vidsense.Pipeline().evaluate(manifest, labels=str(labels), reasoner="embedding", ablate=True)
    assert report.ablations["sight"].n == 2
    # Nothing but sight to read: with speech alone every readable row is flagged as having seen nothing.
    speech_only = [r for r in report.rows if r.modalities == "speech" and not r.error]
    assert speech_only and all(r.low_confidence for r in speech_only)
    assert report.overall.n == 2 and report.overall.errors == 1
    good, bad = sorted((r for r in report.rows if r.modalities == "all"), key=lambda r: r.line)
    # The clip is a cyclist and the tagger sees a bicycle: the one readable row is right, the text file an error.
    assert good.predicted == "biking" and good.rank == 1
    assert bad.error and bad.rank is None
    assert report.top1 == 0.5 and report.top5 == 0.5  # errors count as misses


@pytest.mark.slow
def test_explain_works_on_a_clip_shorter_than_one_window(cheap, tmp_path):
    from media_fixtures import write_video

    clip = write_video(tmp_path / "short.mp4", seconds=1.2)
    pipe = vidsense.Pipeline()
    res = pipe.explain(clip, "ucf101", reasoner="fused", llm_occlusion=False)
    expl = res.explanation
    # A moving square shows nothing nameable: no concept fires, and still the explanation comes.
    assert len(expl.windows) == 1 and expl.prediction.label and len(expl.local.windows) == 1
    assert "drop_window" not in {r.action for r in expl.interventions} and any("single window" in n for n in expl.notes)
    assert "Note: single window" in res.to_text()


@pytest.mark.slow
def test_intervene_and_classify_timeline_reuse_the_explained_video(cheap, monkeypatch, example_video):
    pipe = vidsense.Pipeline()
    res = pipe.explain(example_video, "ucf101", reasoner="embedding", llm_occlusion=False)
    expl = res.explanation
    recorded = next(r for r in expl.interventions if r.action == "remove_concept")
    concept = next(c.index for c in expl.concepts if c.text == recorded.target)

    def no_second_pass(*a, **kw):
        raise AssertionError("an intervention must not perceive the video again")

    monkeypatch.setattr(pipe.perceiver, "describe", no_second_pass)
    (again,) = pipe.intervene(res, [vidsense.InterventionSpec("remove_concept", concept=concept)])
    assert again == recorded  # same model, same cached activations, same explained label
    boosted = pipe.intervene(
        res.classification.timeline, [vidsense.InterventionSpec("boost_concept", concept=concept, factor=3.0)], labels="ucf101", target=expl.agreement.explained_label, model="concepts"
    )
    assert boosted[0].probability_after >= boosted[0].probability_before
    # A bare timeline under the default (fused) route: the intervention is on the model that answers.
    dropped = pipe.intervene(res.classification.timeline, [vidsense.InterventionSpec("drop_source", source="objects")], labels="ucf101")
    assert dropped[0].action == "drop_source" and dropped[0].target == "objects"
    with pytest.raises(vidsense.InputError, match="neither 'answer' nor 'concepts'"):
        pipe.intervene(res.classification.timeline, [], labels="ucf101", model="motif")
    with pytest.raises(vidsense.InputError, match="no concept #"):
        pipe.intervene(res, [vidsense.InterventionSpec("remove_concept", concept=10_000)])
    with pytest.raises(vidsense.InputError, match="label set"):
        pipe.intervene(res.classification.timeline, [])

    pred = pipe.classify_timeline(res.classification.timeline, "ucf101", reasoner="embedding")
    assert pred.label == res.label and pred.top_k == res.classification.prediction.top_k
    without_sight = pipe.classify_timeline(res.classification.timeline, "ucf101", reasoner="embedding", modalities=["speech"])
    assert without_sight.low_confidence  # nothing left to read


def _labelled(tmp_path, set_name: str, manifest_name: str, rows: str):
    """A label file ``<set_name>.txt`` (biking, cooking, swimming) and a manifest with ``rows``."""
    labels = tmp_path / f"{set_name}.txt"
    labels.write_text("biking\ncooking\nswimming\n")
    manifest = tmp_path / manifest_name
    manifest.write_text(f"path,label\n{rows}\n")
    return labels, manifest


@pytest.mark.slow
def test_fit_fusion_stores_weights_that_the_fused_route_then_uses(cheap, tmp_path, example_video):
    labels, manifest = _labelled(tmp_path, "cycling", "m.csv", f"{example_video},biking\n{tmp_path / 'missing.mp4'},biking")
    pipe = vidsense.Pipeline()
    report = pipe.fit_fusion(manifest, str(labels))
    assert report["videos"] == 1 and [s["video"] for s in report["skipped"]] == [str(tmp_path / "missing.mp4")]
    assert report["saved"].startswith(str(pipe.settings.home)) and report["weights"]
    res = pipe.classify(example_video, str(labels), reasoner="fused")
    assert res.route == "fused" and res.evidence
    assert {v.source: v.weight for v in res.evidence} == {v.source: pytest.approx(report["weights"][v.source], abs=1e-4) for v in res.evidence}
    assert pipe.reasoner._llm is None  # the fast route never loads the LLM
    # The default route is the cascade; at its measured margin of 0 the fused route answers.
    default = pipe.classify(example_video, str(labels))
    assert (default.reasoner, default.route, default.label) == ("cascade", "fused", res.label)
    assert default.route_reason.startswith("fused margin") and pipe.reasoner._llm is None
    # A budget picks the route from the cost table and says why.
    fast = pipe.classify(example_video, str(labels), budget="fast")
    assert fast.reasoner == "fused" and fast.route == "fused" and fast.route_reason.startswith("budget fast")
    assert fast.to_dict()["route_reason"] == fast.route_reason and fast.to_dict()["evidence"][0]["top"]
    # The text view names each voting source with its own top label and its push.
    votes = fast.votes_text().splitlines()
    assert votes[0].startswith("Which evidence voted for what (route fused: budget fast")
    assert len(votes) == 1 + min(6, len(fast.evidence)) and all(" (weight " in line and " -> " in line for line in votes[1:])
    manifest.write_text(f"path,label\n{example_video},cycling\n")
    with pytest.raises(vidsense.InputError, match="m.csv:2: label 'cycling' is not in label set"):
        pipe.fit_fusion(manifest, str(labels))


@pytest.mark.slow
def test_fit_concepts_trains_the_model_that_explains_the_label_set(cheap, tmp_path, example_video):
    labels, manifest = _labelled(tmp_path, "wheels", "train.csv", f"{example_video},biking\n{tmp_path / 'gone.mp4'},cooking")
    pipe = vidsense.Pipeline()
    assert not pipe.concept_model(str(labels)).card.trained  # zero-shot until fitted
    report = pipe.fit_concepts(manifest, str(labels), epochs=5)
    assert report["saved"].endswith("concepts/models/wheels") and [s["video"] for s in report["skipped"]] == [str(tmp_path / "gone.mp4")]
    model = pipe.concept_model(str(labels))
    assert model.card.trained and model.card.metrics["manifest"] == str(manifest)
    manifest.write_text(f"path,label\n{example_video},cycling\n")
    with pytest.raises(vidsense.InputError, match="train.csv:2: label 'cycling' is not in label set 'wheels'"):
        pipe.fit_concepts(manifest, str(labels))


@pytest.mark.slow
def test_the_concept_route_answers_with_the_model_explain_shows(cheap, example_video):
    pipe = vidsense.Pipeline()
    res = pipe.explain(example_video, "ucf101", reasoner="concepts", llm_occlusion=False)
    pred, expl = res.classification.prediction, res.explanation
    assert pred.route == "concepts" and pred.reasoner == "concepts"
    # The explanation is of the model that answered: same label, same probabilities.
    assert expl.agreement.agrees and expl.prediction.label == pred.label
    assert [(s.label, round(s.score, 4)) for s in expl.prediction.top_k[:3]] == [(s.label, round(s.score, 4)) for s in pred.top_k[:3]]
    assert sum(s.score for s in pred.candidates) == pytest.approx(1.0, abs=1e-3) and len(pred.candidates) == 101
    with pytest.raises(vidsense.InputError, match="known: .*concepts"):
        pipe.classify_timeline(res.classification.timeline, "ucf101", reasoner="nonsense")


@pytest.mark.slow
def test_a_pipeline_in_a_with_block_closes_its_models(tmp_path, cheap):
    from media_fixtures import write_video

    import vidsense

    video = write_video(tmp_path / "square.mp4", seconds=2.0)
    with vidsense.Pipeline(cache=False) as pipe:
        pipe.describe(video)
        assert set(pipe.perceiver._models) == {"visual-tags"}
    assert pipe.perceiver._models == {} and pipe._concepts is None
    # Closed is not broken: the next call loads again.
    assert pipe.describe(video).models == ("visual-tags",)


@pytest.mark.slow
def test_the_module_verbs_share_a_pipeline_that_close_frees(tmp_path, cheap):
    from media_fixtures import write_video

    import vidsense

    video = write_video(tmp_path / "square.mp4", seconds=2.0)
    vidsense.describe(video)
    first = vidsense.default_pipeline()
    assert vidsense.default_pipeline() is first and set(first.perceiver._models) == {"visual-tags"}
    vidsense.close()
    assert first.perceiver._models == {} and vidsense.default_pipeline() is not first
    vidsense.close()


def test_each_verb_is_a_pipeline_method_a_command_and_a_route_with_one_summary():
    from typer.testing import CliRunner

    import vidsense
    from vidsense.app import cli
    from vidsense.app.server import RUNS, create_app
    from vidsense.verbs import VERBS

    assert set(RUNS) == set(VERBS)
    api = create_app(lambda: None, [Path(__file__).parent], None)
    routes = {r.path: r for r in api.routes}
    for verb in VERBS.values():
        assert callable(getattr(vidsense.Pipeline, verb.name))
        help_text = CliRunner().invoke(cli.app, [verb.name, "--help"], terminal_width=200).output
        assert verb.summary.split(":")[0] in " ".join(help_text.split())
        assert routes[f"/v1/{verb.name}"].description.startswith(verb.summary)
