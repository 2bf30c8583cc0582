"""The evaluation harness over a manifest, with the real embedding reasoner on fixture timelines."""

import json

import pytest
from agents_fixtures import CYCLING, embedding_reasoner, reasoning_room, timeline

from vidsense.agents.evaluate import ablation_sets, evaluate, format_report
from vidsense.services.errors import InputError
from vidsense.services.schema import read_manifest

TIMELINES = {
    "bike.mp4": CYCLING,
    "swim.mp4": [(0, "sight", "objects", "swimming pool, water", 0.9), (1, "sound", "tags", "splash, water", 0.8), (1, "speech", "", "keep kicking your legs", 1.0)],
}


def _describe_calls():
    calls = []

    def describe(video, mods):
        calls.append(video)
        name = video.rsplit("/", 1)[-1]
        if name not in TIMELINES:
            raise FileNotFoundError(f"{video}: no such video")
        return timeline(TIMELINES[name])

    return describe, calls


def _manifest(tmp_path):
    (tmp_path / "mine.txt").write_text("riding a bike\nswimming\nplaying guitar\n")
    m = tmp_path / "manifest.csv"
    m.write_text(
        "path,label,labelset\n"
        "bike.mp4,riding a bike,mine.txt\n"
        "swim.mp4,swimming,mine.txt\n"
        "missing.mp4,swimming,mine.txt\n"
        "bike.mp4,Biking,ucf101\n"
        "bike.mp4,not a label,mine.txt\n"
    )
    return m


def test_manifest_paths_are_relative_to_the_manifest(tmp_path):
    rows = read_manifest(_manifest(tmp_path))
    assert rows[0].path == tmp_path / "bike.mp4" and rows[0].labelset == str(tmp_path / "mine.txt")
    assert rows[3].labelset == "ucf101"
    bad = tmp_path / "bad.csv"
    bad.write_text("video,class\na.mp4,x\n")
    with pytest.raises(InputError, match="path,label"):
        read_manifest(bad)


def test_manifest_saved_by_excel_with_a_byte_order_mark_reads_the_same(tmp_path):
    plain = _manifest(tmp_path)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert read_manifest(bom) == read_manifest(plain)
    assert read_manifest(bom, labels="hmdb51")[3].labelset == "ucf101"  # the column wins over the default


@pytest.mark.slow
def test_report_counts_errors_and_scores_each_label_set(tmp_path):
    describe, calls = _describe_calls()
    report = evaluate(_manifest(tmp_path), describe, embedding_reasoner().classify, ablate=True)
    assert report.overall.n == 5 and report.overall.errors == 2
    assert len(calls) == 3  # each video described once, reused by every row and ablation
    errors = {r.error.split(":")[0] for r in report.rows if r.error and r.modalities == "all"}
    assert errors == {"FileNotFoundError", "label 'not a label' is not in label set mine"}
    sets = {p.labelset.rsplit("/", 1)[-1]: p for p in report.per_labelset}
    assert sets["mine.txt"].score.top1 == pytest.approx(0.5)  # 2 right of 4 rows (2 errors)
    assert sets["ucf101"].zero_shot
    assert set(report.ablations) == set(ablation_sets()) - {"all"}
    assert report.ablations["speech"].n == 5
    d = report.to_dict()
    assert (d["top1"], d["top5"]) == (report.overall.top1, report.overall.top5) and json.dumps(d)
    text = format_report(report)
    assert "overall" in text and "no-speech" in text and "FileNotFoundError" in text


@pytest.mark.slow
def test_shortlist_recall_uses_the_given_shortlist_size(tmp_path):
    describe, calls = _describe_calls()
    report = evaluate(_manifest(tmp_path), describe, embedding_reasoner().classify, name="embedding", shortlist_size=2)
    assert report.reasoner == "embedding" and report.overall.n == 5
    assert all(r.in_shortlist == (r.rank <= 2) for r in report.rows if not r.error)


@pytest.mark.slow
def test_compare_variants_scores_each_row_once_per_hint_setting_and_adds_grammar(tmp_path):
    from agents_fixtures import smollm

    from vidsense.agents.evaluate import compare_variants

    describe, calls = _describe_calls()
    llm = smollm()
    passes = []
    real_score = llm.score

    def counting_score(prompt, candidates, *a, **kw):
        passes.append(prompt)
        return real_score(prompt, candidates, *a, **kw)

    llm.score = counting_score

    room = reasoning_room(llm, shortlist=3)
    variants = {"raw": (True, 0.0, 0.0), "calibrated+embedding": (True, 1.0, 1.0), "no-hints-raw": (False, 0.0, 0.0)}
    reports = compare_variants(_manifest(tmp_path), describe, room, variants=variants)
    assert set(reports) == {"embedding", "raw", "calibrated+embedding", "no-hints-raw", "grammar"}
    for name, rep in reports.items():
        assert rep.overall.n == 5 and rep.overall.errors == 2, name  # missing video, unknown label
        assert all(r.predicted for r in rep.rows if not r.error), name
    # 3 scorable rows x 2 hint settings, the swimming row once more without its quoted speech
    # (the words' say is bounded against it), plus content-free priors (cached per candidate list).
    from vidsense.agents.prompts import NOTHING

    priors = [p for p in passes if NOTHING in p]
    assert len(passes) - len(priors) == (3 + 1) * 2 and 1 <= len(priors) <= 2 * 2


@pytest.mark.slow
def test_report_counts_the_routes_that_answered(tmp_path):
    from agents_fixtures import label_index

    from vidsense.agents.evidence import default_scorers
    from vidsense.agents.fusion import FusedReasoner

    describe, _ = _describe_calls()
    fused = FusedReasoner(default_scorers(label_index(), lambda ls: {}))
    report = evaluate(_manifest(tmp_path), describe, fused.classify, name="fused")
    assert report.routes == {"fused": 3}  # 5 rows, 2 errors
    assert all(r.route == "fused" for r in report.rows if not r.error)
    assert "routes: fused 3 (100%)" in format_report(report)


def test_a_row_with_an_extra_value_is_an_error_naming_its_line(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("path,label\na.mp4,Biking\nmy,video.mp4,Biking\n")
    with pytest.raises(InputError, match=r"line 3 has more values than the header's 2 columns \(extra: 'Biking'\)"):
        read_manifest(m)
    m.write_text('path,label\na.mp4,Biking\n"my,video.mp4",Biking\n')  # quoted, the comma is part of the path
    assert read_manifest(m)[1].path == tmp_path / "my,video.mp4"
