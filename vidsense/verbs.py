"""The verbs of vidsense, declared once.

Each verb is a :class:`~vidsense.pipeline.Pipeline` method, a ``vidsense``
command and a ``POST /v1/<verb>`` route of the HTTP API; the CLI's help and the
API's docs take their one-line summary from here, and the server takes whether
the verb needs a label set.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verb:
    """One verb: its name, what it does in a line, and whether it needs a label set."""

    name: str
    summary: str
    needs_labels: bool


VERBS: dict[str, Verb] = {
    v.name: v
    for v in (
        Verb("classify", "Classify videos into a label set, zero-shot; one video or a whole batch.", needs_labels=True),
        Verb("describe", "Print a video's timeline: every modality as timed text.", needs_labels=False),
        Verb("explain", "Classify a video and explain the prediction: which concepts, when, and how they relate in time.", needs_labels=True),
    )
}
