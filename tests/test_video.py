import numpy as np
import pytest
from media_fixtures import sine, write_audio_only, write_video

from vidsense.services.errors import InputError, ProcessingError
from vidsense.services.media.video import Media, sample_times


def test_probe_and_seek_sampling(tmp_path):
    p = write_video(tmp_path / "a.mp4", seconds=4.0, fps=10, audio_hz=440)
    m = Media.open(p)
    assert m.info.has_video and m.info.has_audio
    assert abs(m.info.duration_s - 4.0) < 0.3
    assert (m.info.width, m.info.height) == (160, 120)
    assert abs(m.info.fps - 10) < 0.01
    frames = m.frames_at([0.05, 2.05, 3.95, 1.05])
    assert frames.shape == (4, 120, 160, 3)
    # The top-left block encodes the frame index: times map to frames 0, 20, 39 and 10.
    idx = np.round(frames[:, 8, 8, 0].astype(float) / 6)
    assert np.abs(idx - np.array([0, 20, 39, 10])).max() <= 1
    small = m.sample(0, 4, 3, max_side=80)
    assert small.shape == (3, 60, 80, 3)


def test_audio_is_16k_mono(tmp_path):
    p = write_video(tmp_path / "a.mp4", seconds=2.0, audio_hz=440)
    a = Media.open(p).audio()
    assert a.dtype == np.float32 and abs(len(a) - 32000) < 3000
    spectrum = np.abs(np.fft.rfft(a[4000:20000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) < 5


def test_video_without_audio(tmp_path):
    m = Media.open(write_video(tmp_path / "silent.mp4", seconds=1.0))
    assert m.info.has_video and not m.info.has_audio
    assert m.audio().size == 0


def test_audio_only_file(tmp_path):
    m = Media.open(write_audio_only(tmp_path / "a.m4a", sine(300, 2.0)))
    assert not m.info.has_video and m.info.has_audio
    assert abs(m.info.duration_s - 2.0) < 0.2
    with pytest.raises(ProcessingError, match="no video stream"):
        m.frames_at([0.0])


def test_one_frame_video(tmp_path):
    m = Media.open(write_video(tmp_path / "one.mp4", seconds=0.1, fps=10))
    assert m.info.has_video
    assert m.frames_at([0.0, 5.0]).shape[0] == 2


def test_animated_gif_is_a_video(tmp_path):
    # UCF-101 and HMDB demo clips often ship as animated GIFs.
    m = Media.open(write_video(tmp_path / "a.gif", seconds=2.0, fps=10, codec="gif", pix_fmt="rgb8"))
    assert m.info.has_video and not m.info.has_audio and m.info.codec == "gif"
    assert abs(m.info.duration_s - 2.0) < 0.2 and m.info.n_frames == 20
    frames = m.frames_at([0.05, 1.05])
    assert frames.shape == (2, 120, 160, 3)
    assert not np.array_equal(frames[0], frames[1])  # the square moved: both frames are decoded, not the first twice


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, exc, message",
    [
        (lambda d: d / "nope.mp4", InputError, "no such file"),
        (lambda d: d, InputError, "is a directory"),
        (lambda d: _write(d / "zero.mp4", b""), InputError, "empty"),
        (lambda d: _write(d / "notes.mp4", b"this is not a video\n" * 50), ProcessingError, "not a readable video"),
    ],
)
def test_bad_inputs(tmp_path, make, exc, message):
    with pytest.raises(exc, match=message) as e:
        Media.open(make(tmp_path))
    assert "\n" not in str(e.value)


def test_truncated_file(tmp_path):
    p = write_video(tmp_path / "full.mp4", seconds=3.0)
    data = p.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    # Either a clear error or a usable partial video, never an unhandled exception.
    try:
        m = Media.open(cut)
    except ProcessingError as e:
        assert "cut.mp4" in str(e)
    else:
        assert m.frames_at([0.0]).shape[0] == 1


def test_file_cut_short_keeps_its_decodable_part(tmp_path):
    p = write_video(tmp_path / "full.mp4", seconds=6.0, fps=10, faststart=True)
    data = p.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.5)])
    m = Media.open(cut)
    assert m.info.truncated and 1.0 < m.info.duration_s < 5.0
    assert not Media.open(p).info.truncated
    assert m.frames_at([0.5]).shape[0] == 1


def test_real_example_clip(example_video):
    m = Media.open(example_video)
    assert m.info.has_video and m.info.duration_s > 5
    f = m.sample(0, m.info.duration_s, 4, max_side=320)
    assert f.shape[0] == 4 and max(f.shape[1:3]) == 320 and f.std() > 10


