"""Human pose per window, in words: MoveNet keypoints -> tracks -> :mod:`motion_words` rules.

MoveNet MultiPose Lightning (up to 6 people) runs on a few frames per window,
taken from the shared motion clip (:mod:`vidsense.services.media.motion_clip`).
People are followed from frame to frame by nearest position, and each
person's keypoint trajectory in a window becomes a clause such as
``person: upright, right arm raised above the head, walking left (0.8 body
heights/s)``. When the MultiPose model cannot be loaded the single-person
MoveNet Lightning takes over.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vidsense.services.errors import ModelError
from vidsense.services.media.motion_clip import CLIP_FRAMES, GROUP_S, MotionClip, motion_clips
from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig
from vidsense.services.perception.motion import flow, gestures, motion_words
from vidsense.services.perception.turns import TURNS, set_cv2_threads
from vidsense.services.timeline import Observation, Window

log = logging.getLogger(__name__)

# A detected person below this score, or shorter than this share of the frame, is not described.
PERSON_SCORE = 0.25
MIN_HEIGHT = 0.08
# Largest jump (frame heights, relative to the person's height) between frames that still counts as the same person.
MAX_STEP = 0.6
# A person must be seen in this share of a window's pose frames to be described.
PRESENCE = 0.5
MAX_PEOPLE = 6


@dataclass(frozen=True)
class Person:
    """One detection: keypoints ``[17, 3]`` as ``(x, y, score)`` in frame heights, and a score."""

    keypoints: np.ndarray
    score: float

    @property
    def centre(self) -> np.ndarray:
        seen = self.keypoints[self.keypoints[:, 2] >= motion_words.MIN_SCORE, :2]
        return seen.mean(axis=0) if len(seen) else self.keypoints[:, :2].mean(axis=0)

    @property
    def height(self) -> float:
        seen = self.keypoints[self.keypoints[:, 2] >= motion_words.MIN_SCORE, 1]
        return float(np.ptp(seen)) if len(seen) >= 2 else 0.0


# --------------------------------------------------------------------------- detectors


def _interpreter(path: Path, threads: int | None) -> Any:
    from vidsense.services.quiet import litert_interpreter

    return litert_interpreter(path, threads=threads or 2)


class MultiPoseDetector:
    """MoveNet MultiPose Lightning: uint8 ``[1, H, W, 3]`` (sides multiples of 32) -> ``[1, 6, 56]``."""

    model_name = "movenet-multipose"

    def __init__(self, path: Path, long_side: int, threads: int | None = None):
        self.it = _interpreter(path, threads)
        self.input = self.it.get_input_details()[0]["index"]
        self.output = self.it.get_output_details()[0]["index"]
        self.long_side = long_side
        self.shape: tuple[int, ...] = ()

    def __call__(self, frame: np.ndarray) -> list[Person]:
        import cv2

        h, w = frame.shape[:2]
        # Both sides to multiples of 32 (the model's stride); the small aspect change is undone
        # below because the outputs are normalised to the input's sides.
        scale = self.long_side / max(h, w)
        size = (max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32))
        shape = (1, size[1], size[0], 3)
        if shape != self.shape:
            self.it.resize_tensor_input(self.input, shape)
            self.it.allocate_tensors()
            self.shape = shape
        self.it.set_tensor(self.input, cv2.resize(frame, size, interpolation=cv2.INTER_AREA)[None])
        with TURNS.light():
            self.it.invoke()
        people = []
        for row in self.it.get_tensor(self.output)[0]:
            if row[55] < PERSON_SCORE:
                continue
            yx = row[:51].reshape(17, 3)
            kp = np.stack([yx[:, 1] * w / h, yx[:, 0], yx[:, 2]], axis=1)
            people.append(Person(kp.astype(np.float32), float(row[55])))
        return people


class SinglePoseDetector:
    """MoveNet Lightning (one person): uint8 ``[1, 192, 192, 3]`` -> ``[1, 1, 17, 3]``."""

    model_name = "movenet-lightning"
    SIDE = 192

    def __init__(self, path: Path, long_side: int, threads: int | None = None):
        self.it = _interpreter(path, threads)
        self.it.allocate_tensors()
        self.input = self.it.get_input_details()[0]["index"]
        self.output = self.it.get_output_details()[0]["index"]

    def __call__(self, frame: np.ndarray) -> list[Person]:
        import cv2

        h, w = frame.shape[:2]
        side = max(h, w)
        # Pad to a square (bottom/right) so the aspect ratio survives the resize.
        square = np.zeros((side, side, 3), np.uint8)
        square[:h, :w] = frame
        self.it.set_tensor(self.input, cv2.resize(square, (self.SIDE, self.SIDE), interpolation=cv2.INTER_AREA)[None])
        with TURNS.light():
            self.it.invoke()
        yx = self.it.get_tensor(self.output)[0, 0]
        kp = np.stack([yx[:, 1] * side / h, yx[:, 0] * side / h, yx[:, 2]], axis=1)
        score = float(np.mean(yx[:, 2]))
        return [Person(kp.astype(np.float32), score)] if score >= PERSON_SCORE else []


# Preferred first: MultiPose sees up to 6 people.
DETECTORS: tuple[type, ...] = (MultiPoseDetector, SinglePoseDetector)


def load_detector(home: Path, long_side: int, threads: int | None = None) -> Any:
    """The first detector of :data:`DETECTORS` whose model loads (``threads``: its runtime's; None: 2).

    Raises:
        CorruptModelError: a detector's model is installed but damaged.
        ModelError: when none loads.
    """
    from vidsense.services import model_store

    problems = []
    for cls in DETECTORS:
        try:
            return cls(Path(model_store.ensure(cls.model_name, home)), long_side, threads)
        except model_store.CorruptModelError:
            raise  # damaged weights must be repaired, not quietly swapped for the next model
        except Exception as exc:  # noqa: BLE001 - try the next model, report all if none loads
            log.warning("pose model %s unavailable: %s", cls.model_name, exc)
            problems.append(f"{cls.model_name}: {exc}")
    raise ModelError("no pose model could be loaded (" + "; ".join(problems) + ")")


# --------------------------------------------------------------------------- tracking


def track_people(detections: list[list[Person]]) -> list[dict[int, Person]]:
    """Link detections across frames into tracks: ``[{frame index: Person}, ...]``.

    Greedy nearest-centre matching, closest pairs first; a person that moves
    more than :data:`MAX_STEP` of their height between sampled frames starts a
    new track.
    """
    tracks: list[dict[int, Person]] = []
    last: list[tuple[int, Person]] = []  # per track: (frame index, last detection)
    for f, people in enumerate(detections):
        pairs = []
        for ti, (_, prev) in enumerate(last):
            for pi, p in enumerate(people):
                reach = MAX_STEP * max(prev.height, p.height, MIN_HEIGHT)
                d = float(np.linalg.norm(prev.centre - p.centre))
                if d <= reach:
                    pairs.append((d, ti, pi))
        used_t: set[int] = set()
        used_p: set[int] = set()
        for _, ti, pi in sorted(pairs):
            if ti in used_t or pi in used_p:
                continue
            used_t.add(ti)
            used_p.add(pi)
            tracks[ti][f] = people[pi]
            last[ti] = (f, people[pi])
        for pi, p in enumerate(people):
            if pi not in used_p:
                tracks.append({f: p})
                last.append((f, p))
    return tracks


def window_tracks(tracks: list[dict[int, Person]], times: np.ndarray, window: Window, camera: np.ndarray | None = None) -> list[motion_words.Track]:
    """The tracks seen in most of ``window``'s frames, as :class:`motion_words.Track` (unseen frames score 0).

    Each keeps its number in ``tracks`` (1-based) as ``person``. ``camera``: the
    scene's cumulative shift at each frame (``[len(times), 2]``, frame heights,
    see :func:`vidsense.services.perception.motion.flow.camera_path`), taken out of the keypoints
    so a pan moves nobody.
    """
    frames = [i for i, t in enumerate(times) if window.start_s <= t < window.end_s]
    if not frames:
        return []
    out = []
    for number, track in enumerate(tracks, start=1):
        present = [f for f in frames if f in track]
        if len(present) < PRESENCE * len(frames):
            continue
        if np.median([track[f].height for f in present]) < MIN_HEIGHT:
            continue
        kps = np.zeros((len(frames), 17, 3), np.float32)
        for j, f in enumerate(frames):
            if f in track:
                kps[j] = track[f].keypoints
        person = motion_words.Track(times=times[frames], keypoints=kps, person=number)
        out.append(gestures.compensate(person, camera[frames]) if camera is not None else person)
    out.sort(key=lambda tr: -float(np.mean(tr.keypoints[:, :, 2])))
    return out[:MAX_PEOPLE]


def people_text(tracks: list[motion_words.Track]) -> str:
    """One clause per group of people doing the same, e.g. ``2 people: upright, gliding left``.

    People whose words match apart from their speed figure are merged and the
    figure is dropped; a person alone keeps their number (``person 2: lying``)
    so the gestures' phrases can refer to them.
    """
    groups: dict[str, list[tuple[int, str]]] = {}
    for track in tracks:
        words = ", ".join(motion_words.describe_track(track)) or "visible"
        groups.setdefault(re.sub(r" \([^)]*\)", "", words), []).append((track.person, words))
    parts = []
    for key, members in groups.items():
        if len(members) == 1:
            number, words = members[0]
            parts.append(f"person {number}: {words}" if number else f"person: {words}")
        else:
            parts.append(f"{len(members)} people: {key}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- perception model


class PoseDescriber:
    """Perception model ``pose``: what the people in each window do with their bodies."""

    card: ClassVar[ModelCard] = ModelCard(name="pose", version="2", modalities=("sight",), cost=1.4)
    clip_rate: ClassVar[float | None] = None  # the group's span: the clips flow reads too

    def __init__(
        self,
        env: ModelEnv,
        pose_fps: float = 2.5,
        long_side: int = 480,
        clip_frames: int = CLIP_FRAMES,
        group_s: float = GROUP_S,
        dense: bool = True,
        dense_fps: float = 8.0,
        threads: int | None = None,
    ):
        """Remember where the MoveNet models are; the detector loads on first use.

        Args:
            env: where the model store is.
            pose_fps: pose runs on about this many clip frames per second (at least 3 per window).
            dense: run pose on every clip frame of the windows where someone's arms are busy
                (see :func:`vidsense.services.perception.motion.gestures.worth_a_closer_look`), so fast gestures are seen.
            dense_fps: at most this many pose frames per second there (a 2 Hz wave needs 4 or more).
            long_side: frames are scaled to this long side for MultiPose.
            clip_frames / group_s: the shared motion clips (see :mod:`vidsense.services.media.motion_clip`).
            threads: the detector runtime's threads (None: 2); also OpenCV's, for the camera path.
        """
        self.home = Path(env.home)
        self.threads = threads
        self.pose_fps = pose_fps
        self.long_side = long_side
        self.clip_frames = clip_frames
        self.group_s = group_s
        self.dense = dense
        self.dense_fps = dense_fps
        self._detector: Any = None

    @property
    def detector(self) -> Any:
        if self._detector is None:
            set_cv2_threads(self.threads)
            self._detector = load_detector(self.home, self.long_side, self.threads)
        return self._detector

    @classmethod
    def from_config(cls, config: PerceptionConfig) -> "PoseDescriber":
        """The registry's ``pose`` model."""
        return cls(config.env, threads=config.light_threads)

    def params(self) -> dict[str, Any]:
        from vidsense.services import model_store

        return {
            "model": self.detector.model_name,
            "sha256": model_store.weights_sha256(self.detector.model_name, self.home),
            "pose_fps": self.pose_fps,
            "long_side": self.long_side,
            "clip_frames": self.clip_frames,
            "group_s": self.group_s,
            "person_score": PERSON_SCORE,
            "dense": self.dense,
            "dense_fps": self.dense_fps,
            # The gesture and motion-word rules read the tracks inside this model: another rule or
            # threshold is another result.
            "rules": gestures.rules_digest(),
        }

    def describe(self, media: Media, windows: tuple[Window, ...]) -> Perception:
        """One ``pose`` observation per window where a person is seen."""
        return Perception(o for clip in motion_clips(media, windows, self.clip_frames, self.group_s) for o in self.describe_clip(clip))

    def describe_clip(self, clip: MotionClip) -> list[Observation]:
        """The ``pose`` observations of one clip's windows (and ``gesture`` ones)."""
        detections: dict[int, list[Person]] = {}

        def people_at(picks: list[int]) -> tuple[np.ndarray, list[dict[int, Person]]]:
            for i in picks:
                if i not in detections:
                    detections[i] = self.detector(clip.frames[i])
            return np.asarray([clip.times[i] for i in picks]), track_people([detections[i] for i in picks])

        picks = pose_frames(clip, self.pose_fps)
        times, tracks = people_at(picks)
        # Gestures need every clip frame where arms are busy (a wave at 2 Hz between
        # pose frames 0.4 s apart is invisible); elsewhere the sparse frames suffice.
        if self.dense:
            busy = [w for w in clip.windows if gestures.worth_a_closer_look(window_tracks(tracks, times, w))]
            extra = pose_frames(MotionClip(tuple(busy), clip.times, clip.frames), self.dense_fps) if busy else []
            if set(extra) - set(picks):
                picks = sorted(set(picks) | set(extra))
                times, tracks = people_at(picks)
        camera = flow.camera_path([clip.frames[i] for i in picks], times)
        people = [window_tracks(tracks, times, w, camera) for w in clip.windows]
        out = []
        for w, seen, found in zip(clip.windows, people, gestures.clip_gestures(people)):
            text = people_text(seen)
            if text:
                out.append(Observation(w.index, w.start_s, w.end_s, "sight", self.card.name, text, 1.0, "pose"))
            for g in found:
                out.append(Observation(w.index, w.start_s, w.end_s, "sight", self.card.name, g.phrase(), g.strength, "gesture"))
        return out


def pose_frames(clip: MotionClip, fps: float) -> list[int]:
    """Indices of the clip frames to run pose on: per window, evenly spaced at about ``fps``, at least 3."""
    picks: list[int] = []
    for w in clip.windows:
        frames = [i for i, t in enumerate(clip.times) if w.start_s <= t < w.end_s]
        want = min(len(frames), max(3, round((w.end_s - w.start_s) * fps)))
        picks.extend(frames[int((k + 0.5) * len(frames) / want)] for k in range(want))
    return picks
