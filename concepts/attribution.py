"""Captum attributions of the concept model's decision: Integrated Gradients and Feature Ablation."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from vidsense.concepts.activations import Activations
from vidsense.concepts.motif import MotifModel
from vidsense.concepts.schema import AblationScore, CellScore, ConceptScore, FeatureAblation, IntegratedGradients


def integrated_gradients(
    model: MotifModel, x: torch.Tensor, target: int, texts: Sequence[str], kinds: Sequence[str], n_steps: int = 64, top: int = 10, sources: Sequence[str] = ()
) -> IntegratedGradients:
    """Captum Integrated Gradients of the ``target`` logit over the ``[T, C]`` input (baseline zeros)."""
    from captum.attr import IntegratedGradients as CaptumIG

    def logit(inp: torch.Tensor) -> torch.Tensor:
        return model(inp).logits[:, target]

    baseline = torch.zeros_like(x)
    attr, delta = CaptumIG(logit).attribute(x, baselines=baseline, n_steps=n_steps, return_convergence_delta=True)
    attr = attr[0].detach()
    with torch.no_grad():
        diff = float(logit(x)[0] - logit(baseline)[0])
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

    def prob(inp: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(inp).logits, dim=1)[:, target]

    with torch.no_grad():
        base = float(prob(x)[0])
        t = x.shape[1]
        groups = torch.arange(t).view(1, t, 1).expand_as(x)
        attr = CaptumFA(prob).attribute(x, baselines=0.0, feature_mask=groups)[0, :, 0]
        by_window = [AblationScore(group=str(i), probability=base - float(attr[i]), delta=float(attr[i])) for i in range(t)]
        by_modality = []
        for m, acts in modality_activations.items():
            p = float(prob(torch.from_numpy(acts.matrix).unsqueeze(0))[0])
            by_modality.append(AblationScore(group=m, probability=p, delta=base - p))
    return FeatureAblation(base_probability=base, by_window=by_window, by_modality=by_modality)


def _scores(indices: Sequence[int], values: torch.Tensor, texts: Sequence[str], kinds: Sequence[str], sources: Sequence[str] = ()) -> list[ConceptScore]:
    positive = float(sum(max(float(values[j]), 0.0) for j in indices)) or 1.0
    return [
        ConceptScore(concept=j, text=texts[j], kind=kinds[j], value=float(values[j]), share=max(float(values[j]), 0.0) / positive, source=sources[j] if sources else "")
        for j in indices
    ]


def _floats(t: torch.Tensor) -> list[float]:
    return [round(float(v), 6) for v in t.detach().flatten()]
