"""Contextual-calibration priors kept on disk, so a new process does not score them again.

A prior is the LLM's log-likelihood of each candidate label given a
content-free timeline. It depends only on the model's weights, the rendered
prompt (template, candidates, hints) and the scored strings, so those, with
:data:`PRIOR_FORMAT`, make its key. Computing one costs a prompt prefill and a
candidate pass (about 1.8 s a clip on 2 cores); reading it, a file open.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vidsense.services.files import read_cached, write_atomically

log = logging.getLogger(__name__)

# Bumped whenever what a prior means changes (scoring, terminator, file layout): old files are then never read.
PRIOR_FORMAT = 1


def priors_dir(home: Path) -> Path:
    """Where the priors of the models under model home ``home`` are stored."""
    return Path(home) / "priors"


@dataclass(frozen=True)
class PriorCache:
    """Priors as JSON files, one per (model, content-free prompt, candidates).

    Attributes:
        root: the folder (see :func:`priors_dir`).
    """

    root: Path

    def path(self, model: str, prompt: str, candidates: Sequence[str]) -> Path:
        """The file of the prior of ``candidates`` after ``prompt`` under model identity ``model``."""
        key = json.dumps([PRIOR_FORMAT, model, hashlib.sha256(prompt.encode("utf-8")).hexdigest(), list(candidates)], ensure_ascii=True)
        return Path(self.root) / f"{hashlib.sha256(key.encode('ascii')).hexdigest()[:32]}.json"

    def load(self, model: str, prompt: str, candidates: Sequence[str]) -> np.ndarray | None:
        """The stored prior, or ``None`` when there is none or it cannot be used (a damaged file is logged, not raised)."""
        path = self.path(model, prompt, candidates)
        raw = read_cached(path, "the cached calibration prior", log, "computing it again")
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            prior = [float(x) for x in data["prior"]]
            ok = data["format"] == PRIOR_FORMAT and data["model"] == model and data["candidates"] == list(candidates)
            ok = ok and len(prior) == len(candidates) and all(math.isfinite(x) for x in prior)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: damaged calibration prior (%s); computing it again", path, exc)
            return None
        if not ok:
            log.warning("%s: calibration prior does not match its key; computing it again", path)
            return None
        return np.array(prior)

    def save(self, model: str, prompt: str, candidates: Sequence[str], prior: np.ndarray) -> Path | None:
        """Store ``prior``; returns the file, or ``None`` when it could not be written (logged: the cache is an optimisation)."""
        path = self.path(model, prompt, candidates)
        data = {"format": PRIOR_FORMAT, "model": model, "candidates": list(candidates), "prior": [float(x) for x in prior]}
        try:
            write_atomically(path, json.dumps(data, ensure_ascii=False).encode("utf-8"))
        except OSError as exc:
            log.warning("%s: cannot store the calibration prior (%s)", path, exc)
            return None
        return path
