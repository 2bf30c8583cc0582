"""From a video file to a :class:`Timeline`: run every configured perception model.

A :class:`Perceiver` loads its models once and reuses them for every video.
Each model's output for a video is cached (keyed by the file's content hash,
the model's card and every parameter that changes its output), so a second
run of the same video calls no model. One failing model leaves a note in the
timeline instead of losing the other modalities.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from vidsense.services import perception
from vidsense.services.errors import InputError, ProcessingError, VidsenseError
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig, PerceptionModel
from vidsense.services.timeline import MODALITIES, Observation, Timeline, Window, make_windows
from vidsense.services.video import Media

if TYPE_CHECKING:
    from vidsense.services.cache import PerceptionCache

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
        self._model_locks: dict[str, threading.Lock] = {name: threading.Lock() for name in self._models}
        self._cache = cache
        self._lock = threading.Lock()
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

    def load(self, modalities: Iterable[str] | None = None) -> None:
        """Load every model that :meth:`describe` would run (e.g. before starting threads)."""
        for name in self.selected(modalities):
            self.model(name)
        _ = self.cache

    @property
    def cache(self) -> "PerceptionCache | None":
        """The perception cache in use (None when caching is off)."""
        with self._lock:
            if self._cache is None and self.config.cache:
                from vidsense.services.cache import PerceptionCache

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
            InputError: the path is missing, a directory or empty; an unknown modality.
            ProcessingError: the file is not a decodable video, or every model failed.
        """
        mods = list(modalities) if modalities is not None else None
        media = Media.open(video, cache=self.cache)
        info = media.info
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
        # With ``perception_threads`` > 1 models run side by side (their runtimes
        # release the GIL); it pays only on machines with spare cores. Media
        # decodes under its own lock and the motion models share one decoded
        # clip kept on the Media, so sharing ``media`` is safe.
        done = 0
        done_lock = threading.Lock()

        def run(name: str) -> _Outcome:
            nonlocal done
            out = self._run_model(name, media, windows, video)
            if progress:
                with done_lock:
                    progress(name, done, len(names))
                    done += 1
            return out

        workers = max(1, min(self.config.perception_threads, len(names)))
        if workers == 1:
            outcomes = [run(n) for n in names]
        else:
            # Costly models first, so the cheap ones fill the gaps; results are
            # gathered in configured order so notes stay deterministic.
            order = sorted(names, key=lambda n: -self.card(n).cost)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="perception") as pool:
                futures = {n: pool.submit(run, n) for n in order}
                outcomes = [futures[n].result() for n in names]
        for o in outcomes:
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
        notes.extend(f"model failed: {f}" for f in failures)
        observations.sort(key=lambda o: (o.window, MODALITIES.index(o.modality), o.start_s))
        return Timeline(
            video=info,
            windows=windows,
            observations=tuple(observations),
            models=tuple(ran),
            notes=tuple(notes),
            timings=timings,
        )

    def _run_model(self, name: str, media: Media, windows: tuple[Window, ...], video: object) -> "_Outcome":
        """One model over one video: cached observations, fresh ones, a skip or a failure."""
        info = media.info
        try:
            card = self.card(name)
            if (card.needs_video and not info.has_video) or (card.needs_audio and not info.has_audio):
                return _Outcome(name)
            model = self.model(name)
        except VidsenseError as exc:
            return _Outcome(name, failure=f"{name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a model that cannot load must not lose the other modalities
            return _Outcome(name, failure=f"{name}: cannot load ({type(exc).__name__}: {exc})")
        cache = self.cache
        key = None
        cached = None
        if cache is not None:
            from vidsense.services.cache import cache_key

            key = cache_key(info.sha256, card, model.params(), windows)
            cached = cache.get(key)
        t0 = time.perf_counter()
        if cached is not None:
            # Notes the model returned when it ran (e.g. the speech language) are stored beside its observations.
            found = Perception(tuple(cached), tuple(cache.get_notes(key) or ()))
        else:
            try:
                with self._model_locks.setdefault(name, threading.Lock()):
                    found = model.describe(media, windows)
                if not isinstance(found, Perception):
                    raise TypeError(f"describe returned a {type(found).__name__}, expected a Perception")
            except VidsenseError as exc:
                return _Outcome(name, failure=f"{name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - one broken model must not lose the other modalities
                log.warning("%s failed on %s: %s", name, video, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                return _Outcome(name, failure=f"{name}: {type(exc).__name__}: {exc}")
            if key is not None:
                cache.put(key, list(found.observations), model=name, video_sha256=info.sha256)
                if found.notes:
                    cache.put_notes(key, list(found.notes), model=name, video_sha256=info.sha256)
        seconds = time.perf_counter() - t0
        notes = found.notes + ((card.note,) if card.note else ())
        return _Outcome(name, found.observations, seconds=seconds, notes=notes)


@dataclass(frozen=True)
class _Outcome:
    """What one model produced for one video (``observations`` None: skipped or failed)."""

    name: str
    observations: tuple[Observation, ...] | None = None
    failure: str | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
