"""The timeline: every modality of a video as timed text.

A video is cut into windows; perception models turn each window into
observations. The timeline is the contract between `services` (which fills it)
and `agents` / `concepts` (which read it), so it is plain frozen data with a JSON
round trip and one text rendering that both readers share.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Literal

Modality = Literal["sight", "speech", "sound", "text"]
MODALITIES: tuple[Modality, ...] = ("sight", "speech", "sound", "text")


@dataclass(frozen=True)
class Window:
    """One time window of a video, in seconds."""

    index: int
    start_s: float
    end_s: float

    @property
    def label(self) -> str:
        """Human-readable span, e.g. ``"0-2 s"``."""
        return f"{_fmt_s(self.start_s)}-{_fmt_s(self.end_s)} s"


@dataclass(frozen=True)
class Observation:
    """What one perception model saw, heard or read in one window.

    Attributes:
        window: index of the window the observation belongs to.
        start_s: start of the evidence in seconds (may be inside the window).
        end_s: end of the evidence in seconds.
        modality: ``sight``, ``speech``, ``sound`` or ``text``.
        source_model: registry name of the model that produced it.
        text: the observation as words.
        score: confidence in [0, 1].
        kind: finer grouping inside a modality (``caption``, ``objects``,
            ``scene``, ``pose``, ``motion``, ``action``, ``tags``, ...), used to
            render one clause per kind.
    """

    window: int
    start_s: float
    end_s: float
    modality: Modality
    source_model: str
    text: str
    score: float = 1.0
    kind: str = ""

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"unknown modality {self.modality!r}; expected one of {MODALITIES}")


@dataclass(frozen=True)
class VideoInfo:
    """Metadata of a decoded video."""

    path: str
    sha256: str
    duration_s: float
    fps: float
    width: int
    height: int
    has_video: bool
    has_audio: bool
    n_frames: int = 0
    codec: str = ""
    truncated: bool = False


@dataclass(frozen=True)
class Timeline:
    """All observations of one video, ordered by window.

    ``notes`` records facts a reader must know to interpret the timeline, e.g.
    that a Kinetics-trained recogniser contributed (so a Kinetics evaluation is
    no longer zero-shot) or that the video had no audio track.

    ``failures`` names each configured model that could not load or run
    (``"visual-tags: cannot load (AttributeError: ...)"``): the timeline was built
    without it, so every answer made from it says so.

    ``timings`` holds the seconds each model took in the run that built this
    timeline (a cache hit counts its lookup). It describes the run, not the
    video: it takes no part in equality and is not serialised.
    """

    video: VideoInfo
    windows: tuple[Window, ...]
    observations: tuple[Observation, ...]
    models: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict, compare=False, hash=False)
    failures: tuple[str, ...] = ()

    def for_window(self, index: int) -> tuple[Observation, ...]:
        """Observations of one window, in insertion order."""
        return tuple(o for o in self.observations if o.window == index)

    def only(self, modalities: Iterable[str] | None) -> "Timeline":
        """A copy restricted to the given modalities (``None`` keeps all)."""
        if modalities is None:
            return self
        keep = set(modalities)
        unknown = keep - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modality {sorted(unknown)[0]!r}; expected some of {', '.join(MODALITIES)}")
        return replace(self, observations=tuple(o for o in self.observations if o.modality in keep))

    def without_windows(self, indices: Iterable[int]) -> "Timeline":
        """A copy with every observation of the given windows removed."""
        drop = set(indices)
        return replace(self, observations=tuple(o for o in self.observations if o.window not in drop))

    @property
    def is_empty(self) -> bool:
        """True when no model observed anything."""
        return not self.observations

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities with at least one observation, in :data:`MODALITIES` order."""
        seen = {o.modality for o in self.observations}
        return tuple(m for m in MODALITIES if m in seen)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (inverse of :meth:`from_dict`)."""
        return {
            "video": asdict(self.video),
            "windows": [asdict(w) for w in self.windows],
            "observations": [asdict(o) for o in self.observations],
            "models": list(self.models),
            "notes": list(self.notes),
            "failures": list(self.failures),
        }

    def to_json(self, **kwargs: Any) -> str:
        """Serialise to a JSON string."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Timeline":
        """Rebuild a timeline from :meth:`to_dict` output."""
        return cls(
            video=VideoInfo(**data["video"]),
            windows=tuple(Window(**w) for w in data["windows"]),
            observations=tuple(Observation(**o) for o in data["observations"]),
            models=tuple(data.get("models", ())),
            notes=tuple(data.get("notes", ())),
            failures=tuple(data.get("failures", ())),
        )

    @classmethod
    def from_json(cls, text: str) -> "Timeline":
        """Parse :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))

    def summary(self, modalities: Iterable[str] | None = None) -> str:
        """Whole-video digest of recurring observations (see :func:`summarize`)."""
        return summarize(self, modalities)

    def render(self, modalities: Iterable[str] | None = None, max_chars: int | None = None, summary: bool = True) -> str:
        """The compact text that the LLM and the concept module read.

        A ``[whole video]`` digest line (see :func:`summarize`; only when there is
        more than one window) followed by one line per window that has
        observations, e.g.
        ``[0-2 s] objects: person 0.90, sports ball 0.70; speech: 'okay'``.

        Args:
            modalities: restrict to these modalities.
            max_chars: if given, stop adding lines once the text would be longer;
                the digest comes first, so it is the last thing to go.
            summary: include the digest line.
        """
        lines: list[str] = []
        total = 0
        tl = self.only(modalities)
        if summary and len(self.windows) > 1 and tl.observations:
            lines.append(f"[whole video] {summarize(tl)}")
        for w in self.windows:
            line = render_window(w, tl.for_window(w.index))
            if line:
                lines.append(line)
        out: list[str] = []
        for line in lines:
            if max_chars is not None and total + len(line) + 1 > max_chars:
                break
            out.append(line)
            total += len(line) + 1
        return "\n".join(out)


# How each (modality, kind) is introduced in the rendered text. Readers (the LLM,
# the concept encoder) understand "movement looks like: ..." better than a bare kind.
HEADS: dict[tuple[str, str], str] = {
    ("sight", "action"): "movement looks like",
    ("sight", "tags"): "visual tags",
    ("sight", "gesture"): "gestures",
    ("sound", "tags"): "sounds",
    ("sound", "sound"): "sounds",
    ("speech", "speech"): "speech",
    ("text", "ocr"): "on-screen text",
}


def head_of(modality: str, kind: str) -> str:
    """The clause head for observations of ``modality`` and ``kind``."""
    return HEADS.get((modality, kind), kind or modality)


def render_window(window: Window, observations: Iterable[Observation]) -> str:
    """Render one window as ``[a-b s] clause; clause; ...`` ('' when empty).

    Observations of the same modality and kind are merged into one clause so
    the text stays short: tags become ``name 0.90, name 0.40``, captions and
    speech keep their sentence.
    """
    groups: dict[tuple[str, str], list[Observation]] = {}
    for o in observations:
        groups.setdefault((o.modality, o.kind), []).append(o)
    if not groups:
        return ""
    order = {m: i for i, m in enumerate(MODALITIES)}
    clauses = []
    for (modality, kind), obs in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        head = head_of(modality, kind)
        if modality == "speech":
            body = " ".join(f"'{o.text}'" for o in obs)
        elif modality == "text":
            body = ", ".join(f"'{o.text}'" for o in obs)
        elif kind in PHRASE_KINDS:
            # Phrases carry their own measures; a score would read as part of the last one.
            body = ", ".join(o.text for o in obs)
        elif len(obs) == 1 and " " in obs[0].text.strip() and obs[0].score >= 1.0:
            body = obs[0].text
        else:
            body = ", ".join(o.text if o.score >= 1.0 else f"{o.text} {o.score:.2f}" for o in obs)
        clauses.append(f"{head}: {body}")
    return f"[{window.label}] " + "; ".join(clauses)


# Sight kinds whose text is phrases with measures (motion and pose words, gestures).
PHRASE_KINDS = ("motion", "pose", "gesture")
_MEASURE = re.compile(r"\s*\([^()]*\d[^()]*\)")


def summarize(timeline: "Timeline", modalities: Iterable[str] | None = None, per_kind: int = 6, speech_chars: int = 400) -> str:
    """A whole-video digest: what recurs across windows, most frequent first.

    Small LLMs lose the thread in a long per-window listing; a short digest up
    front ("objects: person (4 of 5 windows), bicycle (2 of 5)") keeps the
    dominant evidence visible. Tags are ranked by the number of windows they
    appear in, then by their best score; sentences (pose, motion, captions) by
    frequency; speech is the transcript in order; on-screen text is listed once.
    """
    tl = timeline.only(modalities)
    n = len(timeline.windows)
    groups: dict[tuple[str, str], dict[str, tuple[set[int], float]]] = {}
    speech: list[str] = []
    for o in tl.observations:
        if o.modality == "speech":
            speech.append(o.text)
            continue
        if o.kind == "objects":
            names = [o.text.split(" x")[0]]
        elif o.modality == "sight" and o.kind in PHRASE_KINDS:
            # "camera static; cut to a new shot" recurs as parts, rarely whole.
            # Measurements ("(0.7 body heights/s)", "(3% of the frame)") vary per
            # window; without them the same movement counts as one phrase.
            names = list(dict.fromkeys(_MEASURE.sub("", part).strip() for part in o.text.split(";") if part.strip()))
        else:
            names = [o.text]
        for name in names:
            wins, best = groups.setdefault((o.modality, o.kind), {}).get(name, (set(), 0.0))
            wins.add(o.window)
            groups[(o.modality, o.kind)][name] = (wins, max(best, o.score))
    order = {m: i for i, m in enumerate(MODALITIES)}
    clauses = []
    for (modality, kind), items in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        ranked = sorted(items.items(), key=lambda kv: (-len(kv[1][0]), -kv[1][1], kv[0]))[:per_kind]
        if modality == "text":
            body = ", ".join(f"'{name}'" for name, _ in ranked)
        else:
            body = ", ".join(f"{name} ({len(w)} of {n} windows)" if n > 1 else name for name, (w, _) in ranked)
        clauses.append(f"{head_of(modality, kind)}: {body}")
    if speech:
        transcript = " ".join(dict.fromkeys(speech))
        if len(transcript) > speech_chars:
            transcript = transcript[:speech_chars].rsplit(" ", 1)[0] + " ..."
        clauses.append(f"speech: '{transcript}'")
    return "; ".join(clauses)


def make_windows(duration_s: float, window_s: float | None = 2.0, count: int | None = None) -> tuple[Window, ...]:
    """Cut ``[0, duration_s]`` into windows of ``window_s`` seconds or into ``count`` equal parts.

    The last window is shortened to end at the video's end; a video shorter
    than one window still gets one window.
    """
    if duration_s <= 0:
        return (Window(0, 0.0, 0.0),)
    if count is not None:
        if count < 1:
            raise ValueError(f"window count must be >= 1, got {count}")
        step = duration_s / count
    else:
        if not window_s or window_s <= 0:
            raise ValueError(f"window length must be > 0 s, got {window_s}")
        step = float(window_s)
    windows = []
    start = 0.0
    i = 0
    # A trailing sliver shorter than a quarter window is folded into the previous one,
    # so the last window never holds a handful of frames.
    while start < duration_s - 1e-6:
        end = min(start + step, duration_s)
        if duration_s - end < 0.25 * step:
            end = duration_s
        windows.append(Window(i, round(start, 3), round(end, 3)))
        start = end
        i += 1
    return tuple(windows)


def window_of(t: float, windows: tuple[Window, ...]) -> int:
    """Index of the window containing time ``t`` (clamped to the ends)."""
    for w in windows:
        if t < w.end_s:
            return w.index
    return windows[-1].index


def _fmt_s(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"
