"""Interventions on the concept model: remove / boost a concept, drop a window or a modality, replace the attention."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from vidsense.concepts.activations import Activations
from vidsense.concepts.explanation import InterventionResult, InterventionSpec
from vidsense.concepts.motif import MotifModel
from vidsense.services.errors import InputError

# Interventions that compare windows, meaningless on a video of one window.
NEEDS_WINDOWS = ("drop_window",)


def default_interventions(
    top_concepts: Sequence[int], top_windows: Sequence[int], modality_activations: Mapping[str, Activations], boost: float = 2.0, windows: int = 2
) -> list[InterventionSpec]:
    """The standard set: remove each of the top 3 concepts, boost the top one, drop the top window
    (only with ``windows`` >= 2), drop each modality, every attention mode."""
    specs = [InterventionSpec("remove_concept", concept=j) for j in top_concepts[:3]]
    specs += [InterventionSpec("boost_concept", concept=j, factor=boost) for j in top_concepts[:1]]
    specs += [InterventionSpec("drop_window", window=t) for t in top_windows[:1] if windows >= 2]
    specs += [InterventionSpec("drop_modality", modality=m) for m in modality_activations]
    specs += [InterventionSpec("attention", attention=mode) for mode in ("identity", "uniform", "reversed")]
    return specs


def intervene(
    model: MotifModel,
    x: torch.Tensor,
    spec: InterventionSpec,
    target: int,
    labels: Sequence[str],
    texts: Sequence[str],
    modality_activations: Mapping[str, Activations] | None = None,
    before: torch.Tensor | None = None,
) -> InterventionResult:
    """Re-predict under one intervention and record what changed (``before``: the class
    probabilities of ``x`` when the caller has them, so a set of interventions costs one pass each).

    Raises:
        InputError: the intervention names a concept, window or modality that does not exist.
    """
    inp, kwargs, name, factor = x, {}, "", None
    if spec.action in ("remove_concept", "boost_concept"):
        if spec.concept is None or not 0 <= spec.concept < len(texts):
            raise InputError(f"intervention {spec.action}: no concept #{spec.concept}")
        factor = 0.0 if spec.action == "remove_concept" else spec.factor
        kwargs["concept_scale"] = {spec.concept: factor}
        name = texts[spec.concept]
    elif spec.action == "drop_window":
        if spec.window is None or not 0 <= spec.window < x.shape[1]:
            raise InputError(f"intervention drop_window: no window #{spec.window}")
        if x.shape[1] < 2:
            raise InputError("intervention drop_window: the video has a single window")
        kwargs["drop_windows"] = [spec.window]
        name = str(spec.window)
    elif spec.action == "drop_modality":
        acts = (modality_activations or {}).get(spec.modality or "")
        if acts is None:
            raise InputError(f"intervention drop_modality: no activations without modality {spec.modality!r}")
        inp = torch.from_numpy(acts.matrix).unsqueeze(0)
        name = spec.modality or ""
    else:
        kwargs["attention"] = spec.attention
        name = str(spec.attention)
    with torch.no_grad():
        if before is None:
            before = torch.softmax(model(x).logits[0], dim=0)
        after = torch.softmax(model(inp, **kwargs).logits[0], dim=0)
    lb, la = int(before.argmax()), int(after.argmax())
    return InterventionResult(
        action=spec.action,
        target=name,
        factor=factor,
        label_before=labels[lb],
        label_after=labels[la],
        probability_before=float(before[target]),
        probability_after=float(after[target]),
        changed=lb != la,
    )