def test_sample_times():
    assert sample_times(0, 2, 2) == [0.5, 1.5]
    assert sample_times(0, 2, 0) == []


def test_clip_times_spread_over_the_group_or_run_at_a_rate_around_its_middle():
    from vidsense.services.media.motion_clip import clip_times

    assert clip_times(0, 10, 4) == sample_times(0, 10, 4)
    at_rate = np.array(clip_times(0, 10, 64, rate=25.0))
    # 64 frames at 25/s span 2.56 s, centred on the group's middle.
    assert np.allclose(np.diff(at_rate), 0.04) and np.isclose(at_rate.mean(), 5.0) and at_rate[0] > 3.7
    # A group shorter than the run is read whole, faster than the rate.
    assert clip_times(0, 2, 64, rate=25.0) == sample_times(0, 2, 64)


@pytest.fixture
def decoded(monkeypatch):
    """The times of every decode through ``Media.frames_at``, in order."""
    times: list[tuple[float, ...]] = []
    real = Media.frames_at
    monkeypatch.setattr(Media, "frames_at", lambda self, ts, max_side=None: times.append(tuple(ts)) or real(self, ts, max_side))
    return times


def test_shared_frames_are_decoded_once_per_media_and_bounded(tmp_path, decoded):
    from vidsense.services.media import video

    p = write_video(tmp_path / "a.mp4", seconds=4.0, fps=10)
    m = Media.open(p)
    first = m.shared_frames((0.05, 2.05), max_side=80)
    assert first.shape == (2, 60, 80, 3) and not first.flags.writeable
    assert m.shared_frames([0.05, 2.05], max_side=80) is first and len(decoded) == 1
    assert m.shared_frames((0.05, 2.05), max_side=None) is not first and len(decoded) == 2  # another size is another entry
    # The frames live with the Media: another Media of the same file decodes its own.
    other = Media.open(p)
    assert other.shared_frames((0.05, 2.05), max_side=80) is not first and len(decoded) == 3
    # Only the last few requests are kept.
    for i in range(video.SHARED_FRAMES):
        m.shared_frames((0.1 * i,), max_side=80)
    m.shared_frames((0.05, 2.05), max_side=80)
    assert decoded[-1] == (0.05, 2.05)


def test_a_window_frame_read_by_two_models_is_decoded_once(tmp_path, decoded):
    p = write_video(tmp_path / "a.mp4", seconds=4.0, fps=10)
    m = Media.open(p)
    tags = m.sample_shared(2.0, 4.0, 1, max_side=80)  # the frame taggers, one frame a window
    text = m.sample_shared(2.0, 4.0, 1, max_side=80)  # the text reader, the same frame
    assert text is tags and decoded == [(3.0,)] and not text.flags.writeable
    assert np.array_equal(tags, Media.open(p).sample(2.0, 4.0, 1, max_side=80))


def test_frames_two_threads_ask_for_at_once_are_decoded_once(tmp_path, monkeypatch):
    import threading
    import time

    p = write_video(tmp_path / "a.mp4", seconds=4.0, fps=10)
    m = Media.open(p)
    calls: list[tuple[float, ...]] = []
    real = Media.frames_at

    def slow(self, ts, max_side=None):
        calls.append(tuple(ts))
        time.sleep(0.2)  # long enough for the second thread to ask meanwhile
        return real(self, ts, max_side)

    monkeypatch.setattr(Media, "frames_at", slow)
    got: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: got.append(m.shared_frames((0.05, 2.05), max_side=80))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert calls == [(0.05, 2.05)] and len(got) == 2 and got[0] is got[1]


def test_a_failed_shared_decode_lets_the_next_caller_decode_again(tmp_path, monkeypatch):
    p = write_video(tmp_path / "a.mp4", seconds=4.0, fps=10)
    m = Media.open(p)
    real = Media.frames_at
    monkeypatch.setattr(Media, "frames_at", lambda self, ts, max_side=None: (_ for _ in ()).throw(ProcessingError("boom")))
    with pytest.raises(ProcessingError, match="boom"):
        m.shared_frames((0.05,), max_side=80)
    monkeypatch.setattr(Media, "frames_at", real)
    assert m.shared_frames((0.05,), max_side=80).shape == (1, 60, 80, 3)  # not stuck waiting on the failed one


