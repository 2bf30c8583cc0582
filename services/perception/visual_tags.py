"""Visual tags from the embedded models: COCO objects and ImageNet classes per window.

Two bundled models look at ``frames_per_window`` frames of each window:

- an SSD MobileNet v2 COCO detector (model store ``coco-ssd``, run with
  ``cv2.dnn``) gives the ``objects`` clause;
- an EfficientNet-Lite3 ImageNet-1k classifier (model store
  ``efficientnet-lite3``, int8, run with ``ai-edge-litert``) gives the
  ``scene`` clause.

Each tag is one :class:`Observation` (``text`` the name, ``score`` the
confidence), so the timeline renders a window as one short sentence such as
``objects: person 0.92, bicycle 0.81; scene: moped 0.22`` while the concept
module still reads every tag's score on its own.

Aggregation over a window's frames:

- objects: the **max** detection score over the frames. An object seen clearly
  in one frame was in the window, and a mean would punish objects that enter
  or leave mid-window. When a frame holds several instances, the largest count
  of any one frame is kept (``person x3``).
- scene: the **mean** of the classifier's probabilities over the frames. A
  scene label describes the whole window, so one-frame flukes are damped.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from vidsense.services import model_store
from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig
from vidsense.services.perception.turns import TURNS, set_cv2_threads
from vidsense.services.timeline import Observation, Window

DETECTOR = "coco-ssd"
CLASSIFIER = "efficientnet-lite3"
DETECTOR_INPUT = (300, 300)


@dataclass(frozen=True)
class VisualTagParams:
    """Thresholds of :class:`VisualTagger` (all change its output, so all go in the cache key).

    Attributes:
        min_object_score: detections below this score are dropped.
        max_objects: most object tags per window, best first.
        min_scene_score: ImageNet classes whose window-mean probability is below this are dropped.
        max_scenes: most scene tags per window, best first.
    """

    min_object_score: float = 0.4
    max_objects: int = 5
    min_scene_score: float = 0.15
    max_scenes: int = 3


@lru_cache(maxsize=1)
def coco_labels() -> dict[int, str]:
    """COCO category id -> name, from the package data file ``data/coco_labels.txt``.

    The TF detection zoo numbers classes by COCO category id (1..90 with gaps),
    not by a dense 0..79 index, so the table keeps the ids.
    """
    text = resources.files("vidsense.services").joinpath("data/coco_labels.txt").read_text(encoding="utf-8")
    table = {}
    for line in text.splitlines():
        ident, _, name = line.strip().partition(" ")
        if name:
            table[int(ident)] = name
    return table


def _threads(threads: int | None) -> int:
    return threads or max(1, min(4, os.cpu_count() or 1))


class CocoDetector:
    """SSD MobileNet v2 (COCO) through OpenCV's DNN module (``threads``: OpenCV's; None: its default)."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        import cv2

        set_cv2_threads(threads)
        self._cv2 = cv2
        self._net = cv2.dnn.readNetFromTensorflow(str(folder / "frozen_inference_graph.pb"), str(folder / "graph.pbtxt"))
        self._names = coco_labels()

    def detect(self, frames: np.ndarray) -> list[list[tuple[str, float]]]:
        """Detections ``(name, score)`` for each RGB uint8 frame of ``frames`` ``[N, H, W, 3]``."""
        # The TF graph was trained on RGB and does its own scaling; our frames are RGB
        # already, so no channel swap (swapRB is for OpenCV's BGR images).
        blob = self._cv2.dnn.blobFromImages(list(frames), size=DETECTOR_INPUT, swapRB=False)
        self._net.setInput(blob)
        with TURNS.light():
            rows = self._net.forward().reshape(-1, 7)  # image_id, class_id, score, x1, y1, x2, y2
        found: list[list[tuple[str, float]]] = [[] for _ in range(len(frames))]
        for image_id, class_id, score, *_ in rows:
            name = self._names.get(int(class_id))
            if name is not None and 0 <= int(image_id) < len(found):
                found[int(image_id)].append((name, float(score)))
        return found


