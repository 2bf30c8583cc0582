"""The MoTIF concept bottleneck (Knab et al., "Concepts in Motion").

Input: a ``[windows x concepts]`` activation matrix. Per window and concept:

1. **Affine + softplus** (per concept, non-negative): ``a = max(softplus(s*x + b) - log 2, 0)``,
   so zero evidence gives exactly zero and every concept value is >= 0.
2. **Temporal self-attention per concept**: each concept channel attends over
   the windows on its own (no mixing between concepts), giving one ``T x T``
   map per concept. Queries and keys come from the channel's own value plus a
   learned preference for nearby windows; the values are the activations
   themselves, and the output is the convex mix ``z = (1-g)*a + g*(A @ a)``
   with a per-concept gate ``g``, so ``z`` stays in activation units and >= 0.
3. **Per-window linear classifier** ``l_t = z_t W^T + c`` (``W >= 0`` optional).
4. **Log-sum-exp pooling over time** with temperature ``tau``:
   ``logit = tau * log(mean_t exp(l_t / tau))``; small ``tau`` approaches the
   maximum over windows, large ``tau`` the mean. ``softmax_t(l_t / tau)`` is then
   each window's weight in the pooled score ("time importance").

Interventions are arguments of :meth:`MotifModel.forward` (scale or remove a
concept channel, drop windows, replace the attention maps), as in MoTIF.

Zero-shot: :func:`zero_shot_model` sets ``W`` to the bank's support matrix
(each class row normalised to sum 1), a sharp affine that treats cosine
similarity above ~0.15 as evidence, and mostly-local attention, so the model
classifies with no training.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vidsense.concepts.bank import ConceptBank
from vidsense.services.errors import InputError, ModelError

AttentionMode = Literal["identity", "uniform", "reversed"]
ATTENTION_MODES: tuple[AttentionMode, ...] = ("identity", "uniform", "reversed")
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"
CARD_VERSION = 1


@dataclass(frozen=True)
class MotifConfig:
    """Shape and hyper-parameters of a :class:`MotifModel`.

    Attributes:
        n_concepts: number of concept channels (bank size).
        n_classes: number of labels.
        attn_dim: query/key width per concept channel.
        tau: log-sum-exp pooling temperature (> 0).
        nonneg: keep classifier weights >= 0 (each concept can only add evidence).
        dropout: dropout on the attention maps while training.
    """

    n_concepts: int
    n_classes: int
    attn_dim: int = 4
    tau: float = 0.5
    nonneg: bool = True
    dropout: float = 0.0


class MotifOutput(NamedTuple):
    """What one forward pass returns (batch-first).

    Attributes:
        logits: ``[B, K]`` pooled class scores.
        logits_t: ``[B, T, K]`` per-window class scores.
        concepts_t: ``[B, T, C]`` concept values after affine, attention and interventions.
        affine_t: ``[B, T, C]`` concept values after the affine only.
        attention: ``[B, C, T, T]`` per-concept attention (rows sum to 1 over kept windows).
        time_importance: ``[B, T]`` softmax weight of each window for the predicted class.
        mask: ``[B, T]`` True where a window was padded or dropped.
    """

    logits: torch.Tensor
    logits_t: torch.Tensor
    concepts_t: torch.Tensor
    affine_t: torch.Tensor
    attention: torch.Tensor
    time_importance: torch.Tensor
    mask: torch.Tensor


class MotifModel(nn.Module):
    """Per-concept affine, per-concept temporal attention, per-window classifier, LSE pooling."""

    def __init__(self, config: MotifConfig) -> None:
        super().__init__()
        c, d = config.n_concepts, config.attn_dim
        self.config = config
        self.scale = nn.Parameter(torch.ones(c))
        self.shift = nn.Parameter(torch.zeros(c))
        self.wq = nn.Parameter(torch.zeros(c, d))
        self.bq = nn.Parameter(torch.zeros(c, d))
        self.wk = nn.Parameter(torch.zeros(c, d))
        self.bk = nn.Parameter(torch.zeros(c, d))
        # softplus(locality) is how many logits per window of distance attention loses.
        self.locality = nn.Parameter(torch.full((c,), -4.0))
        self.gate = nn.Parameter(torch.zeros(c))
        self.weight = nn.Parameter(torch.zeros(config.n_classes, c))
        self.bias = nn.Parameter(torch.zeros(config.n_classes))
        self.attn_dropout = nn.Dropout(config.dropout)

    def classifier_weight(self) -> torch.Tensor:
        """``[K, C]`` weights as used in the forward pass (clamped at 0 when ``nonneg``)."""
        return self.weight.clamp(min=0.0) if self.config.nonneg else self.weight

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        concept_scale: Mapping[int, float] | None = None,
        drop_windows: Sequence[int] | None = None,
        attention: AttentionMode | None = None,
    ) -> MotifOutput:
        """Classify activation sequences.

        Args:
            x: ``[T, C]`` or ``[B, T, C]`` activations.
            mask: ``[B, T]`` True for padded windows (batches of unequal length).
            concept_scale: intervention: multiply concept channels (``{j: 0.0}``
                removes concept ``j``, ``{j: 2.0}`` doubles it) after attention.
            drop_windows: intervention: windows to remove from attention and pooling.
            attention: intervention: replace every concept's attention map by
                ``identity`` (each window sees only itself), ``uniform`` (all kept
                windows equally) or ``reversed`` (each window attends where its
                mirror-image window in time attended: keys flipped in time).
        """
        if x.dim() == 2:
            x = x.unsqueeze(0)
        b, t, c = x.shape
        if c != self.config.n_concepts:
            raise ValueError(f"input has {c} concepts, model expects {self.config.n_concepts}")
        pad = torch.zeros(b, t, dtype=torch.bool, device=x.device) if mask is None else mask.to(torch.bool).clone()
        if drop_windows:
            pad[:, list(drop_windows)] = True
        if bool(pad.all(dim=1).any()):
            raise ValueError("every window of a video was dropped or padded")

        a = (F.softplus(x * self.scale + self.shift) - math.log(2.0)).clamp(min=0.0)  # [B,T,C]
        attn = self._attention(a, pad, attention)  # [B,C,T,T]
        mixed = torch.einsum("bctu,buc->btc", attn, a)
        g = torch.sigmoid(self.gate)
        z = (1.0 - g) * a + g * mixed
        if concept_scale:
            factors = torch.ones(c, device=x.device, dtype=z.dtype)
            for j, s in concept_scale.items():
                factors[int(j)] = float(s)
            z = z * factors

        logits_t = z @ self.classifier_weight().T + self.bias  # [B,T,K]
        tau = self.config.tau
        valid = (~pad).unsqueeze(-1)
        masked = (logits_t / tau).masked_fill(~valid, float("-inf"))
        n_valid = valid.sum(dim=1).clamp(min=1).to(logits_t.dtype)  # [B,1]
        logits = tau * (torch.logsumexp(masked, dim=1) - torch.log(n_valid))
        with torch.no_grad():
            pred = logits.argmax(dim=1)
            sel = masked.gather(2, pred[:, None, None].expand(b, t, 1)).squeeze(-1)
            importance = torch.softmax(sel, dim=1)
        return MotifOutput(logits, logits_t, z, a, attn, importance, pad)

    @torch.no_grad()
    def restricted(self, columns: Sequence[int]) -> "MotifModel":
        """This model reading only ``columns``: the same logits for any input that is zero elsewhere.

        Channels never mix, so a channel whose input is zero in every window holds the constant
        ``affine(0)`` there (attention rows sum to one, so mixing keeps it); its share of every
        class score is folded into the bias. Attributions over a few hundred active columns of a
        bank of thousands then cost a few hundred channels' attention maps, not thousands.
        """
        cols = torch.as_tensor(list(columns), dtype=torch.long)
        sub = MotifModel(replace(self.config, n_concepts=len(cols)))
        for name in ("scale", "shift", "locality", "gate"):
            getattr(sub, name).copy_(getattr(self, name)[cols])
        for name in ("wq", "bq", "wk", "bk"):
            getattr(sub, name).copy_(getattr(self, name)[cols])
        weight = self.classifier_weight()
        sub.weight.copy_(weight[:, cols])
        rest = torch.ones(self.config.n_concepts, dtype=torch.bool)
        rest[cols] = False
        idle = (F.softplus(self.shift[rest]) - math.log(2.0)).clamp(min=0.0)
        sub.bias.copy_(self.bias + weight[:, rest] @ idle)
        return sub.eval()

    def _attention(self, a: torch.Tensor, pad: torch.Tensor, mode: AttentionMode | None) -> torch.Tensor:
        b, t, c = a.shape
        keep = (~pad)[:, None, None, :]  # [B,1,1,T] keys
        if mode == "identity":
            eye = torch.eye(t, device=a.device, dtype=a.dtype).expand(b, c, t, t)
            return eye.clone()
        if mode == "uniform":
            w = keep.to(a.dtype).expand(b, c, t, t)
            return w / w.sum(dim=-1, keepdim=True)
        if mode is not None and mode not in ATTENTION_MODES:
            raise ValueError(f"unknown attention mode {mode!r}; expected one of {', '.join(ATTENTION_MODES)}")
        q = a.unsqueeze(-1) * self.wq + self.bq  # [B,T,C,d]
        k = a.unsqueeze(-1) * self.wk + self.bk
        scores = torch.einsum("btcd,bucd->bctu", q, k) / math.sqrt(self.config.attn_dim)
        pos = torch.arange(t, device=a.device, dtype=a.dtype)
        dist = (pos[:, None] - pos[None, :]).abs()  # [T,T]
        scores = scores - F.softplus(self.locality)[None, :, None, None] * dist
        scores = scores.masked_fill(~keep, float("-inf"))
        w = self.attn_dropout(torch.softmax(scores, dim=-1))
        if mode == "reversed":
            w = w.flip(-1).masked_fill(~keep, 0.0)
            w = w / w.sum(dim=-1, keepdim=True).clamp(min=1e-12)
        return w


@dataclass(frozen=True)
class MotifCard:
    """What a checkpoint is: its label set, concept bank, training and metrics.

    Attributes:
        label_set: name of the label set.
        labels: labels in classifier order.
        bank_hash: hash of the concept bank the model reads (activation columns).
        concepts: concept texts, in column order (for readers without the bank).
        config: the :class:`MotifConfig`.
        trained: False for a zero-shot model.
        seed: training seed (``None`` for zero-shot).
        metrics: training / evaluation metrics.
        created: ISO timestamp.
    """

    label_set: str
    labels: tuple[str, ...]
    bank_hash: str
    concepts: tuple[str, ...]
    config: MotifConfig
    trained: bool = False
    seed: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict, hash=False)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (inverse of :meth:`from_dict`)."""
        d = asdict(self)
        d["labels"], d["concepts"] = list(self.labels), list(self.concepts)
        return {"card_version": CARD_VERSION, **d}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MotifCard":
        return cls(
            label_set=data["label_set"],
            labels=tuple(data["labels"]),
            bank_hash=data["bank_hash"],
            concepts=tuple(data["concepts"]),
            config=MotifConfig(**data["config"]),
            trained=bool(data.get("trained", False)),
            seed=data.get("seed"),
            metrics=dict(data.get("metrics", {})),
            created=data.get("created", ""),
        )

    def check_bank(self, bank: ConceptBank) -> None:
        """Raise :class:`InputError` when ``bank`` is not the bank this model was built for."""
        if bank.hash != self.bank_hash:
            raise InputError(
                f"concept bank {bank.label_set!r} ({bank.hash[:12]}) is not the bank this model was trained on "
                f"({self.bank_hash[:12]}); refit the model or use its bank"
            )


