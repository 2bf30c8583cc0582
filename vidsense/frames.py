"""Results as a pandas DataFrame, one row per video, for analysts."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from vidsense.batch import BatchError
from vidsense.results import ClassificationResult, ExplanationResult

COLUMNS = (
    "video", "label", "score", "top_k", "labelset", "reasoner", "low_confidence",
    "sha256", "total_s", "perception_s", "reasoning_s", "concept_label", "agrees", "error",
)


def _row_from_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    """A row from a result's ``to_dict()`` (or a line of ``vidsense classify --output``)."""
    if "classification" in d:
        row = _row_from_dict(d["classification"])
        expl = d.get("explanation") or {}
        row["concept_label"] = (expl.get("prediction") or {}).get("label")
        row["agrees"] = (expl.get("agreement") or {}).get("agrees")
        return row
    top = d.get("top_k") or []
    timings = d.get("timings") or {}
    return {
        "video": d.get("video"),
        "label": d.get("label"),
        "score": top[0]["score"] if top else None,
        "top_k": [t["label"] for t in top],
        "labelset": d.get("labelset"),
        "reasoner": d.get("reasoner"),
        "low_confidence": d.get("low_confidence"),
        "sha256": d.get("sha256") or None,
        "total_s": timings.get("total"),
        "perception_s": timings.get("perception"),
        "reasoning_s": timings.get("reasoning"),
        "error": d.get("error"),
    }


def to_dataframe(results: Iterable[ClassificationResult | ExplanationResult | BatchError | Mapping[str, Any]]):
    """One row per video, with the columns in :data:`COLUMNS`.

    Args:
        results: SDK results (:class:`ClassificationResult`,
            :class:`ExplanationResult`, :class:`BatchError` from
            :meth:`Pipeline.classify_many`) or their ``to_dict()`` form, e.g. the
            lines of a ``vidsense classify --output results.jsonl`` file.

    Returns:
        A ``pandas.DataFrame``. ``top_k`` holds the ranked labels as a list,
        ``score`` the top-1 probability; failed videos have ``error`` set and no
        label; ``concept_label`` / ``agrees`` are filled for explanations only.

    Example:
        >>> import json, vidsense
        >>> rows = [json.loads(line) for line in open("results.jsonl")]  # doctest: +SKIP
        >>> vidsense.to_dataframe(rows).groupby("label").size()  # doctest: +SKIP
    """
    import pandas as pd

    rows = [_row_from_dict(r if isinstance(r, Mapping) else r.to_dict()) for r in results]
    return pd.DataFrame(rows, columns=list(COLUMNS))
