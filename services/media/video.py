"""Video decoding: probe, seek-based frame sampling and 16 kHz mono audio.

PyAV is the primary decoder (``metadata_errors="ignore"`` because some HMDB
AVIs carry broken metadata); OpenCV is the fallback when PyAV cannot open or
decode the video stream. Frames are decoded only at the requested times and
resized on the way in, and audio is decoded in blocks of
:data:`AUDIO_BLOCK_S` around the spans asked for, so memory does not grow
with the video's length.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vidsense.services.errors import InputError, ProcessingError
from vidsense.services.files import sha256_of
from vidsense.services.timeline import VideoInfo

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# When the next requested frame is this close, decoding forward is cheaper than a seek. Above a
# window (2 s), so one frame a window is read in one pass, not by a seek (which decodes again from
# the last keyframe) per window.
SEEK_GAP_S = 2.5
# Which frames a request returns; part of every cached observation's key. 2: a frame's time only
# moves forward (out-of-order stamps no longer make the picked frame depend on earlier requests).
FRAME_PICKING = 2
# Frame stacks a Media keeps for models that read the same frames (the motion
# models' clips): at most this many, and no more bytes than SHARED_BYTES (two 16:9
# motion clips; the perceiver hands each clip to every motion model itself, so a
# kept stack serves only models run on their own).
SHARED_FRAMES = 8
SHARED_BYTES = 48 << 20
# Decoded frames (as the decoder gives them, before any colour conversion) a reader keeps from
# its current pass, so the models after the first read a short clip without decoding it again:
# a 10 s 640x272 clip is 65 MB of YUV; a larger or longer video keeps its last frames only.
# On the bundled clip this saved three of four decoding passes (0.45 s of 4.2 s perception).
# Frames span at most DECODED_SPAN_S (the models read a video one 10 s group at a time): a
# frame costs the decoder more than its planes (h264 pads every plane), so a count of small
# frames under the byte cap alone grew a two-hour video's peak by 640 MB.
DECODED_BYTES = 96 << 20
DECODED_SPAN_S = 12.0
# Audio is decoded in blocks of this length, the last AUDIO_BLOCKS kept (2 x 19 MB at
# 16 kHz). A track no longer than one block is decoded from its start in one go, exactly
# as a whole-track decode would; later blocks start with a seek.
AUDIO_BLOCK_S = 300.0
AUDIO_BLOCKS = 2
# Decoding starts this long before a block after a seek: the first AAC frames after a
# seek lack their predecessor's overlap, and the resampler needs a few samples of history.
AUDIO_PREROLL_S = 0.5


def check_video_path(path: str | os.PathLike[str]) -> Path:
    """Validate that ``path`` names a readable, non-empty file (raises :class:`InputError`)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a video file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty (0 bytes)")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: file is not readable")
    return p


@lru_cache(maxsize=256)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_of(Path(path))


