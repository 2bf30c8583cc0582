"""Audio event tags per window with YAMNet (AudioSet, 521 classes).

The bundled YAMNet is a quantised ONNX graph (``model.onnx`` + ``model.data``)
whose input is a uint8 log-mel patch ``[1, 1, 96, 64]`` (0.96 s) and whose
output is uint8-quantised logits. This module holds the log-mel front end in
numpy (YAMNet's own: 16 kHz, 25 ms periodic-Hann window, 10 ms hop, 512-point
FFT magnitude, 64 HTK-mel bands over 125-7500 Hz, ``log(mel + 0.001)``), reads
the input and output quantisation parameters from the graph itself, and turns
the per-patch scores of each window into a few tags: ``speech 0.91, music 0.30``.
"""

from __future__ import annotations

import csv
import logging
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from vidsense.services.errors import ModelError
from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig
from vidsense.services.perception.turns import TURNS
from vidsense.services.timeline import Observation, Window

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
STFT_WINDOW = 400  # 25 ms
STFT_HOP = 160  # 10 ms
FFT_LENGTH = 512
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96  # 0.96 s
PATCH_HOP_FRAMES = 48  # patches overlap by half, as in YAMNet
# Samples needed for one full patch: 95 hops plus one STFT window (0.975 s).
PATCH_SAMPLES = (PATCH_FRAMES - 1) * STFT_HOP + STFT_WINDOW

STORE_NAME = "yamnet"


@dataclass(frozen=True)
class Quantisation:
    """``real = (q - zero_point) * scale`` for one uint8 tensor of the graph."""

    scale: float
    zero_point: int

    def quantise(self, x: np.ndarray) -> np.ndarray:
        """Real values to uint8 (saturating at the ends of the range)."""
        return np.clip(np.rint(x / self.scale) + self.zero_point, 0, 255).astype(np.uint8)

    def dequantise(self, q: np.ndarray) -> np.ndarray:
        """uint8 codes to real values."""
        return (q.astype(np.float32) - self.zero_point) * self.scale


