"""Few-shot fitting of the MoTIF model on labelled activation matrices.

Training starts from the zero-shot model (the bank's support matrix), so a
handful of examples per class refines rather than replaces the prior. It is
deterministic for a given seed: the seed drives dropout and the batch order,
and the global RNG state is restored afterwards so callers are not disturbed.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from vidsense.concepts.bank import ConceptBank
from vidsense.concepts.motif import MotifCard, MotifConfig, MotifModel, zero_shot_model
from vidsense.services.errors import InputError


@dataclass(frozen=True, eq=False)
class LabelledActivations:
    """One training example: a video's ``[T, C]`` activations and its true label."""

    matrix: np.ndarray
    label: str
    name: str = ""


@dataclass(frozen=True)
class FitMetrics:
    """What :func:`fit` measured.

    Attributes:
        n_examples: training examples used.
        n_classes_seen: distinct labels among them.
        epochs: epochs run.
        seed: the seed.
        zero_shot_accuracy: accuracy on the training examples before fitting.
        train_accuracy: accuracy on the training examples after fitting.
        final_loss: mean training loss of the last epoch.
        seconds: wall time.
    """

    n_examples: int
    n_classes_seen: int
    epochs: int
    seed: int
    zero_shot_accuracy: float
    train_accuracy: float
    final_loss: float
    seconds: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def fit(
    examples: Sequence[LabelledActivations],
    bank: ConceptBank,
    labels: Sequence[str] | None = None,
    epochs: int = 100,
    seed: int = 0,
    lr: float = 0.05,
    batch_size: int = 16,
    l1: float = 1e-4,
    config: MotifConfig | None = None,
) -> tuple[MotifModel, FitMetrics]:
    """Fit a MoTIF model on labelled examples, starting from the zero-shot model.

    Args:
        examples: activation matrices (columns = ``bank`` concepts) with labels.
        bank: the concept bank.
        labels: classifier labels (default ``bank.labels``; must equal them if given).
        epochs: passes over the examples.
        seed: seed for the batch order and dropout.
        lr: Adam learning rate.
        batch_size: examples per step (padded to the longest in the batch).
        l1: L1 penalty on the classifier weights (keeps explanations sparse).
        config: model shape and hyper-parameters (default: from the bank).

    Returns:
        The trained model (in eval mode) and its metrics; build the checkpoint's
        card with :func:`trained_card`.

    Raises:
        InputError: no examples, an unknown label, or a matrix of the wrong width.
    """
    labels = tuple(labels) if labels is not None else bank.labels
    if labels != bank.labels:
        raise InputError(f"labels do not match the concept bank's label set {bank.label_set!r}")
    if not examples:
        raise InputError("no labelled examples to fit on")
    index = {label: i for i, label in enumerate(labels)}
    for ex in examples:
        if ex.label not in index:
            raise InputError(f"example {ex.name or '?'}: label {ex.label!r} is not in label set {bank.label_set!r}")
        if ex.matrix.ndim != 2 or ex.matrix.shape[1] != len(bank) or ex.matrix.shape[0] == 0:
            raise InputError(f"example {ex.name or '?'}: activations of shape {ex.matrix.shape}, expected [T>0, {len(bank)}]")

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]), _single_thread():
        torch.manual_seed(seed)
        model, _ = zero_shot_model(bank, config)
        x, mask = pad_batch([ex.matrix for ex in examples])
        y = torch.tensor([index[ex.label] for ex in examples], dtype=torch.long)
        zero_shot_acc = accuracy(model, x, mask, y)

        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        loss_sum, steps = math.nan, 0
        for _ in range(epochs):
            order = torch.randperm(len(examples), generator=gen)
            loss_sum, steps = 0.0, 0
            for s in range(0, len(examples), batch_size):
                idx = order[s : s + batch_size]
                out = model(x[idx], mask[idx])
                loss = F.cross_entropy(out.logits, y[idx]) + l1 * model.classifier_weight().abs().sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if model.config.nonneg:
                    with torch.no_grad():
                        model.weight.clamp_(min=0.0)
                loss_sum += float(loss.detach())
                steps += 1
        model.eval()
        train_acc = accuracy(model, x, mask, y)

    metrics = FitMetrics(
        n_examples=len(examples),
        n_classes_seen=len({ex.label for ex in examples}),
        epochs=epochs,
        seed=seed,
        zero_shot_accuracy=zero_shot_acc,
        train_accuracy=train_acc,
        final_loss=loss_sum / max(steps, 1),
        seconds=round(time.perf_counter() - start, 3),
    )
    return model, metrics


def trained_card(bank: ConceptBank, model: MotifModel, metrics: FitMetrics, extra: dict | None = None) -> MotifCard:
    """The checkpoint card of a model returned by :func:`fit`."""
    return MotifCard(
        label_set=bank.label_set,
        labels=bank.labels,
        bank_hash=bank.hash,
        concepts=tuple(bank.texts),
        config=model.config,
        trained=True,
        seed=metrics.seed,
        metrics={**metrics.to_dict(), **(extra or {})},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


@contextmanager
def _single_thread() -> Iterator[None]:
    """Run with one intra-op thread: the tensors are tiny, and on a busy machine
    thread hand-offs made a 40-epoch fit 15x slower than one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pad_batch(matrices: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``[T_i, C]`` matrices into ``[B, T_max, C]`` plus a padding mask (True = padded)."""
    t_max = max(m.shape[0] for m in matrices)
    c = matrices[0].shape[1]
    x = torch.zeros(len(matrices), t_max, c, dtype=torch.float32)
    mask = torch.ones(len(matrices), t_max, dtype=torch.bool)
    for i, m in enumerate(matrices):
        x[i, : m.shape[0]] = torch.from_numpy(np.asarray(m, dtype=np.float32))
        mask[i, : m.shape[0]] = False
    return x, mask


@torch.no_grad()
def accuracy(model: MotifModel, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on a padded batch."""
    was_training = model.training
    model.eval()
    pred = model(x, mask).logits.argmax(dim=1)
    model.train(was_training)
    return float((pred == y).float().mean())