def content_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, memoised on (path, size, mtime) within the process."""
    st = os.stat(path)
    return _cached_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def _resize(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    if not max_side:
        return rgb
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb
    import cv2

    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


@dataclass
class Media:
    """A video opened for perception: metadata plus lazy frame and audio access.

    Perception models pull what they need (a few frames per window, a stack of
    64 for the action recogniser, the audio of a span) through this object
    instead of receiving a fully decoded video. Frames several models read
    alike are decoded once through :meth:`shared_frames` and the last few are
    kept here, as are the last audio blocks, so what a Media holds is bounded
    whatever the video's length.
    """

    path: Path
    info: VideoInfo
    _reader: "_PyAVReader | None" = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # (times, max_side) -> read-only frames, most recent last; guarded by _lock.
    _shared: "OrderedDict[tuple[tuple[float, ...], int | None], np.ndarray]" = field(
        default_factory=OrderedDict, repr=False, compare=False
    )
    # Keys of _shared being decoded now, each with the event its decoder sets when done; guarded by _lock.
    _decoding: "dict[tuple[tuple[float, ...], int | None], threading.Event]" = field(default_factory=dict, repr=False, compare=False)
    # Block number -> its samples, most recent last; guarded by _audio_lock (audio
    # decodes do not wait for frame decodes).
    _audio_blocks: "OrderedDict[int, np.ndarray]" = field(default_factory=OrderedDict, repr=False, compare=False)
    _audio_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def close(self) -> None:
        """Release the open decoder (reopened on the next request)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __del__(self) -> None:
        self.close()

    @classmethod
    def open(cls, path: str | os.PathLike[str], cache: Any = None) -> "Media":
        """Probe ``path`` and return a :class:`Media` (raises on unusable input).

        Args:
            cache: a :class:`~vidsense.services.perception.cache.PerceptionCache`; the probe
                of a file with the same bytes is taken from it (and stored there).
        """
        p = check_video_path(path)
        if cache is None:
            return cls(path=p, info=probe(p))
        sha = content_hash(p)
        stored = cache.get_info(sha)
        if stored is not None:
            try:
                return cls(path=p, info=VideoInfo(**{**stored, "path": str(p)}))
            except TypeError:
                log.debug("%s: stored probe does not fit VideoInfo; probing again", p)
        info = probe(p)
        cache.put_info(sha, asdict(info))
        return cls(path=p, info=info)

    def frames_at(self, times: Sequence[float], max_side: int | None = None) -> np.ndarray:
        """RGB uint8 frames nearest to each time, shape ``[len(times), H, W, 3]``.

        Raises:
            ProcessingError: when the video stream cannot be decoded at all.
        """
        if not self.info.has_video:
            raise ProcessingError(f"{self.path}: has no video stream")
        if len(times) == 0:
            return np.zeros((0, 1, 1, 3), np.uint8)
        try:
            with self._lock:
                if self._reader is None:
                    self._reader = _PyAVReader(self.path)
                frames = _frames_pyav(self.path, times, max_side, self._reader)
        except Exception as exc:  # noqa: BLE001 - any PyAV failure falls back to OpenCV
            self.close()
            log.debug("PyAV failed on %s (%s); trying OpenCV", self.path, exc)
            frames = _frames_opencv(self.path, times, max_side)
        if frames is None or len(frames) == 0:
            raise ProcessingError(f"{self.path}: no decodable video frames")
        return frames

    def shared_frames(self, times: Sequence[float], max_side: int | None = None) -> np.ndarray:
        """:meth:`frames_at`, decoded once per Media for every model that asks for the same frames.

        The result is read-only (it is shared). The last :data:`SHARED_FRAMES`
        requests are kept, fewer when they would exceed :data:`SHARED_BYTES`
        (the newest always stays). A thread asking for frames another is decoding
        waits for them (models side by side ask for the same clip at once).
        """
        key = (tuple(float(t) for t in times), max_side)
        while True:
            with self._lock:
                frames = self._shared.get(key)
                if frames is not None:
                    self._shared.move_to_end(key)
                    return frames
                busy = self._decoding.get(key)
                if busy is None:
                    self._decoding[key] = done = threading.Event()
                    break
            # Another thread decodes them: wait, then look again (if its decode failed, or the
            # frames were evicted meanwhile, this thread decodes them itself).
            busy.wait()
        try:
            # Decoded outside the lock: frames_at takes it itself.
            frames = self.frames_at(list(key[0]), max_side=max_side)
            frames.setflags(write=False)
            with self._lock:
                self._shared[key] = frames
                while len(self._shared) > 1 and (
                    len(self._shared) > SHARED_FRAMES or sum(f.nbytes for f in self._shared.values()) > SHARED_BYTES
                ):
                    self._shared.popitem(last=False)
            return frames
        finally:
            with self._lock:
                del self._decoding[key]
            done.set()

    def sample(self, start_s: float, end_s: float, k: int, max_side: int | None = None) -> np.ndarray:
        """``k`` frames spread evenly over ``[start_s, end_s)`` (centres of k equal slices)."""
        return self.frames_at(sample_times(start_s, end_s, k), max_side=max_side)

    def sample_shared(self, start_s: float, end_s: float, k: int, max_side: int | None = None) -> np.ndarray:
        """:meth:`sample` through :meth:`shared_frames` (read-only): the frame taggers and the text
        reader read the same frame of a window, and the second finds it decoded."""
        return self.shared_frames(sample_times(start_s, end_s, k), max_side=max_side)

    def audio(self) -> np.ndarray:
        """The whole audio track as 16 kHz mono float32 in [-1, 1] (empty if none).

        Decoded afresh and not kept: a long video's track is large, so models
        read spans with :meth:`audio_between` instead.
        """
        return decode_audio(self.path) if self.info.has_audio else np.zeros(0, np.float32)

    def audio_between(self, start_s: float, end_s: float) -> np.ndarray:
        """The audio samples of ``[start_s, end_s)`` (shorter past the track's end).

        Only the :data:`AUDIO_BLOCK_S` blocks the span touches are decoded; the
        last :data:`AUDIO_BLOCKS` are kept, so models reading window after
        window decode each block once.
        """
        lo, hi = max(0, int(start_s * SAMPLE_RATE)), int(end_s * SAMPLE_RATE)
        if not self.info.has_audio or hi <= lo:
            return np.zeros(0, np.float32)
        size = int(AUDIO_BLOCK_S * SAMPLE_RATE)
        pieces = [self._audio_block(b)[max(lo - b * size, 0) : hi - b * size] for b in range(lo // size, (hi - 1) // size + 1)]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _audio_block(self, block: int) -> np.ndarray:
        with self._audio_lock:
            samples = self._audio_blocks.get(block)
            if samples is None:
                samples = decode_audio_span(self.path, block * AUDIO_BLOCK_S, (block + 1) * AUDIO_BLOCK_S)
                self._audio_blocks[block] = samples
                while len(self._audio_blocks) > AUDIO_BLOCKS:
                    self._audio_blocks.popitem(last=False)
            self._audio_blocks.move_to_end(block)
            return samples


def sample_times(start_s: float, end_s: float, k: int) -> list[float]:
    """Centres of ``k`` equal slices of ``[start_s, end_s)``."""
    if k <= 0:
        return []
    span = max(end_s - start_s, 1e-3)
    return [start_s + span * (i + 0.5) / k for i in range(k)]


def probe(path: Path) -> VideoInfo:
    """Read a video's metadata (duration, fps, size, streams) without decoding it all.

    Raises:
        ProcessingError: if the file is not a media file any decoder can open.
    """
    sha = content_hash(path)
    try:
        info = _probe_pyav(path, sha)
    except ProcessingError:
        raise
    except Exception as exc:  # noqa: BLE001
        log.debug("PyAV probe failed on %s: %s", path, exc)
        info = _probe_opencv(path, sha)
    if info is None:
        raise ProcessingError(f"{path}: not a readable video or audio file")
    return info


def _open_av(path: Path):
    import av
    import av.logging

    # libav prints its own decode errors to stderr; vidsense reports problems itself, in one
    # line. Only libav's native level is lowered: routing its log through Python
    # (set_level) can deadlock threaded decoders.
    av.logging.set_libav_level(av.logging.PANIC)
    return av.open(str(path), metadata_errors="ignore")


def _decodable_end(path: Path, kind: str) -> float:
    """End time (s) of the last packet of the first ``kind`` stream that the demuxer can read."""
    last = 0.0
    try:
        with _open_av(path) as c:
            streams = c.streams.video if kind == "video" else c.streams.audio
            if not streams:
                return 0.0
            for pkt in c.demux(streams[0]):
                if pkt.pts is not None and pkt.time_base is not None and pkt.size:
                    last = max(last, float((pkt.pts + (pkt.duration or 0)) * pkt.time_base))
    except Exception:  # noqa: BLE001 - a truncated file ends the scan with an error: what was read counts
        pass
    return last


def _probe_pyav(path: Path, sha: str) -> VideoInfo | None:
    with _open_av(path) as c:
        vs = c.streams.video[0] if c.streams.video else None
        aus = c.streams.audio[0] if c.streams.audio else None
        if vs is None and aus is None:
            return None
        duration = 0.0
        if c.duration:
            duration = c.duration / 1_000_000
        for s in (vs, aus):
            if s is not None and s.duration and s.time_base:
                duration = max(duration, float(s.duration * s.time_base))
        fps = 0.0
        n_frames = 0
        width = height = 0
        codec = ""
        if vs is not None:
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            fps = float(rate) if rate else 0.0
            n_frames = int(vs.frames or 0)
            width, height = vs.codec_context.width, vs.codec_context.height
            codec = vs.codec_context.name
            if duration <= 0 and n_frames and fps:
                duration = n_frames / fps
        if duration <= 0 or (vs is not None and (width == 0 or fps == 0)):
            duration, fps, n_frames = _scan_duration(c, vs, aus, duration, fps)
        if vs is not None and not n_frames and fps:
            n_frames = int(round(duration * fps))
        has_video = vs is not None
    truncated = False
    if has_video:
        # A container can claim a video stream whose packets decode to nothing
        # (truncated file): prove one frame decodes before promising video.
        try:
            first = _frames_pyav(path, [0.0], 64)
        except Exception:  # noqa: BLE001
            first = _frames_opencv(path, [0.0], 64)
        if first is None or len(first) == 0:
            if aus is None:
                raise ProcessingError(f"{path}: video stream has no decodable frames (truncated or corrupt file)")
            has_video = False
            truncated = True
        else:
            if not width:
                height, width = first.shape[1:3]
            # The header's duration is a promise; a cut-off download keeps the header
            # but loses the tail. One seek near the end tells, and only then is the
            # file scanned for where its readable part really ends.
            if duration > 1.0 and _tail_missing(path, duration):
                truncated = True
                duration = _decodable_end(path, "video")
                n_frames = int(round(duration * fps)) if fps else n_frames
    if truncated and not has_video:
        duration = _decodable_end(path, "audio")
        if duration < 0.5:
            raise ProcessingError(f"{path}: truncated or corrupt file: nothing in it can be decoded")
    return VideoInfo(
        path=str(path),
        sha256=sha,
        duration_s=round(float(duration), 3),
        fps=round(fps, 3),
        width=int(width),
        height=int(height),
        has_video=has_video,
        has_audio=aus is not None,
        n_frames=n_frames,
        codec=codec,
        truncated=truncated,
    )


def _tail_missing(path: Path, duration: float) -> bool:
    try:
        return _frames_pyav(path, [duration * 0.95], 32) is None
    except Exception:  # noqa: BLE001
        return True


def _scan_duration(c, vs, aus, duration: float, fps: float) -> tuple[float, float, int]:
    """Walk the packets once when the header lies about length (raw streams, odd AVIs)."""
    stream = vs if vs is not None else aus
    last = 0.0
    count = 0
    for pkt in c.demux(stream):
        if pkt.pts is not None and pkt.time_base is not None:
            last = max(last, float((pkt.pts + (pkt.duration or 0)) * pkt.time_base))
        if pkt.size:
            count += 1
    if vs is not None:
        if not fps and last > 0:
            fps = count / last
        if last <= 0 and fps:
            last = count / fps
    return max(duration, last), fps, count if vs is not None else 0


class _PyAVReader:
    """An open video stream with a decode cursor that survives between requests.

    Perception models ask for a few frames per window, window after window; a
    fresh open + seek per request re-decodes from the previous keyframe each
    time (seconds on an 80 s AVI with sparse keyframes). Keeping the cursor,
    a request just ahead of it decodes forward instead.
    """

    def __init__(self, path: Path) -> None:
        self.c = _open_av(path)
        self.vs = self.c.streams.video[0]
        self.vs.thread_type = "AUTO"
        self.tb = float(self.vs.time_base) if self.vs.time_base else 1.0 / 90000
        vs = self.vs
        self.offset = float(vs.start_time * vs.time_base) if vs.start_time is not None and vs.time_base else 0.0
        self.decoder = None
        self.prev = None  # (time, av.VideoFrame) of the last frame decoded
        # The frames of the current pass, in order and without gaps: (times, frames, bytes).
        self.kept_times: list[float] = []
        self.kept: list[Any] = []
        self.kept_bytes = 0

    def close(self) -> None:
        self.c.close()

    def _keep(self, t: float, frame: Any) -> None:
        self.kept_times.append(t)
        self.kept.append(frame)
        self.kept_bytes += sum(p.buffer_size for p in frame.planes)
        while len(self.kept) > 1 and (self.kept_bytes > DECODED_BYTES or t - self.kept_times[0] > DECODED_SPAN_S):
            self.kept_bytes -= sum(p.buffer_size for p in self.kept[0].planes)
            del self.kept_times[0], self.kept[0]

    def _kept_frame(self, t: float) -> Any:
        """The frame a decode from a seek would pick for ``t``, when the kept frames hold both neighbours."""
        times = self.kept_times
        if not times or t > times[-1] + 1e-6:
            return None
        i = bisect.bisect_left(times, t - 1e-6)  # first frame with time + 1e-6 >= t
        if i == 0:
            return self.kept[0] if abs(times[0] - t) <= 1e-6 else None
        # Of the two frames straddling t, the nearer one (a tie takes the later), as frame_at does.
        return self.kept[i - 1] if abs(times[i - 1] - t) < abs(times[i] - t) else self.kept[i]

    def frame_at(self, t: float):
        """The decoded frame nearest to ``t`` (None if the stream yields nothing)."""
        prev = self.prev
        if prev is not None and t < prev[0] - 1e-6:
            kept = self._kept_frame(t)
            if kept is not None:
                return kept
        if self.decoder is None or prev is None or t < prev[0] - 1e-6 or t - prev[0] > SEEK_GAP_S:
            try:
                self.c.seek(int((t + self.offset) / self.tb), stream=self.vs, backward=True, any_frame=False)
            except Exception:  # noqa: BLE001 - unseekable streams decode from the start
                self.c.seek(0)
            self.decoder = self.c.decode(self.vs)
            prev = None
            self.kept_times, self.kept, self.kept_bytes = [], [], 0
        chosen = None
        if prev is not None and prev[0] + 1e-6 >= t:
            chosen = prev[1]
        else:
            for frame in self.decoder:
                ft = (frame.time - self.offset) if frame.time is not None else (prev[0] if prev else 0.0)
                if prev is not None and ft < prev[0]:
                    # Out of order: some AVIs (packed B-frames) stamp frames with their packets'
                    # times while the decoder hands them out in display order. Time only moves
                    # forward here, so the frame picked for a time is the same whether the
                    # reader decodes on, seeks, or finds it kept (models side by side make any).
                    ft = prev[0]
                if not self.kept_times or ft >= self.kept_times[-1]:
                    self._keep(ft, frame)
                if ft + 1e-6 >= t:
                    # Of the two frames straddling t, take the nearer one.
                    chosen = prev[1] if prev is not None and abs(prev[0] - t) < abs(ft - t) else frame
                    prev = (ft, frame)
                    break
                prev = (ft, frame)
        if chosen is None and prev is not None:
            chosen = prev[1]  # past the end: the last frame is the nearest
        self.prev = prev
        return chosen


def _frames_pyav(path: Path, times: Sequence[float], max_side: int | None, reader: _PyAVReader | None = None) -> np.ndarray | None:
    own = reader is None
    r = _PyAVReader(path) if own else reader
    try:
        out: list[np.ndarray | None] = [None] * len(times)
        for idx in np.argsort(np.asarray(times, dtype=float), kind="stable"):
            chosen = r.frame_at(float(times[idx]))
            out[idx] = None if chosen is None else _resize(chosen.to_ndarray(format="rgb24"), max_side)
    finally:
        if own:
            r.close()
    return _stack(out)


def _stack(frames: list[np.ndarray | None]) -> np.ndarray | None:
    good = [f for f in frames if f is not None]
    if not good:
        return None
    filled = []
    prev = good[0]
    for f in frames:
        prev = f if f is not None else prev
        filled.append(prev)
    shape = filled[0].shape
    filled = [f if f.shape == shape else _fit(f, shape) for f in filled]
    return np.stack(filled)


def _fit(f: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    import cv2

    return cv2.resize(f, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _capture(path: Path):
    # OpenCV bundles its own FFmpeg, which logs decode errors to stderr unless told not to.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    return cv2.VideoCapture(str(path))


def _probe_opencv(path: Path, sha: str) -> VideoInfo | None:
    import cv2

    cap = _capture(path)
    try:
        if not cap.isOpened():
            return None
        ok, frame = cap.read()
        if not ok:
            return None
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        h, w = frame.shape[:2]
        duration = n / fps if fps and n else 0.0
        return VideoInfo(str(path), sha, round(duration, 3), round(fps, 3), w, h, True, False, n, "opencv")
    finally:
        cap.release()


def _frames_opencv(path: Path, times: Sequence[float], max_side: int | None) -> np.ndarray | None:
    import cv2

    cap = _capture(path)
    try:
        if not cap.isOpened():
            return None
        out: list[np.ndarray | None] = []
        for t in times:
            cap.set(cv2.CAP_PROP_POS_MSEC, max(0.0, t) * 1000.0)
            ok, bgr = cap.read()
            out.append(_resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), max_side) if ok else None)
        return _stack(out)
    finally:
        cap.release()


def decode_audio(path: str | os.PathLike[str], sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sr`` Hz (empty when there is none)."""
    return decode_audio_span(path, 0.0, None, sr)


def decode_audio_span(path: str | os.PathLike[str], start_s: float, end_s: float | None, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The samples of ``[start_s, end_s)`` of the first audio stream, mono float32 at ``sr`` Hz.

    Decodes only that span (plus :data:`AUDIO_PREROLL_S` before it): a seek
    reaches ``start_s``, and decoding stops at ``end_s`` (None: the end). Sample
    ``i`` of the track is at ``i / sr`` seconds from the stream's start, as in a
    decode from the beginning; a span starting at 0 is exactly that decode.

    Raises:
        ProcessingError: the audio stream cannot be decoded at all.
    """
    wanted = max(0, int(start_s * sr))
    stop = None if end_s is None else int(end_s * sr)
    if stop is not None and stop <= wanted:
        return np.zeros(0, np.float32)
    samples = _decode_audio(Path(path), wanted, stop, sr, seek=wanted > 0)
    if samples is None:
        # The seek landed past the span, or frames came without timestamps: read from the start.
        log.debug("%s: audio seek to %.1f s unusable; decoding from the start", path, start_s)
        samples = _decode_audio(Path(path), wanted, stop, sr, seek=False)
    return samples if samples is not None else np.zeros(0, np.float32)


def _decode_audio(path: Path, wanted: int, stop: int | None, sr: int, seek: bool) -> np.ndarray | None:
    """Samples ``[wanted, stop)``; None when ``seek`` could not place them."""
    import av

    chunks: list[np.ndarray] = []
    first: int | None = None if seek else 0  # track index of chunks[0][0] (of the next sample while none is kept)
    got = 0
    decoded = False
    try:
        with _open_av(path) as c:
            if not c.streams.audio:
                return np.zeros(0, np.float32)
            stream = c.streams.audio[0]
            tb = float(stream.time_base) if stream.time_base else 1.0 / sr
            offset = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
            if seek:
                try:
                    c.seek(int((max(0.0, wanted / sr - AUDIO_PREROLL_S) + offset) / tb), stream=stream, backward=True)
                except Exception:  # noqa: BLE001 - an unseekable stream is read from its start
                    return None
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
            for frame in c.decode(stream):
                if first is None:
                    if frame.time is None:
                        return None
                    first = round((frame.time - offset) * sr)
                    if first > wanted:
                        return None
                decoded = True
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    if got == 0 and first + chunk.size <= wanted:
                        first += chunk.size  # before the span: never kept, so memory holds the span only
                        continue
                    chunks.append(chunk)
                    got += chunk.size
                if stop is not None and first + got >= stop:
                    break
            else:
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except av.error.InvalidDataError as exc:
        if not decoded:
            raise ProcessingError(f"{path}: audio stream cannot be decoded ({exc})") from exc
        log.warning("%s: audio decoding stopped early: %s", path, exc)
    if not chunks or first is None:
        return np.zeros(0, np.float32)
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    return samples[wanted - first : None if stop is None else stop - first]
