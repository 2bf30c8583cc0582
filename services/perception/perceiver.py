"""From a video file to a :class:`Timeline`: run every configured perception model.

A :class:`Perceiver` loads its models once and reuses them for every video.
Each model's output for a video is cached (keyed by the file's content hash,
the model's card and every parameter that changes its output), so a second
run of the same video calls no model. One failing model leaves a note in the
timeline instead of losing the other modalities. The motion models run
together, group of windows by group (:mod:`vidsense.services.media.motion_clip`),
so each group is decoded once and memory does not grow with the video.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from vidsense.services import perception
from vidsense.services.errors import InputError, ProcessingError, VidsenseError
from vidsense.services.media.motion_clip import ClipModel, MotionClips, clip_key, group_windows, motion_clips
from vidsense.services.media.video import Media
from vidsense.services.model_store import CorruptModelError
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig, PerceptionModel
from vidsense.services.perception.turns import TURNS
from vidsense.services.timeline import MODALITIES, Observation, Timeline, Window, make_windows

if TYPE_CHECKING:
    from vidsense.services.perception.cache import PerceptionCache

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


class Perceiver:
    """Runs the configured perception models over videos.

    Threads may share one Perceiver (batch workers): models load once, and each
    model runs one video at a time while different models run side by side.

    Args:
        config: what to run and how (:meth:`PerceptionConfig.from_settings` builds it).
        cache: the perception cache to use; default: the one under
            ``config.env.home`` when ``config.cache`` is on, else none.
        models: ready models by name, used instead of loading those names from
            the registry (a name need not be registered then).

    Raises:
        InputError: a name in ``config.models`` is neither injected nor registered.
    """

    def __init__(
        self,
        config: PerceptionConfig,
        *,
        cache: "PerceptionCache | None" = None,
        models: Mapping[str, PerceptionModel] | None = None,
    ) -> None:
        self.config = config
        self._models: dict[str, PerceptionModel] = dict(models or {})
        self._injected = frozenset(self._models)
        self._model_locks: dict[str, threading.Lock] = {name: threading.Lock() for name in self._models}
        self._cache = cache
        self._lock = threading.Lock()
        self._load_failures: dict[str, str] = {}
        unknown = [n for n in config.models if n not in self._models and n not in perception.PERCEPTION_MODELS]
        if unknown:
            perception.card_of(unknown[0], config)  # raises the one-line InputError

    @property
    def model_names(self) -> list[str]:
        """The models :meth:`describe` runs, in order."""
        return list(self.config.models)

    def model(self, name: str) -> PerceptionModel:
        """The loaded model ``name`` (loaded on first use unless injected; thread-safe)."""
        with self._lock:
            if name not in self._models:
                self._models[name] = perception.create(name, self.config)
                self._model_locks[name] = threading.Lock()
            return self._models[name]

    def load(self, modalities: Iterable[str] | None = None) -> dict[str, str]:
        """Load every model that :meth:`describe` would run (e.g. before starting threads).

        A model that cannot load is left out, as :meth:`describe` leaves it out: the
        others still load.

        Returns:
            The models that could not load, with the cause (also in :attr:`load_failures`).

        Raises:
            CorruptModelError: a model's installed files are damaged (the user must repair it).
        """
        failed: dict[str, str] = {}
        for name in self.selected(modalities):
            try:
                warm(self.model(name))
            except CorruptModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - one model that cannot load must not stop the others
                failed[name] = _load_failure(exc)
        with self._lock:
            self._load_failures = dict(failed)
        _ = self.cache
        return failed

    def close(self) -> None:
        """Drop the models loaded from the registry (the injected ones are the caller's); a later
        :meth:`describe` loads what it needs again."""
        with self._lock:
            models = [m for n, m in self._models.items() if n not in self._injected]
            self._models = {n: m for n, m in self._models.items() if n in self._injected}
            self._model_locks = {n: threading.Lock() for n in self._models}
        for model in models:
            close = getattr(model, "close", None)
            if callable(close):
                close()

    @property
    def load_failures(self) -> dict[str, str]:
        """The models the last :meth:`load` could not load, with the cause."""
        with self._lock:
            return dict(self._load_failures)

    @property
    def cache(self) -> "PerceptionCache | None":
        """The perception cache in use (None when caching is off)."""
        with self._lock:
            if self._cache is None and self.config.cache:
                from vidsense.services.perception.cache import PerceptionCache

                self._cache = PerceptionCache.for_home(self.config.env.home)
            return self._cache

    def selected(self, modalities: Iterable[str] | None) -> list[str]:
        """Model names whose modalities intersect ``modalities`` (all when None).

        Raises:
            InputError: an unknown modality.
        """
        if modalities is None:
            return self.model_names
        want = set(modalities)
        bad = want - set(MODALITIES)
        if bad:
            raise InputError(f"unknown modality {sorted(bad)[0]!r}; choose from {', '.join(MODALITIES)}")
        return [n for n in self.model_names if set(self.card(n).modalities) & want]

    def card(self, name: str) -> ModelCard:
        """The card of model ``name`` (from its class when possible, so nothing loads)."""
        with self._lock:
            loaded = self._models.get(name)
        return loaded.card if loaded is not None else perception.card_of(name, self.config)

    def describe(self, video: str | os.PathLike[str], modalities: Iterable[str] | None = None, progress: ProgressFn | None = None) -> Timeline:
        """Build the timeline of ``video``.

        Raises:
            InputError: the path is missing, a directory or empty; the video is longer
                than ``config.max_duration_s``; an unknown modality.
            ProcessingError: the file is not a decodable video, or every model failed.
        """
        mods = list(modalities) if modalities is not None else None
        media = Media.open(video, cache=self.cache)
        info = media.info
        limit = self.config.max_duration_s
        if limit is not None and info.duration_s > limit:
            raise InputError(
                f"{video}: {info.duration_s:.0f} s long, over the max_duration_s limit of {limit:g} s "
                "(raise it with VIDSENSE_MAX_DURATION_S or max_duration_s in vidsense.toml)"
            )
        windows = make_windows(info.duration_s, self.config.window_s, self.config.window_count)
        names = self.selected(mods)
        observations: list[Observation] = []
        notes: list[str] = []
        timings: dict[str, float] = {}
        ran: list[str] = []
        failures: list[str] = []
        if info.truncated:
            notes.append(f"file is truncated: only the first {info.duration_s:.1f} s can be decoded")
        if not info.has_video:
            notes.append("no video stream: sight models skipped")
        if not info.has_audio:
            notes.append("no audio track: speech and sound models skipped")
        done = 0
        done_lock = threading.Lock()

        def finished(found: list[_Outcome]) -> list[_Outcome]:
            nonlocal done
            if progress:
                with done_lock:
                    for o in found:
                        progress(o.name, done, len(names))
                        done += 1
            return found

        # Skips, load failures and cache hits are settled here; what is left runs in units.
        settled: dict[str, _Outcome] = {}
        jobs: list[_Job] = []
        for name in names:
            prepared = self._prepare(name, media, windows)
            if isinstance(prepared, _Job):
                jobs.append(prepared)
            else:
                settled[name] = finished([prepared])[0]

        # With ``perception_threads`` > 1 units run side by side (their runtimes release the
        # GIL): the light models one thread each, a heavy one alone on every core when its turn
        # comes (:mod:`~vidsense.services.perception.turns`), the light ones filling the rest
        # (its decoding, the other light models). Media decodes under its own locks and frames
        # two models ask for at once are decoded once, so sharing ``media`` is safe.
        side_by_side = self.config.perception_threads > 1
        # The clip models of a video of one group each run as units of their own, so that a light
        # one need not wait behind a heavy one in its lane; they read one clip, kept for them. A
        # longer video's clip models run together, group by group, so each group is decoded once
        # and memory holds one group's frames whatever the length.
        shared = _SharedClips(media, windows) if side_by_side and _one_group(jobs, windows) else None
        units = _units(jobs, together=shared is None)

        def run(unit: tuple[_Job, ...]) -> list[_Outcome]:
            if len(unit) == 1 and not isinstance(unit[0].model, ClipModel):
                return finished([self._run_one(unit[0], media, windows, video)])
            return finished(self._run_together(unit, media, windows, video, shared))

        workers = max(1, min(self.config.perception_threads, len(units)))
        if workers == 1:
            results = [o for u in units for o in run(u)]
        else:
            # Costly units first, so the cheap ones fill the gaps. (Starting the frame taggers
            # while the heavy model decodes its clip gained less, 0.10 s against 0.29 s on the
            # bundled clip: both decode through the Media's one reader, seeking back and forth.)
            order = sorted(units, key=lambda u: -sum(j.card.cost for j in u))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="perception") as pool:
                futures = [pool.submit(run, u) for u in order]
                results = [o for f in futures for o in f.result()]
        settled.update((o.name, o) for o in results)
        # Gathered in configured order so notes stay deterministic.
        for o in (settled[n] for n in names):
            if o.failure:
                failures.append(o.failure)
            if o.observations is None:
                continue
            timings[o.name] = o.seconds
            observations.extend(o.observations)
            ran.append(o.name)
            notes.extend(n for n in o.notes if n not in notes)
        if failures and not ran:
            raise ProcessingError(f"{video}: every perception model failed ({failures[0]})")
        observations.sort(key=lambda o: (o.window, MODALITIES.index(o.modality), o.start_s))
        return Timeline(
            video=info,
            windows=windows,
            observations=tuple(observations),
            models=tuple(ran),
            notes=tuple(notes),
            timings=timings,
            failures=tuple(failures),
        )

    def _prepare(self, name: str, media: Media, windows: tuple[Window, ...]) -> "_Outcome | _Job":
        """A model's outcome when it needs no run (skipped, cannot load, cached), else the job to run."""
        info = media.info
        try:
            card = self.card(name)
            if (card.needs_video and not info.has_video) or (card.needs_audio and not info.has_audio):
                return _Outcome(name)
            model = self.model(name)
        except CorruptModelError:
            # A damaged install is the user's to repair, not a modality to do without: one model's
            # garbage must not pass as the video's content, so the run stops with the repair command.
            raise
        except Exception as exc:  # noqa: BLE001 - a model that cannot load must not lose the other modalities
            return _Outcome(name, failure=f"{name}: {_load_failure(exc)}")
        cache = self.cache
        key = None
        if cache is not None:
            from vidsense.services.perception.cache import cache_key

            key = cache_key(info.sha256, card, model.params(), windows)
            t0 = time.perf_counter()
            cached = cache.get(key)
            if cached is not None:
                # Notes the model returned when it ran (e.g. the speech language) are stored beside its observations.
                found = Perception(tuple(cached), tuple(cache.get_notes(key) or ()))
                return self._outcome(_Job(name, card, model, key, info.sha256), found, time.perf_counter() - t0, store=False)
        return _Job(name, card, model, key, info.sha256)

    def _run_one(self, job: "_Job", media: Media, windows: tuple[Window, ...], video: object) -> "_Outcome":
        """One model over one video: its observations, or a failure."""
        t0, waited = time.perf_counter(), TURNS.waited()
        try:
            with self._model_locks.setdefault(job.name, threading.Lock()), _turn(job.card):
                found = job.model.describe(media, windows)
            if not isinstance(found, Perception):
                raise TypeError(f"describe returned a {type(found).__name__}, expected a Perception")
        except Exception as exc:  # noqa: BLE001 - one broken model must not lose the other modalities
            return _Outcome(job.name, failure=_failure(job.name, exc, video))
        # Its own time: side by side, the waits for its turns are the other models'.
        return self._outcome(job, found, time.perf_counter() - t0 - (TURNS.waited() - waited))

    def _run_together(
        self, jobs: "tuple[_Job, ...]", media: Media, windows: tuple[Window, ...], video: object, shared: "_SharedClips | None" = None
    ) -> "list[_Outcome]":
        """Clip models over one video, group by group: each group is decoded once, for all of them
        (or taken from ``shared``, where clip models in other units read the same clips).

        A model that fails drops out with a failure note; the others go on. The
        decoding counts in the first model's time, as when it decoded the clips
        the others then found on the Media.
        """
        first = jobs[0].model
        found: dict[str, list[Observation]] = {j.name: [] for j in jobs}
        seconds = dict.fromkeys(found, 0.0)
        failed: dict[str, str] = {}
        try:
            t0 = time.perf_counter()
            key = clip_key(first)
            clips = shared.get(key) if shared is not None else motion_clips(media, windows, key[0], key[1], rate=key[2])
            for i in range(len(clips)):
                clip = clips.clip(i)
                seconds[jobs[0].name] += time.perf_counter() - t0
                for job in jobs:
                    if job.name in failed:
                        continue
                    t0, waited = time.perf_counter(), TURNS.waited()
                    try:
                        with self._model_locks.setdefault(job.name, threading.Lock()), _turn(job.card):
                            found[job.name].extend(job.model.describe_clip(clip))
                    except Exception as exc:  # noqa: BLE001 - one broken model must not lose the others
                        failed[job.name] = _failure(job.name, exc, video)
                    seconds[job.name] += time.perf_counter() - t0 - (TURNS.waited() - waited)
                if len(failed) == len(jobs):
                    break
                del clip  # before the next group decodes: one group's frames at a time
                t0 = time.perf_counter()
        except Exception as exc:  # noqa: BLE001 - the clips cannot be decoded: every model fails as it would alone
            failed.update((j.name, _failure(j.name, exc, video)) for j in jobs if j.name not in failed)
        return [
            _Outcome(j.name, failure=failed[j.name]) if j.name in failed else self._outcome(j, Perception(found[j.name]), seconds[j.name])
            for j in jobs
        ]

    def _outcome(self, job: "_Job", found: Perception, seconds: float, store: bool = True) -> "_Outcome":
        """The outcome of a run (stored in the cache when ``store``) or of a cache hit."""
        cache = self.cache
        if store and job.key is not None and cache is not None:
            cache.put(job.key, list(found.observations), model=job.name, video_sha256=job.video_sha256)
            if found.notes:
                cache.put_notes(job.key, list(found.notes), model=job.name, video_sha256=job.video_sha256)
        notes = found.notes + ((job.card.note,) if job.card.note else ())
        return _Outcome(job.name, found.observations, seconds=seconds, notes=notes)


@dataclass(frozen=True)
class _Outcome:
    """What one model produced for one video (``observations`` None: skipped or failed)."""

    name: str
    observations: tuple[Observation, ...] | None = None
    failure: str | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Job:
    """A model that must run on a video (it was not skipped, loaded, and had no cached result)."""

    name: str
    card: ModelCard
    model: Any
    key: str | None
    video_sha256: str


class _SharedClips:
    """The motion clips of one video for clip models in separate units: made once, kept whole
    (only for a video of one group per clip: its memory is that clip)."""

    def __init__(self, media: Media, windows: tuple[Window, ...]) -> None:
        self._media, self._windows = media, windows
        self._lock = threading.Lock()
        self._clips: dict[tuple[int, float, float | None], MotionClips] = {}

    def get(self, key: tuple[int, float, float | None]) -> MotionClips:
        """The clips of a :func:`clip_key` (the first caller decodes; others wait)."""
        with self._lock:
            if key not in self._clips:
                frames, group_s, rate = key
                self._clips[key] = motion_clips(self._media, self._windows, frames, group_s, keep=True, rate=rate)
            return self._clips[key]


def _one_group(jobs: list["_Job"], windows: tuple[Window, ...]) -> bool:
    """Whether every clip model among ``jobs`` reads the video as a single group (one clip)."""
    return all(len(group_windows(windows, j.model.group_s)) <= 1 for j in jobs if isinstance(j.model, ClipModel))


def _turn(card: ModelCard) -> AbstractContextManager[None]:
    """The turn a model's run takes: alone on the machine for a heavy model, none for a light one
    (its runtime takes a light turn per inference step)."""
    return TURNS.heavy() if card.heavy else nullcontext()


def _units(jobs: list[_Job], together: bool = True) -> list[tuple[_Job, ...]]:
    """Jobs grouped into what runs as one: clip models reading the same clips together (when
    ``together``: one after another, each group decoded once for all), others alone.

    Otherwise every model is a unit of its own (side by side, for a video of one group: see
    :meth:`Perceiver.describe`).
    """
    units: list[list[_Job]] = []
    groups: dict[tuple[int, float, float | None], list[_Job]] = {}
    for job in jobs:
        if together and isinstance(job.model, ClipModel):
            clips = clip_key(job.model)
            if clips in groups:
                groups[clips].append(job)
                continue
            groups[clips] = [job]
            units.append(groups[clips])
        else:
            units.append([job])
    return [tuple(u) for u in units]


def warm(model: PerceptionModel) -> None:
    """Load a model's weights now, for a model that loads them lazily (a cache hit never needs them)."""
    load = getattr(model, "load", None)
    if callable(load):
        load()


def _load_failure(exc: BaseException) -> str:
    """Why a model could not load, in one line."""
    if isinstance(exc, VidsenseError):
        return str(exc)
    return f"cannot load ({type(exc).__name__}: {exc})"


def _failure(name: str, exc: BaseException, video: object) -> str:
    """The timeline's note for a model that raised ``exc`` on ``video``."""
    if isinstance(exc, VidsenseError):
        return f"{name}: {exc}"
    log.warning("%s failed on %s: %s", name, video, exc, exc_info=log.isEnabledFor(logging.DEBUG))
    return f"{name}: {type(exc).__name__}: {exc}"