class ImageNetClassifier:
    """EfficientNet-Lite3 (ImageNet-1k, int8) through the LiteRT interpreter (``threads``: its; None: up to 4)."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        import cv2

        from vidsense.services.quiet import litert_interpreter

        self._cv2 = cv2
        self._interp = litert_interpreter(folder / "model.tflite", threads=_threads(threads))
        self._input = self._interp.get_input_details()[0]
        self._output = self._interp.get_output_details()[0]
        _, height, width, _ = self._input["shape"]
        self._size = (int(width), int(height))
        # ImageNet labels list synonyms ("switch, electric switch, ..."): the first is the plain name.
        lines = (folder / "labels.txt").read_text(encoding="utf-8").splitlines()
        self.labels = [line.split(",")[0].strip() for line in lines if line.strip()]

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """Class probabilities ``[1000]`` of one RGB uint8 frame."""
        # Squash, not centre-crop: video frames are wide and the edges carry the scene.
        x = self._cv2.resize(rgb, self._size, interpolation=self._cv2.INTER_AREA)
        self._interp.set_tensor(self._input["index"], x[None].astype(self._input["dtype"]))
        with TURNS.light():
            self._interp.invoke()
        q = self._interp.get_tensor(self._output["index"])[0]
        scale, zero = self._output["quantization"]
        return (q.astype(np.float32) - zero) * scale if scale else q.astype(np.float32)


class VisualTagger:
    """The ``visual-tags`` perception model: objects and scene classes per window."""

    card = ModelCard(
        name="visual-tags",
        version="1",
        modalities=("sight",),
        note="objects: SSD MobileNet v2 (COCO, 90 classes); scene: EfficientNet-Lite3 (ImageNet-1k)",
        cost=1.1,
    )

    def __init__(
        self,
        env: ModelEnv,
        tuning: VisualTagParams | None = None,
        *,
        frames_per_window: int = 2,
        frame_max_side: int = 640,
        threads: int | None = None,
    ) -> None:
        """Both models come from the model store (assembled on first use, never downloaded) and
        load on :meth:`load`, or on the first :meth:`describe`: a run answered from the perception
        cache never loads them.

        Args:
            env: where the model store is.
            tuning: thresholds.
            frames_per_window: frames looked at per window.
            frame_max_side: frames are scaled so their long side is at most this.
            threads: each runtime's threads (None: theirs).
        """
        self.tuning = tuning or VisualTagParams()
        self.threads = threads
        self.frames_per_window = frames_per_window
        self.frame_max_side = frame_max_side
        self._home = env.home
        self._nets: tuple[CocoDetector, ImageNetClassifier] | None = None
        self._load_lock = threading.Lock()

    def load(self) -> None:
        """Load the detector and the classifier now (idempotent)."""
        with self._load_lock:
            if self._nets is None:
                self._nets = (
                    CocoDetector(model_store.ensure(DETECTOR, self._home), self.threads),
                    ImageNetClassifier(model_store.ensure(CLASSIFIER, self._home), self.threads),
                )

    @property
    def _detector(self) -> CocoDetector:
        self.load()
        assert self._nets is not None
        return self._nets[0]

    @property
    def _classifier(self) -> ImageNetClassifier:
        self.load()
        assert self._nets is not None
        return self._nets[1]

    @classmethod
    def from_config(cls, config: PerceptionConfig) -> "VisualTagger":
        """The registry's ``visual-tags`` model."""
        return cls(config.env, frames_per_window=config.frames_per_window, frame_max_side=config.frame_max_side, threads=config.light_threads)

    def params(self) -> dict[str, Any]:
        """Weights, thresholds and sampling: everything that changes the output."""
        return {
            "detector_sha256": model_store.weights_sha256(DETECTOR, self._home),
            "classifier_sha256": model_store.weights_sha256(CLASSIFIER, self._home),
            "frames_per_window": self.frames_per_window,
            "frame_max_side": self.frame_max_side,
            **asdict(self.tuning),
        }

    def describe(self, media: Media, windows: tuple[Window, ...]) -> Perception:
        """Object and scene tags for every window (none for a video without frames)."""
        if not media.info.has_video:
            return Perception()
        out: list[Observation] = []
        for w in windows:
            frames = media.sample_shared(w.start_s, w.end_s, self.frames_per_window, self.frame_max_side)
            out += self._objects(w, frames)
            out += self._scene(w, frames)
        return Perception(out)

    def _objects(self, w: Window, frames: np.ndarray) -> list[Observation]:
        best: dict[str, float] = {}
        count: dict[str, int] = {}
        for dets in self._detector.detect(frames):
            per_frame: dict[str, int] = {}
            for name, score in dets:
                if score < self.tuning.min_object_score:
                    continue
                best[name] = max(best.get(name, 0.0), score)
                per_frame[name] = per_frame.get(name, 0) + 1
            for name, n in per_frame.items():
                count[name] = max(count.get(name, 0), n)
        ranked = sorted(best.items(), key=lambda kv: -kv[1])[: self.tuning.max_objects]
        return [
            Observation(w.index, w.start_s, w.end_s, "sight", self.card.name, name if count[name] == 1 else f"{name} x{count[name]}", round(score, 3), "objects")
            for name, score in ranked
        ]

    def _scene(self, w: Window, frames: np.ndarray) -> list[Observation]:
        probs = np.mean([self._classifier.probabilities(f) for f in frames], axis=0)
        top = np.argsort(-probs)[: self.tuning.max_scenes]
        return [
            Observation(w.index, w.start_s, w.end_s, "sight", self.card.name, self._classifier.labels[i], round(float(probs[i]), 3), "scene")
            for i in top
            if probs[i] >= self.tuning.min_scene_score
        ]