def zero_shot_model(
    bank: ConceptBank,
    config: MotifConfig | None = None,
    sharpness: float = 10.0,
    threshold: float = 0.15,
    gate: float = 0.1,
    specificity: np.ndarray | None = None,
    specificity_margin: float = 1.5,
    logit_scale: float = 1.0,
    source_weights: Mapping[str, float] | None = None,
    evidence_scale: float = 1.0,
    evidence_sharpness: float = 2.0,
    temperature: float = 1.0,
) -> tuple[MotifModel, MotifCard]:
    """A model that classifies with no training, from the bank's support matrix.

    Args:
        bank: the concept bank.
        config: model shape (default: from the bank).
        sharpness: affine scale: how fast evidence grows with cosine similarity.
        threshold: cosine similarity below which a concept counts as absent.
        gate: initial share of the attention-mixed signal in each concept.
        specificity: ``[K, C]`` how much more concept ``j`` fits class ``k``
            than the other classes (see :func:`~vidsense.concepts.merge.class_specificity`);
            when given, each class's support is weighted by it, so generic
            concepts a bank attaches to a class ("camera", "short video") stop
            deciding it. Without it every supporting concept weighs the same.
        specificity_margin: the z-score a concept must exceed to count for a class.
        logit_scale: multiplies the text concepts' classifier weights (sharper probabilities).
        source_weights: per evidence source (``action``, ``objects``, ...), the weight of
            its concepts' supports (the fast route's fusion weights); a source not
            listed weighs 0. ``None``: 1 for every source.
        evidence_scale: multiplies every evidence concept's weight.
        evidence_sharpness: affine scale of evidence concepts: their activations are
            perception scores in [0, 1], and ``softplus(2 x) - log 2`` is about ``x``
            there, with no threshold (a score the model reported is evidence).
        temperature: divides every class score (classifier weights and the pooling
            temperature ``tau`` together, so the pooled logits divide exactly and the
            time importance stays as it was): calibration, the ranking is unchanged.
    """
    if temperature <= 0:
        raise InputError(f"concept model temperature must be above 0, got {temperature}")
    if not len(bank):
        raise InputError(f"concept bank {bank.label_set!r} has no concepts")
    config = config or MotifConfig(n_concepts=len(bank), n_classes=len(bank.labels))
    config = replace(config, tau=config.tau / temperature)
    model = MotifModel(config)
    support = torch.from_numpy(bank.support_matrix())
    weight = support
    if specificity is not None:
        spec = torch.as_tensor(np.asarray(specificity), dtype=support.dtype)
        if spec.shape != support.shape:
            raise ValueError(f"specificity has shape {tuple(spec.shape)}, expected {tuple(support.shape)}")
        # Only concepts clearly more typical of the class than of the others count
        # (z above the margin); a class left with none gets no concept evidence
        # rather than its generic ones back (tried on 7 labelled clips: mean rank
        # of the true class 12.9 with margin 0, 10.7 with 1.5 and no fallback).
        weight = support * (spec - specificity_margin).clamp(min=0.0)
    evidence = torch.from_numpy(bank.evidence_columns)
    # Text concepts: each class's weights sum to logit_scale. Evidence concepts keep their
    # transfer weight (a recognised class that is the label weighs 1, as in the fast route),
    # scaled by its source's fusion weight: normalising them would make a class with one
    # matching Kinetics action weigh as much as one with forty faint ImageNet neighbours.
    text_weight = weight.masked_fill(evidence[None, :], 0.0)
    rows = text_weight.sum(dim=1, keepdim=True)
    text_weight = logit_scale * torch.where(rows > 0, text_weight / rows.clamp(min=1e-12), text_weight)
    per_source = torch.tensor(
        [evidence_scale * (1.0 if source_weights is None else float(source_weights.get(c.source, 0.0))) if c.evidence else 0.0 for c in bank.concepts],
        dtype=support.dtype,
    )
    with torch.no_grad():
        model.weight.copy_((text_weight + support * per_source[None, :]) / temperature)
        model.scale.copy_(torch.where(evidence, torch.tensor(evidence_sharpness), torch.tensor(sharpness)))
        model.shift.copy_(torch.where(evidence, torch.tensor(0.0), torch.tensor(-sharpness * threshold)))
        model.gate.fill_(math.log(gate / (1.0 - gate)))
    card = MotifCard(
        label_set=bank.label_set,
        labels=bank.labels,
        bank_hash=bank.hash,
        concepts=tuple(bank.texts),
        config=config,
        created=_now(),
    )
    return model.eval(), card


def save_model(model: MotifModel, card: MotifCard, folder: str | Path) -> Path:
    """Write ``model.safetensors`` and ``card.json`` into ``folder``; returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"bank_hash": card.bank_hash, "label_set": card.label_set})
    tmp = folder / (CARD_FILE + ".tmp")
    tmp.write_text(json.dumps(card.to_dict(), indent=1), encoding="utf-8")
    tmp.replace(folder / CARD_FILE)
    return folder


def load_model(folder: str | Path, device: str = "cpu") -> tuple[MotifModel, MotifCard]:
    """Read a model written by :func:`save_model`.

    Raises:
        InputError: the folder has no checkpoint.
        ModelError: the checkpoint does not match its card.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / CARD_FILE).is_file():
        raise InputError(f"{folder}: not a concept model folder (needs {WEIGHTS_FILE} and {CARD_FILE})")
    card = MotifCard.from_dict(json.loads((folder / CARD_FILE).read_text(encoding="utf-8")))
    model = MotifModel(card.config)
    try:
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE), device=device))
    except RuntimeError as exc:
        raise ModelError(f"{folder}: weights do not match card.json ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), card


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
