"""Batch engines: where the videos of a batch run.

One seam, :class:`BatchEngine`: an engine is handed a Pipeline *factory*, the
videos, the label set and the classify options, and yields each video's result
(or :class:`~vidsense.batch.BatchError`) as it finishes. :class:`LocalEngine`
calls the factory once and shares that Pipeline between threads of this process;
:class:`~vidsense.ray_engine.RayEngine` calls it inside each of its actors.
Engines are picked by name from :data:`ENGINES` (``"module:attr"``, so Ray is
imported only when asked for), which is how the CLI's ``--engine`` finds them:
neither the Pipeline nor the CLI names an engine.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol

from vidsense.batch import BatchItem, classify_many
from vidsense.services.errors import InputError
from vidsense.services.registry import resolve
from vidsense.services.schema import LabelSet

if TYPE_CHECKING:
    from vidsense.pipeline import Pipeline

PipelineFactory = Callable[[], "Pipeline"]


class BatchEngine(Protocol):
    """Runs a batch: every video of ``videos`` classified by a Pipeline that ``make_pipeline`` builds."""

    def classify_many(
        self,
        make_pipeline: PipelineFactory,
        videos: Iterable[str | os.PathLike[str]],
        labelset: LabelSet,
        *,
        workers: int = 1,
        ordered: bool = False,
        **options: Any,
    ) -> Iterator[BatchItem]:
        """Yield each video's :class:`~vidsense.results.ClassificationResult` or
        :class:`~vidsense.batch.BatchError` as it finishes (in input order when ``ordered``).

        ``options`` are :meth:`Pipeline.classify`'s keywords (``top_k``, ``reasoner``, ...).
        """
        ...


@dataclass(frozen=True)
class LocalEngine:
    """Threads of this process sharing one Pipeline: every model loads once, whatever ``workers`` is
    (see :mod:`vidsense.batch` for what overlaps)."""

    def classify_many(
        self,
        make_pipeline: PipelineFactory,
        videos: Iterable[str | os.PathLike[str]],
        labelset: LabelSet,
        *,
        workers: int = 1,
        ordered: bool = False,
        **options: Any,
    ) -> Iterator[BatchItem]:
        pipe = make_pipeline()
        one = functools.partial(pipe.classify, labels=labelset, **options)
        route = pipe.route(options.get("reasoner"), options.get("budget"))[0]
        return classify_many(one, videos, workers=workers, ordered=ordered, prepare=lambda: pipe.load(options.get("modalities"), route))


class SharedPipeline:
    """The factory a Pipeline hands an engine: in this process it returns that very Pipeline (its
    models already loaded); pickled to another process (a Ray actor) it arrives as a factory that
    builds a Pipeline from the same settings there."""

    def __init__(self, pipe: "Pipeline") -> None:
        self.pipe = pipe

    def __call__(self) -> "Pipeline":
        return self.pipe

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _pipeline_from, (type(self.pipe), self.pipe.settings)


def _pipeline_from(cls: type, settings: Any) -> PipelineFactory:
    """What a :class:`SharedPipeline` unpickles to: a factory of a new Pipeline with the same settings."""
    return functools.partial(cls, settings=settings)


# name -> "module:attr" of a class whose dataclass fields are the engine's options (services/registry.py).
ENGINES: dict[str, str] = {
    "local": "vidsense.engines:LocalEngine",
    "ray": "vidsense.ray_engine:RayEngine",
}


def make_engine(name: str, **options: Any) -> BatchEngine:
    """The engine called ``name``, built with those of ``options`` it takes (the others are left:
    ``--ray-address`` means nothing to the local engine).

    Raises:
        InputError: an unknown name, or an engine that cannot run here (ray not installed).
    """
    if name not in ENGINES:
        raise InputError(f"--engine: expected {' or '.join(ENGINES)}, got {name!r}")
    cls = resolve(ENGINES, name, "batch engine")
    takes = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in options.items() if k in takes and v is not None})
