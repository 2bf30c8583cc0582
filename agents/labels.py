"""Label sets: the candidates a video is classified into.

A label set comes from a bundled name (``ucf101``, ``hmdb51``, ``kinetics400``,
``kinetics700``, ``ssv2``), a text file with one label per line, or an inline
comma-separated list. Outputs always use a label exactly as the set spells it;
the human-readable form that prompts and embeddings read is derived here, once.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

from vidsense.services.errors import InputError
from vidsense.services.schema import LabelSet

log = logging.getLogger(__name__)

BUNDLED: dict[str, str] = {
    "ucf101": "ucf101.txt",
    "hmdb51": "hmdb51.txt",
    "kinetics400": "kinetics400.txt",
    "kinetics700": "kinetics700.txt",
    "ssv2": "ssv2.txt",
}
# Accepted spellings of the bundled names.
ALIASES: dict[str, str] = {"k400": "kinetics400", "k700": "kinetics700", "something-something-v2": "ssv2", "sthsthv2": "ssv2"}

# Bundled labels whose mechanical readable form misleads a language model or a
# sentence embedding ("pullup" became "pulls up her pants", "wave" a water wave
# in generated descriptions). Outputs still use the label as the set spells it.
READABLE_OVERRIDES: dict[str, dict[str, str]] = {
    "hmdb51": {
        "catch": "catch something thrown",
        "dive": "dive into water",
        "fall_floor": "fall to the floor",
        "flic_flac": "flic flac (back handspring)",
        "golf": "golf swing",
        "hit": "hit something with a stick or hand",
        "kick": "kick something",
        "kiss": "kiss someone",
        "pick": "pick something up",
        "pullup": "pull ups on a bar",
        "pushup": "push ups on the floor",
        "shoot_ball": "shoot a ball at a basket",
        "shoot_bow": "shoot a bow and arrow",
        "situp": "sit ups on the floor",
        "swing_baseball": "swing a baseball bat",
        "sword": "sword fight",
        "turn": "turn around",
        "wave": "wave a hand",
    },
}

def bundled_names() -> list[str]:
    """Names of the label sets that ship with vidsense."""
    return list(BUNDLED)


@lru_cache(maxsize=16)
def _bundled(name: str) -> LabelSet:
    text = resources.files("vidsense.agents").joinpath("labelsets", BUNDLED[name]).read_text(encoding="utf-8")
    ls = LabelSet.from_labels(name, text.splitlines())
    over = READABLE_OVERRIDES.get(name, {})
    return replace(ls, readable=tuple(over.get(lab, r) for lab, r in zip(ls.labels, ls.readable)))


def load_labels(spec: str | list[str] | tuple[str, ...] | LabelSet) -> LabelSet:
    """Resolve ``--labels``: a bundled name, a path to a text file, or ``"a,b,c"``.

    A list or tuple is taken as the labels themselves.

    Raises:
        InputError: unknown name, unreadable file, or an empty list.
    """
    if isinstance(spec, LabelSet):
        return spec
    if isinstance(spec, (list, tuple)):
        return LabelSet.from_labels("custom", list(spec))
    raw = spec.strip()
    if not raw:
        raise InputError("labels: label list is empty")
    key = ALIASES.get(raw.lower(), raw.lower())
    if key in BUNDLED:
        return _bundled(key)
    path = Path(raw).expanduser()
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read label file ({exc})") from None
        return LabelSet.from_labels(path.stem, text.splitlines(), source=str(path))
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a label file with one label per line")
    if "," in raw:
        return LabelSet.from_labels("custom", raw.split(","), source="labels")
    if path.suffix or "/" in raw:
        raise InputError(f"{raw}: label file not found")
    raise InputError(f"unknown label set {raw!r}; use one of {', '.join(BUNDLED)}, a file with one label per line, or 'a,b,c'")