class _MisstampedAvi:
    """A stand-in container whose frames come out in display order stamped 1, 4, 3, 5, 7, 6, ...
    (an AVI with packed B-frames, as HMDB-51's), a keyframe every 30 frames."""

    KEY = 30

    def __init__(self, n=60, fps=10.0):
        from types import SimpleNamespace

        stamps = [1]
        while len(stamps) < n:  # 1, 4, 3, 5, 7, 6, 8, 10, 9, ...
            k = stamps[-1]
            stamps += [k + 3, k + 2, k + 4] if len(stamps) % 3 == 1 else [k + 1]
        self.frames = [SimpleNamespace(time=t / fps, index=i, planes=[SimpleNamespace(buffer_size=1)]) for i, t in enumerate(stamps[:n])]
        self.fps = fps
        self.pos = 0
        self.streams = SimpleNamespace(video=[SimpleNamespace(time_base=1 / 1000, start_time=0, thread_type=None)])

    def seek(self, ts, stream=None, backward=True, any_frame=False):
        t = ts / 1000
        self.pos = max(i for i in range(0, len(self.frames), self.KEY) if i == 0 or self.frames[i].time <= t)

    def decode(self, stream):
        while self.pos < len(self.frames):
            self.pos += 1
            yield self.frames[self.pos - 1]

    def close(self):
        pass


def test_frames_picked_for_a_time_do_not_depend_on_what_the_reader_did_before(monkeypatch):
    from vidsense.services.media import video

    monkeypatch.setattr(video, "_open_av", lambda path: _MisstampedAvi())
    times = [0.12 + 0.09 * i for i in range(60) if 0.12 + 0.09 * i < 5.5]
    fresh = [video._PyAVReader("x").frame_at(t).index for t in times]
    one_pass = video._PyAVReader("x")
    assert [one_pass.frame_at(t).index for t in times] == fresh
    # After other requests (a frame tagger's, window by window), the same times give the same frames,
    # whether the reader decodes on, seeks back, or finds them among the frames it kept.
    for before in ([1.0], [1.0, 3.0, 5.0], [2.5], [0.3, 0.6]):
        r = video._PyAVReader("x")
        for t in before:
            r.frame_at(t)
        assert [r.frame_at(t).index for t in times] == fresh, before


def test_decoding_forward_across_a_window_gives_the_frames_a_seek_gives(tmp_path):
    from vidsense.services.media import video

    # Frames a window apart (2 s) are read by decoding on, not by seeking; the frames are the same.
    assert video.SEEK_GAP_S > 2.0
    p = write_video(tmp_path / "a.mp4", seconds=6.0, fps=10)
    times = [1.0, 3.0, 5.0]
    on = Media.open(p).frames_at(times, max_side=80)
    apart = np.stack([Media.open(p).frames_at([t], max_side=80)[0] for t in times])
    assert np.array_equal(on, apart)


def test_motion_models_share_one_decoded_clip(tmp_path, monkeypatch):
    from vidsense.services.media.motion_clip import motion_clips
    from vidsense.services.timeline import make_windows

    m = Media.open(write_video(tmp_path / "a.mp4", seconds=4.0, fps=10))
    windows = make_windows(m.info.duration_s)
    decoded = []
    real = Media.frames_at
    monkeypatch.setattr(Media, "frames_at", lambda self, times, max_side=None: decoded.append(len(times)) or real(self, times, max_side))
    first = motion_clips(m, windows, frames=16)
    second = motion_clips(m, windows, frames=16)
    assert decoded == [16]
    assert first[0].frames is second[0].frames and first[0].frames.shape[0] == 16


def test_later_passes_read_the_decoded_frames_and_match_a_fresh_seek(tmp_path, monkeypatch):
    """The models after the first read a short clip's frames from the reader's kept frames, without
    seeking and decoding again, and get exactly the frames a fresh decode picks; past the byte
    budget only the last frames are kept and earlier requests seek as before."""
    from vidsense.services.media import video

    p = write_video(tmp_path / "a.mp4", seconds=4.0, fps=10)
    m = Media.open(p)
    passes = [np.linspace(0.05, 3.95, 8), np.linspace(0.0, 3.9, 23), np.array([3.1, 0.47, 2.24, 0.0])]
    first = m.frames_at(list(passes[0]))
    decoder = m._reader.decoder  # a seek starts a new one
    later = [m.frames_at(list(ts)) for ts in passes[1:]]
    assert m._reader.decoder is decoder and len(m._reader.kept) >= 39  # every frame came from the first pass's decode
    for ts, got in zip(passes, [first, *later]):
        fresh = np.stack([Media.open(p).frames_at([float(t)])[0] for t in ts])
        assert np.array_equal(got, fresh)
    # A budget of about two frames: a pass going back seeks, and still gets the same frames.
    monkeypatch.setattr(video, "DECODED_BYTES", 2 * 160 * 120 * 3 // 2)
    m2 = Media.open(p)
    m2.frames_at(list(passes[0]))
    assert len(m2._reader.kept) <= 2
    assert np.array_equal(m2.frames_at(list(passes[1])), later[0])
