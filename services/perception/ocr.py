"""Text on screen: PP-OCRv4 (``rapidocr_onnxruntime``) on a few frames.

OCR costs 0.4-0.7 s per frame on two cores, an order more than every other
visual model, so :class:`ScreenText` reads at most one frame per window and
skips most of them:

- only the middle frame of a window is read;
- a window whose frame barely differs from the last frame read is skipped
  (the text on screen is the same);
- on long videos only every ``stride``-th window is considered, with the
  stride chosen so that at most ``max_frames`` frames are read per video.

A line of text is reported once, in the window where it appears; it is
reported again only after it has left the screen (so a title card shown for
20 s is one observation, not ten).

``rapidocr_onnxruntime`` is installed with ``--no-deps``; its models come from
the model store (``ppocr-v4``) and are passed by path, so the package's own
model folder is never relied on.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vidsense.services import model_store
from vidsense.services.errors import ModelError
from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig
from vidsense.services.perception.turns import TURNS
from vidsense.services.timeline import Observation, Window

STORE_NAME = "ppocr-v4"
MODEL_FILES = {
    "det_model_path": "ch_PP-OCRv4_det_infer.onnx",
    "rec_model_path": "ch_PP-OCRv4_rec_infer.onnx",
    "cls_model_path": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
}
THUMB_SIDE = 64  # change detection compares 64x64 grey thumbnails: cheap, and a text line still shows
CHANGED_LEVEL = 32  # a thumbnail pixel counts as changed when its grey level moves this much (codec noise does not)


@dataclass(frozen=True)
class OcrParams:
    """Settings of :class:`ScreenText` (all change its output, so all go in the cache key).

    Attributes:
        min_score: recognised lines below this confidence are dropped.
        min_chars: lines with fewer letters or digits than this are dropped (stray marks).
        change_threshold: fraction of thumbnail pixels that must change for a window's
            frame to be read again. A mean difference would miss new text on a still
            background, which moves few pixels a lot.
        max_frames: at most this many frames are read per video.
        det_max_side: the text detector shrinks frames whose long side exceeds this.
    """

    min_score: float = 0.6
    min_chars: int = 2
    change_threshold: float = 0.005
    max_frames: int = 60
    det_max_side: int = 960


def normalise(text: str) -> str:
    """The form used to tell repeated text apart: lower case, single spaces."""
    return re.sub(r"\s+", " ", text).strip().lower()


def frame_stride(n_windows: int, max_frames: int) -> int:
    """Read every ``stride``-th window so that at most ``max_frames`` frames are read."""
    return max(1, math.ceil(n_windows / max(1, max_frames)))


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A ``THUMB_SIDE`` square grey float thumbnail for change detection."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels whose grey level differs by at least ``CHANGED_LEVEL``."""
    return float((np.abs(a - b) >= CHANGED_LEVEL).mean())


class ScreenText:
    """The ``ocr`` perception model: on-screen text, read on few frames and deduplicated."""

    card = ModelCard(name="ocr", version="1", modalities=("text",), note="PP-OCRv4 (Chinese + English recogniser)", cost=0.7)

    def __init__(self, env: ModelEnv, tuning: OcrParams | None = None, *, frame_max_side: int = 640, threads: int | None = None) -> None:
        """PP-OCRv4 comes from the model store (assembled on first use, never downloaded) and loads
        on :meth:`load`, or on the first frame read: a run answered from the perception cache never
        loads it.

        Args:
            env: where the model store is.
            tuning: thresholds and sampling.
            frame_max_side: frames are scaled so their long side is at most this.
            threads: ONNX Runtime's threads (None: the cores, up to 4).
        """
        self.tuning = tuning or OcrParams()
        self.threads = threads
        self.frame_max_side = frame_max_side
        self._home = env.home
        self._reader: Any = None
        self._load_lock = threading.Lock()

    def load(self) -> None:
        """Load the detector, classifier and recogniser now (idempotent)."""
        with self._load_lock:
            if self._reader is None:
                self._reader = self._build()

    def _build(self) -> Any:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            spec = model_store.get_spec(STORE_NAME)
            raise ModelError(f"ocr needs {spec.carriers[0].requirement}: run vidsense models install --pip (it installs it with --no-deps)") from None

        folder = model_store.ensure(STORE_NAME, self._home)
        return RapidOCR(
            **{key: str(folder / name) for key, name in MODEL_FILES.items()},
            text_score=self.tuning.min_score,
            # The package default scales the short side *up* to 736 px, turning a 640x272
            # frame into 1732x736: 5-10x slower and no better on video text. Cap the long side.
            det_limit_type="max",
            det_limit_side_len=self.tuning.det_max_side,
            intra_op_num_threads=self.threads or max(1, min(4, os.cpu_count() or 1)),
        )

    @classmethod
    def from_config(cls, config: PerceptionConfig) -> "ScreenText":
        """The registry's ``ocr`` model."""
        return cls(config.env, frame_max_side=config.frame_max_side, threads=config.light_threads)

    def params(self) -> dict[str, Any]:
        """Weights, thresholds and sampling: everything that changes the output."""
        return {
            "det_sha256": model_store.weights_sha256(STORE_NAME, self._home),
            "frame_max_side": self.frame_max_side,
            **asdict(self.tuning),
        }

    def read(self, rgb: np.ndarray) -> list[tuple[str, float]]:
        """Lines ``(text, score)`` read in one RGB uint8 frame, top to bottom."""
        self.load()
        # RapidOCR follows OpenCV and takes BGR.
        with TURNS.light():
            result, _ = self._reader(np.ascontiguousarray(rgb[:, :, ::-1]))
        lines = []
        for _box, text, score in result or []:
            text = " ".join(str(text).split())
            if float(score) >= self.tuning.min_score and sum(c.isalnum() for c in text) >= self.tuning.min_chars:
                lines.append((text, float(score)))
        return lines

    def describe(self, media: Media, windows: tuple[Window, ...]) -> Perception:
        """Text lines as they appear on screen (none for a video without frames)."""
        if not media.info.has_video or not windows:
            return Perception()
        out: list[Observation] = []
        last_thumb: np.ndarray | None = None
        on_screen: set[str] = set()
        for w in windows[:: frame_stride(len(windows), self.tuning.max_frames)]:
            frame = media.sample_shared(w.start_s, w.end_s, 1, self.frame_max_side)[0]
            thumb = thumbnail(frame)
            if last_thumb is not None and changed_fraction(thumb, last_thumb) < self.tuning.change_threshold:
                continue
            last_thumb = thumb
            lines = self.read(frame)
            seen_now = set()
            for text, score in lines:
                key = normalise(text)
                if key not in on_screen and key not in seen_now:
                    out.append(Observation(w.index, w.start_s, w.end_s, "text", self.card.name, text, round(score, 3), "ocr"))
                seen_now.add(key)
            on_screen = seen_now
        return Perception(out)
