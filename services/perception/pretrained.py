"""Loading the full-size ``transformers`` backends (BLIP-2, CLIP, CLAP).

Their weights are not bundled: the user points a setting at a local folder or,
with ``allow_hub`` on, at a hub id; a :class:`~vidsense.services.model_store.ModelEnv`
says where the store is, which device to use and whether the hub may be asked. This module turns that setting into a
:class:`Pretrained` reference (resolved, with the device, dtype and a
fingerprint for cache keys) and loads a model and its processor from it with
one-line errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vidsense.services import model_store
from vidsense.services.errors import InputError, ModelError
from vidsense.services.model_store import ModelEnv


@dataclass(frozen=True)
class Pretrained:
    """A resolved full-size model reference.

    Attributes:
        path: a local folder or a hub id.
        role: what it is for, used in messages (``caption``, ``clip``, ...).
        device: ``cpu`` or ``cuda``.
        local_only: forbid hub access while loading (``allow_hub`` off).
        fingerprint: changes whenever the weights change; goes into cache keys.
    """

    path: str
    role: str
    device: str
    local_only: bool
    fingerprint: str

    @property
    def half(self) -> bool:
        """fp16 on CUDA only: CPU kernels for fp16 are slow or missing."""
        return self.device == "cuda"


def locate(reference: str | None, env: ModelEnv, *, role: str, setting: str) -> Pretrained:
    """Resolve a model setting (a local folder, a store name or an opt-in hub id).

    Args:
        reference: the setting's value.
        env: where models are found and run (store, device, hub permission).
        role: what the model is for, for messages.
        setting: the setting's name, so the message says what to set.

    Raises:
        InputError: the setting is empty, or names no local path while hub access is off.
    """
    if not reference:
        raise InputError(
            f"{role} model: not set; set {setting} (VIDSENSE_{setting.upper()}) to a local model folder, "
            "or to a hub id with allow_hub = true"
        )
    path = env.resolve(reference, role=role)
    # A content hash, stamped so only the first use after a change reads the weights.
    return Pretrained(path, role, env.device, not env.allow_hub, model_store.weights_sha256(reference, env.home))


def load(ref: Pretrained, model_cls: Any, processor_cls: Any) -> tuple[Any, Any]:
    """Load ``(processor, model)`` from ``ref``, in eval mode on its device.

    Raises:
        ModelError: the folder or hub id does not hold a loadable model of that class.
    """
    import torch

    dtype = torch.float16 if ref.half else torch.float32
    try:
        processor = processor_cls.from_pretrained(ref.path, local_files_only=ref.local_only)
        model = model_cls.from_pretrained(ref.path, dtype=dtype, local_files_only=ref.local_only)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{ref.role} model {ref.path}: cannot load a {model_cls.__name__} ({first})") from exc
    return processor, model.to(ref.device).eval()