# ---------------------------------------------------------------- front end


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@lru_cache(maxsize=1)
def mel_matrix() -> np.ndarray:
    """The ``[257, 64]`` linear-to-mel weights YAMNet was trained with.

    A port of ``tf.signal.linear_to_mel_weight_matrix``: triangles are linear
    in mel (not in Hz, unlike torchaudio's filter bank) and the DC bin gets no
    weight. The weights are TensorFlow's, so the features should be too.
    """
    n_bins = FFT_LENGTH // 2 + 1
    freqs_mel = _hz_to_mel(np.linspace(0.0, SAMPLE_RATE / 2, n_bins)[1:])[:, None]
    edges = np.linspace(_hz_to_mel(MEL_MIN_HZ), _hz_to_mel(MEL_MAX_HZ), MEL_BANDS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs_mel - lower) / (centre - lower)
    falling = (upper - freqs_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.vstack([np.zeros((1, MEL_BANDS)), weights]).astype(np.float32)


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    # Periodic Hann, as tf.signal.hann_window's default.
    n = np.arange(STFT_WINDOW)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / STFT_WINDOW)).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """YAMNet's log-mel spectrogram of 16 kHz mono audio, shape ``[frames, 64]``.

    Frames are not centred (as ``tf.signal.stft``): frame ``i`` covers samples
    ``[160 i, 160 i + 400)``. Audio shorter than one STFT window gives 0 frames.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(audio) < STFT_WINDOW:
        return np.zeros((0, MEL_BANDS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(audio, STFT_WINDOW)[::STFT_HOP]
    magnitude = np.abs(np.fft.rfft(frames * _hann(), n=FFT_LENGTH, axis=1)).astype(np.float32)
    return np.log(magnitude @ mel_matrix() + LOG_OFFSET)


def patches(audio: np.ndarray) -> np.ndarray:
    """Half-overlapping 0.96 s log-mel patches of ``audio``, shape ``[n, 96, 64]``.

    Audio is zero-padded to at least one full patch (YAMNet's own rule), so any
    non-empty clip gives one patch; the tail that does not fill a patch is dropped.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(audio) < PATCH_SAMPLES:
        audio = np.pad(audio, (0, PATCH_SAMPLES - len(audio)))
    spec = log_mel(audio)
    starts = range(0, len(spec) - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
    return np.stack([spec[s : s + PATCH_FRAMES] for s in starts])


# ------------------------------------------- quantisation params from the graph
# onnxruntime does not expose initialisers and the `onnx` package is not a
# dependency, so the few scalars we need are read straight from the protobuf
# wire format (field numbers from onnx.proto3).

_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER = 1, 5
_NODE_INPUT, _NODE_OUTPUT, _NODE_OP_TYPE = 1, 2, 4
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_FLOAT_DATA, _TENSOR_INT32_DATA, _TENSOR_NAME, _TENSOR_RAW_DATA = 1, 2, 4, 5, 8, 9
# onnx TensorProto.DataType -> struct format (FLOAT, UINT8, INT8)
_SCALAR_FORMATS = {1: "<f", 2: "<B", 3: "<b"}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, Any]]:
    """``(field number, value)`` pairs of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def _scalar(tensor: memoryview) -> tuple[str, float] | None:
    """Name and value of a scalar TensorProto (float, uint8 or int8); None for anything else."""
    name, dtype, data = "", 0, b""
    for number, value in _fields(tensor):
        if number == _TENSOR_DIMS:
            return None  # has a shape: a weight, not a quantisation parameter
        if number == _TENSOR_NAME:
            name = bytes(value).decode()
        elif number == _TENSOR_DATA_TYPE:
            dtype = value
        elif number in (_TENSOR_RAW_DATA, _TENSOR_FLOAT_DATA):
            data = bytes(value)
        elif number == _TENSOR_INT32_DATA:
            data = bytes([(value if isinstance(value, int) else _varint(value, 0)[0]) & 0xFF])
    if not data or dtype not in _SCALAR_FORMATS:
        return None
    fmt = _SCALAR_FORMATS[dtype]
    return name, float(struct.unpack(fmt, data[: struct.calcsize(fmt)])[0])


def graph_quantisation(model_path: Path, input_name: str, output_name: str) -> tuple[Quantisation, Quantisation]:
    """Quantisation of a QDQ graph's input (its DequantizeLinear) and output (its QuantizeLinear).

    Raises:
        ModelError: when the graph does not have that shape.
    """
    model = memoryview(Path(model_path).read_bytes())
    graph = next((v for n, v in _fields(model) if n == _MODEL_GRAPH), None)
    if graph is None:
        raise ModelError(f"{model_path}: no graph in the ONNX file")
    nodes: list[tuple[str, list[str], list[str]]] = []
    scalars: dict[str, float] = {}
    for number, value in _fields(graph):
        if number == _GRAPH_NODE:
            fields = list(_fields(value))
            op = next((bytes(v).decode() for n, v in fields if n == _NODE_OP_TYPE), "")
            ins = [bytes(v).decode() for n, v in fields if n == _NODE_INPUT]
            outs = [bytes(v).decode() for n, v in fields if n == _NODE_OUTPUT]
            nodes.append((op, ins, outs))
        elif number == _GRAPH_INITIALIZER:
            scalar = _scalar(value)
            if scalar is not None:
                scalars[scalar[0]] = scalar[1]

    def pick(op: str, match: Callable[[list[str], list[str]], bool]) -> Quantisation:
        for node_op, ins, outs in nodes:
            if node_op == op and match(ins, outs) and ins[1] in scalars and ins[2] in scalars:
                return Quantisation(scale=scalars[ins[1]], zero_point=int(scalars[ins[2]]))
        raise ModelError(f"{model_path}: no {op} on the graph's {'input' if op.startswith('De') else 'output'}")

    return (
        pick("DequantizeLinear", lambda ins, outs: ins[0] == input_name),
        pick("QuantizeLinear", lambda ins, outs: outs[0] == output_name),
    )


# ---------------------------------------------------------------- the tagger


def class_names(csv_path: Path) -> list[str]:
    """AudioSet display names in model output order, lower-cased.

    Names with alternatives (``"Child speech, kid speaking"``) keep them joined
    by ``/`` so a comma never appears inside one tag of a rendered tag list.
    """
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    return ["/".join(part.strip() for part in r["display_name"].split(",")).lower() for r in rows]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: no overflow for very negative logits.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


POOLS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": lambda scores: scores.mean(axis=0),
    "max": lambda scores: scores.max(axis=0),
}


def _tag_score(p: float) -> float:
    # The timeline renders a score of 1.0 as "no score"; a tag is never certain.
    return min(round(p, 2), 0.99)


class YamnetTagger:
    """AudioSet event tags per window, from the bundled quantised YAMNet.

    Each window's audio is cut into half-overlapping 0.96 s patches; patch
    scores are pooled (mean by default: YAMNet's own clip-level rule, which
    keeps a single loud patch from tagging a whole window) and the top tags
    above ``threshold`` become one ``sound`` observation each.
    """

    card = ModelCard(
        name="audio-tags",
        version="1",
        modalities=("sound",),
        needs_video=False,
        needs_audio=True,
        note="YAMNet, AudioSet 521 classes",
        cost=0.1,
    )

    def __init__(self, env: ModelEnv, *, threshold: float = 0.2, top_k: int = 3, pool: str = "mean") -> None:
        """Locate (assemble on first use) the bundled model; the session opens lazily.

        Args:
            env: where the model store is.
            threshold / top_k / pool: see the class docstring.

        Raises:
            ValueError: for an unknown ``pool``.
        """
        from vidsense.services import model_store

        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; known: {', '.join(POOLS)}")
        self._home = env.home
        self.folder = Path(model_store.ensure(STORE_NAME, env.home))
        self.threshold = threshold
        self.top_k = top_k
        self.pool = pool
        self._session = None
        self._names: list[str] = []
        self._in_q = self._out_q = Quantisation(1.0, 0)

    @classmethod
    def from_config(cls, config: PerceptionConfig) -> "YamnetTagger":
        """The registry's ``audio-tags`` model."""
        return cls(config.env)

    def params(self) -> dict[str, Any]:
        """Weights hash and every knob that changes the tags."""
        from vidsense.services import model_store

        return {
            "weights": model_store.weights_sha256(STORE_NAME, self._home),
            "threshold": self.threshold,
            "top_k": self.top_k,
            "pool": self.pool,
        }

    def _load(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # Patches run one at a time (the graph's batch is fixed at 1): threads beyond 1 only add overhead.
        opts.intra_op_num_threads = 1
        path = self.folder / "model.onnx"
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any load failure is a broken model folder
            raise ModelError(f"{path}: cannot load YAMNet ({exc})") from exc
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        self._in_q, self._out_q = graph_quantisation(path, self._input, self._output)
        self._names = class_names(self.folder / "yamnet_class_map.csv")

    def scores(self, audio: np.ndarray) -> np.ndarray:
        """Per-patch class probabilities of 16 kHz mono audio, shape ``[patches, 521]``."""
        if self._session is None:
            self._load()
        out = []
        for patch in patches(audio):
            q = self._in_q.quantise(patch)[None, None]
            with TURNS.light():
                raw = self._session.run([self._output], {self._input: q})[0][0]
            logits = self._out_q.dequantise(raw)
            out.append(_sigmoid(logits))
        return np.stack(out)

    def tags(self, audio: np.ndarray) -> list[tuple[str, float]]:
        """Top ``(name, probability)`` pairs of one stretch of audio, above the threshold."""
        pooled = POOLS[self.pool](self.scores(audio))
        best = np.argsort(-pooled)[: self.top_k]
        return [(self._names[i], float(pooled[i])) for i in best if pooled[i] >= self.threshold]

    def describe(self, media: Media, windows: tuple[Window, ...]) -> Perception:
        """One ``sound`` observation per tag per window; windows without audio get none."""
        observations = []
        for w in windows:
            audio = media.audio_between(w.start_s, w.end_s)
            if len(audio) == 0:
                continue
            for name, p in self.tags(audio):
                observations.append(
                    Observation(
                        window=w.index,
                        start_s=w.start_s,
                        end_s=w.end_s,
                        modality="sound",
                        source_model=self.card.name,
                        text=name,
                        score=_tag_score(p),
                        kind="sound",
                    )
                )
        return Perception(observations)
