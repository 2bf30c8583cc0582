"""Captum attributions of the concept model's decision: Integrated Gradients and Feature Ablation."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from vidsense.concepts.activations import Activations
from vidsense.concepts.explanation import AblationScore, CellScore, ConceptScore, FeatureAblation, IntegratedGradients
from vidsense.concepts.motif import MotifModel


def integrated_gradients(
    model: MotifModel, x: torch.Tensor, target: int, texts: Sequence[str], kinds: Sequence[str], n_steps: int = 64, top: int = 10, sources: Sequence[str] = ()
) -> IntegratedGradients:
    """Captum Integrated Gradients of the ``target`` logit over the ``[T, C]`` input (baseline zeros).

    A column that is zero in every window lies on the baseline the whole path, so its
    attribution is exactly zero: the integral runs over the active columns only
    (:meth:`MotifModel.restricted`, same logits), which is most of the cost saved on a
    bank of thousands of evidence concepts.
    """
    from captum.attr import IntegratedGradients as CaptumIG

    active = _active(x)
    sub = model.restricted(active.tolist())

    def logit(inp: torch.Tensor) -> torch.Tensor:
        return sub(inp).logits[:, target]

    xs = x[:, :, active]
    baseline = torch.zeros_like(xs)
    part, delta = CaptumIG(logit).attribute(xs, baselines=baseline, n_steps=n_steps, return_convergence_delta=True)
    attr = torch.zeros_like(x[0])
    attr[:, active] = part[0].detach()
    with torch.no_grad():
        diff = float(logit(xs)[0] - logit(baseline)[0])
    by_concept = attr.sum(dim=0)
    top_c = [int(j) for j in torch.argsort(by_concept.abs(), descending=True)[:top] if by_concept[j] != 0]
    flat = torch.argsort(attr.abs().flatten(), descending=True)[:top]
    cells = [divmod(int(i), attr.shape[1]) for i in flat]
    return IntegratedGradients(
        n_steps=n_steps,
        convergence_delta=float(delta.abs().max()),
        output_difference=diff,
        by_concept=_scores(top_c, by_concept, texts, kinds, sources),
        by_window=_floats(attr.sum(dim=1)),
        top_cells=[CellScore(window=t, concept=j, text=texts[j], value=float(attr[t, j])) for t, j in cells],
    )


def feature_ablation(model: MotifModel, x: torch.Tensor, target: int, modality_activations: Mapping[str, Activations]) -> FeatureAblation:
    """Probability drop of ``target`` with each window zeroed (Captum) and each modality left out (recomputed)."""
    from captum.attr import FeatureAblation as CaptumFA

    inputs = {m: torch.from_numpy(acts.matrix).unsqueeze(0) for m, acts in modality_activations.items()}
    # Every input here is zero outside the union of their active columns: the restricted model is exact.
    active = _active(x, *inputs.values())
    sub = model.restricted(active.tolist())

    def prob(inp: torch.Tensor) -> torch.Tensor:
        return torch.softmax(sub(inp[:, :, active]).logits, dim=1)[:, target]

    with torch.no_grad():
        base = float(prob(x)[0])
        t = x.shape[1]
        groups = torch.arange(t).view(1, t, 1).expand_as(x)
        attr = CaptumFA(prob).attribute(x, baselines=0.0, feature_mask=groups)[0, :, 0]
        by_window = [AblationScore(group=str(i), probability=base - float(attr[i]), delta=float(attr[i])) for i in range(t)]
        by_modality = []
        for m, inp in inputs.items():
            p = float(prob(inp)[0])
            by_modality.append(AblationScore(group=m, probability=p, delta=base - p))
    return FeatureAblation(base_probability=base, by_window=by_window, by_modality=by_modality)


def _active(*inputs: torch.Tensor) -> torch.Tensor:
    """Columns non-zero in any window of any input; one column when none is, so a path still has an input."""
    used = torch.stack([inp.reshape(-1, inp.shape[-1]).abs().sum(dim=0) for inp in inputs]).sum(dim=0) > 0
    return torch.nonzero(used).flatten() if bool(used.any()) else torch.zeros(1, dtype=torch.long)


def _scores(indices: Sequence[int], values: torch.Tensor, texts: Sequence[str], kinds: Sequence[str], sources: Sequence[str] = ()) -> list[ConceptScore]:
    positive = float(sum(max(float(values[j]), 0.0) for j in indices)) or 1.0
    return [
        ConceptScore(concept=j, text=texts[j], kind=kinds[j], value=float(values[j]), share=max(float(values[j]), 0.0) / positive, source=sources[j] if sources else "")
        for j in indices
    ]


def _floats(t: torch.Tensor) -> list[float]:
    return [round(float(v), 6) for v in t.detach().flatten()]
