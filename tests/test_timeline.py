import pytest

from vidsense.services.timeline import Observation, Timeline, VideoInfo, Window, make_windows, render_window, window_of


def _tl():
    info = VideoInfo("clip.mp4", "ab" * 32, 6.0, 25.0, 320, 240, True, True, 150, "h264")
    wins = make_windows(6.0, 2.0)
    obs = (
        Observation(0, 0.0, 2.0, "sight", "visual-tags", "person", 0.9, "objects"),
        Observation(0, 0.0, 2.0, "sight", "visual-tags", "sports ball", 0.7, "objects"),
        Observation(0, 0.0, 2.0, "sound", "audio-tags", "speech", 0.9, "tags"),
        Observation(0, 0.5, 1.5, "speech", "speech", "okay one more time", 0.8, "speech"),
        Observation(2, 4.0, 6.0, "text", "ocr", "GOAL", 0.95, "ocr"),
    )
    return Timeline(info, wins, obs, ("visual-tags", "audio-tags", "speech", "ocr"), ("no notes",))


def test_make_windows_by_length_and_count():
    w = make_windows(10.0, 2.0)
    assert [(x.start_s, x.end_s) for x in w] == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    # A sliver under a quarter window is folded into the last window.
    assert make_windows(4.3, 2.0)[-1].end_s == 4.3 and len(make_windows(4.3, 2.0)) == 2
    assert len(make_windows(4.9, 2.0)) == 3
    assert [x.end_s for x in make_windows(9.0, count=3)] == [3.0, 6.0, 9.0]
    assert len(make_windows(0.5, 2.0)) == 1
    with pytest.raises(ValueError):
        make_windows(5.0, count=0)


def test_window_of():
    w = make_windows(6.0, 2.0)
    assert [window_of(t, w) for t in (0.0, 1.99, 2.0, 5.9, 99.0)] == [0, 0, 1, 2, 2]


def test_render_is_compact_and_ordered():
    text = _tl().render(summary=False)
    lines = text.splitlines()
    assert lines[0] == "[0-2 s] objects: person 0.90, sports ball 0.70; speech: 'okay one more time'; sounds: speech 0.90"
    assert lines[1] == "[4-6 s] on-screen text: 'GOAL'"
    assert _tl().render(["speech"], summary=False) == "[0-2 s] speech: 'okay one more time'"
    assert _tl().render(["speech"]).splitlines() == ["[whole video] speech: 'okay one more time'", "[0-2 s] speech: 'okay one more time'"]
    assert _tl().render(max_chars=30) == ""


def test_json_round_trip():
    tl = _tl()
    again = Timeline.from_json(tl.to_json())
    assert again == tl
    assert again.render() == tl.render()


def test_timings_describe_the_run_not_the_video():
    tl = _tl()
    assert tl.timings == {}
    timed = Timeline(tl.video, tl.windows, tl.observations, tl.models, tl.notes, timings={"ocr": 0.4})
    assert timed.timings == {"ocr": 0.4}
    assert timed == tl and hash(timed) == hash(tl)  # not part of equality
    assert "timings" not in timed.to_dict() and Timeline.from_json(timed.to_json()).timings == {}
    assert timed.only(["text"]).timings == {"ocr": 0.4}


def test_restrictions():
    tl = _tl()
    assert {o.modality for o in tl.only(["sight"]).observations} == {"sight"}
    assert all(o.window != 0 for o in tl.without_windows([0]).observations)
    assert tl.only([]).is_empty
    with pytest.raises(ValueError, match="smell"):
        tl.only(["smell"])


def test_caption_sentence_renders_as_is():
    o = Observation(0, 0, 2, "sight", "blip2", "a man juggling a ball on grass", 1.0, "caption")
    assert render_window(Window(0, 0, 2), [o]) == "[0-2 s] caption: a man juggling a ball on grass"


def test_bad_modality_rejected():
    with pytest.raises(ValueError):
        Observation(0, 0, 1, "smell", "x", "y")


def test_summary_ranks_recurring_evidence():
    info = VideoInfo("clip.mp4", "ab" * 32, 6.0, 25.0, 320, 240, True, True)
    obs = (
        Observation(0, 0, 2, "sight", "visual-tags", "car x3", 0.6, "objects"),
        Observation(0, 0, 2, "sight", "action", "pumping gas", 0.7, "action"),
        Observation(1, 2, 4, "sight", "visual-tags", "bicycle", 0.8, "objects"),
        Observation(1, 2, 4, "sight", "visual-tags", "car", 0.5, "objects"),
        Observation(2, 4, 6, "sight", "visual-tags", "bicycle", 0.7, "objects"),
        Observation(2, 4, 6, "sight", "visual-tags", "car", 0.4, "objects"),
        Observation(1, 2, 4, "speech", "speech", "hello", 0.9, "speech"),
        Observation(2, 4, 6, "speech", "speech", "there", 0.9, "speech"),
        Observation(2, 4, 6, "text", "ocr", "TAXI", 0.9, "ocr"),
    )
    tl = Timeline(info, make_windows(6.0, 2.0), obs)
    assert tl.summary() == (
        "movement looks like: pumping gas (1 of 3 windows); objects: car (3 of 3 windows), bicycle (2 of 3 windows); "
        "on-screen text: 'TAXI'; speech: 'hello there'"
    )
    assert tl.summary(["speech"]) == "speech: 'hello there'"
    assert tl.render().splitlines()[0].startswith("[whole video] movement looks like: pumping gas")
    assert tl.render().splitlines()[1] == "[0-2 s] movement looks like: pumping gas 0.70; objects: car x3 0.60"


def test_digest_counts_motion_and_pose_phrases_without_their_measurements():
    obs = (
        Observation(0, 0.0, 2.0, "sight", "flow", "camera static; moving part in the centre (24% of the frame) moving down", 1.0, "motion"),
        Observation(1, 2.0, 4.0, "sight", "flow", "camera static; moving part in the centre (5% of the frame) moving down", 1.0, "motion"),
        Observation(2, 4.0, 6.0, "sight", "flow", "camera panning left", 1.0, "motion"),
        Observation(0, 0.0, 2.0, "sight", "pose", "person: upright, walking left (0.7 body heights/s); person: upright", 1.0, "pose"),
        Observation(1, 2.0, 4.0, "sight", "pose", "person: upright, walking left (0.4 body heights/s)", 1.0, "pose"),
    )
    digest = Timeline(_tl().video, make_windows(6.0, 2.0), obs, ("flow", "pose")).summary()
    assert "camera static (2 of 3 windows)" in digest
    assert "moving part in the centre moving down (2 of 3 windows)" in digest
    assert "person: upright, walking left (2 of 3 windows)" in digest and "body heights" not in digest


def test_gestures_render_as_one_clause_without_their_strengths():
    w = Window(0, 0.0, 2.0)
    obs = [
        Observation(0, 0.0, 2.0, "sight", "pose", "person 1 waving (right hand, 2 cycles)", 0.67, "gesture"),
        Observation(0, 0.0, 2.0, "sight", "pose", "people 1 and 2 shaking hands", 1.0, "gesture"),
        Observation(0, 0.0, 2.0, "sight", "pose", "person 1: upright", 1.0, "pose"),
    ]
    assert render_window(w, obs) == "[0-2 s] gestures: person 1 waving (right hand, 2 cycles), people 1 and 2 shaking hands; pose: person 1: upright"
