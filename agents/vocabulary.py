"""What the embedded perception models can name: one class list per evidence source.

The concept room turns every name here into an evidence concept (its activation
is the model's own score in a window), so the lists must be fixed and known
without loading a model: they ship as package data beside the models' code.
Each list is in the form the models write into the timeline (ImageNet's first
alias, AudioSet display names lower-cased, gesture names as
:mod:`vidsense.services.perception.motion.gestures` writes them), so a timeline observation finds
its concept by name.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Callable

from vidsense.services.perception.action.kinetics import kinetics_labels
from vidsense.services.perception.motion.gestures import GESTURES, gesture_name
from vidsense.services.perception.visual_tags import coco_labels


def _data_lines(name: str) -> tuple[str, ...]:
    text = resources.files("vidsense.services").joinpath(f"data/{name}").read_text(encoding="utf-8")
    # ImageNet's first aliases repeat twice ("crane" the bird and the machine): one concept each name.
    return tuple(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")))


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The ImageNet classifier's class names (first alias, as the ``scene`` tags write them)."""
    return _data_lines("imagenet_labels.txt")


@lru_cache(maxsize=1)
def audioset_labels() -> tuple[str, ...]:
    """YAMNet's AudioSet display names, lower-cased, alternatives joined by ``/`` (as the ``sound`` tags write them)."""
    return _data_lines("audioset_labels.txt")


# source name (as the reasoning cascade's evidence scorers call them) -> its class names.
VOCABULARIES: dict[str, Callable[[], tuple[str, ...]]] = {
    "action": kinetics_labels,
    "objects": lambda: tuple(dict.fromkeys(coco_labels().values())),
    "scene": imagenet_labels,
    "sound": audioset_labels,
    "gesture": lambda: GESTURES,
}


def vocabulary(source: str) -> tuple[str, ...]:
    """The class names of evidence source ``source`` (``action``, ``objects``, ``scene``, ``sound``, ``gesture``).

    Raises:
        KeyError: an unknown source.
    """
    return VOCABULARIES[source]()


# What a gesture whose name is not an activity usually is, in words label names use. A
# sentence encoder puts "hand to mouth" nearest "shake hands" and "handstand" (the shared
# word), and "eating, drinking or smoking" nearest "eat", "smoke" and "drink".
MEANS: dict[str, str] = {
    "hand to mouth": "eating, drinking or smoking",
    "hands on face": "covering the face",
    "bending down": "bending down to pick something up",
}


def gesture_meaning(phrase: str) -> str:
    """What the gesture in ``phrase`` (``person 1 hand to mouth (...)``) stands for when compared
    with label names (see :data:`MEANS`)."""
    name = gesture_name(phrase)
    return MEANS.get(name, name)


def transfer_vocabulary() -> tuple[str, ...]:
    """Every class name the evidence scorers carry into a label set, as they embed it (a gesture by its meaning)."""
    names: list[str] = []
    for source, listed in VOCABULARIES.items():
        names.extend(MEANS.get(n, n) if source == "gesture" else n for n in listed())
    return tuple(dict.fromkeys(names))
