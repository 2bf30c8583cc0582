"""``vidsense doctor``: does every model of the profile load and give the answer it should?

An install can finish with exit 0 and still be broken: a dependency's new major
release drops an API a model needs (OpenCV 5.1 dropped ``readNetFromTensorflow``),
a weight file goes missing, a carrier package is replaced. The perceiver turns a
model that cannot load into a note so that one broken model never loses the other
modalities; the doctor is where such a model is loud. It loads each model of the
configured profile, runs it on a small input whose answer is known (the bundled
cycling clip, a bundled spoken sentence, a frame of printed text) and checks the
answer, so a model that loads but answers garbage fails too.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from vidsense.services.errors import InputError
from vidsense.services.model_store import CorruptModelError, repair_command
from vidsense.services.settings import Settings, load_settings
from vidsense.services.timeline import Timeline

DOCTOR_COMMAND = "vidsense doctor"
# What a broken Python dependency is repaired with: the hashed lock the Makefile installs from
# (pip puts back every locked version, whatever was installed over it by hand).
REINSTALL_LOCKED = "reinstall the locked dependencies: pip install --require-hashes --no-deps -r requirements/lock.txt"
OCR_WORDS = "VIDSENSE CHECK"


@dataclass(frozen=True)
class ModelCheck:
    """One row of the doctor's table.

    Attributes:
        model: the perception model's registry name, or ``llm`` / ``encoder``.
        ok: it loaded, ran and gave the expected answer.
        load_s: seconds to load (0 when it never loaded).
        run_s: seconds to run on the check input.
        check: what was expected and what was found (or why it could not run).
        fix: the command or step that repairs it ('' when ok).
    """

    model: str
    ok: bool
    load_s: float
    run_s: float
    check: str
    fix: str = ""

    @property
    def status(self) -> str:
        return "ok" if self.ok else "FAILED"


@dataclass(frozen=True)
class DoctorReport:
    """Every model of one profile, checked."""

    profile: str
    checks: tuple[ModelCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> tuple[ModelCheck, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def to_dict(self) -> dict:
        return {"profile": self.profile, "ok": self.ok, "checks": [asdict(c) | {"status": c.status} for c in self.checks]}


# -- known inputs ------------------------------------------------------------------------------


def check_inputs(folder: Path) -> dict[str, Path]:
    """The check inputs, by kind: ``sight`` (the bundled cycling clip), ``speech`` (a bundled
    spoken sentence) and ``text`` (a short clip of printed words, written into ``folder``)."""
    examples = resources.files("vidsense").joinpath("examples")
    return {
        "sight": Path(str(examples.joinpath("bikes.mp4"))),
        "speech": Path(str(examples.joinpath("speech.flac"))),
        "text": _text_clip(folder / "text.mp4"),
    }


def _text_clip(path: Path, seconds: float = 2.0, fps: int = 5) -> Path:
    """A clip of black words on white: what any OCR model must read."""
    import av
    import cv2

    frame = np.full((240, 480, 3), 255, np.uint8)
    cv2.putText(frame, OCR_WORDS, (20, 135), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (0, 0, 0), 3, cv2.LINE_AA)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 480, 240, "yuv420p"
        for _ in range(int(seconds * fps)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# -- expected answers ---------------------------------------------------------------------------

Expect = Callable[[Timeline], tuple[bool, str]]


def _texts(tl: Timeline, kind: str | None = None) -> list[tuple[str, float]]:
    return [(o.text, o.score) for o in tl.observations if kind is None or o.kind == kind]


def _finds(words: Iterable[str], what: str, kind: str | None = None, min_score: float = 0.0) -> Expect:
    """The model observed each of ``words`` (whole words, case-insensitive) somewhere in the input,
    the best time with a score of at least ``min_score``."""
    words = tuple(words)

    def expect(tl: Timeline) -> tuple[bool, str]:
        found = _texts(tl, kind)
        best: dict[str, float] = {}
        for text, score in found:
            for w in words:
                if re.search(rf"\b{re.escape(w)}\b", text, re.IGNORECASE):
                    best[w] = max(best.get(w, 0.0), score)
        missing = [w for w in words if w not in best or best[w] < min_score]
        seen = ", ".join(f"{w} {best[w]:.2f}" for w in words if w in best)
        if missing:
            heard = "; ".join(sorted({t for t, _ in found})[:3]) or "nothing"
            return False, f"expected {what}: {', '.join(missing)} not found (got: {heard})"
        return True, f"{what}: {seen}"

    return expect


def _any(what: str, kind: str | None = None) -> Expect:
    """The model observed something (for models with no recorded answer on the check input)."""

    def expect(tl: Timeline) -> tuple[bool, str]:
        found = _texts(tl, kind)
        if not found:
            return False, f"expected {what}, observed nothing"
        return True, f"{what}: {len(found)} observations, e.g. {found[0][0][:60]!r}"

    return expect


# perception model -> (check input, expected answer). Models not listed run on the sight
# input and must observe something.
PROBES: dict[str, tuple[str, Expect]] = {
    # Recorded: the Kinetics-400 recogniser, reading the middle 2.56 s at 25 frames/s, calls its
    # start "windsurfing" (0.88, at 2-4 s); a broken port or checkpoint does not land there.
    "action": ("sight", _finds(["windsurfing"], "the recorded Kinetics action", min_score=0.5)),
    "visual-tags": ("sight", _finds(["person", "bicycle"], "COCO objects in the cycling clip")),
    "pose": ("sight", _any("a person's pose in the cycling clip")),
    "flow": ("sight", _any("motion in the cycling clip")),
    "ocr": ("text", _finds(["VIDSENSE"], "the printed word")),
    # Whisper tiny.en hears espeak's "brown fox jumps" as "round-fark jump": not checked.
    "speech": ("speech", _finds(["quick", "lazy", "dog"], "the spoken sentence's words")),
    "audio-tags": ("speech", _finds(["speech"], "AudioSet's Speech tag on the spoken sentence")),
    "clap-tagger": ("speech", _any("sound tags of the spoken sentence")),
}


# -- fixes --------------------------------------------------------------------------------------


def fix_for(exc: BaseException) -> str:
    """The repair step for a model that raised ``exc`` while loading or running."""
    text = str(exc)
    if isinstance(exc, CorruptModelError):
        m = re.search(r"vidsense models install --force [\w.\-]+", text)
        return m.group(0) if m else "vidsense models install --force"
    if "readNetFromTensorflow" in text:
        import cv2

        return f"pip install 'opencv-python-headless>=4.9,<5.1' (OpenCV {cv2.__version__} has no TensorFlow importer: 5.1 removed it)"
    if "not installed" in text and "vidsense models install" in text:
        m = re.search(r"vidsense models install[^;)]*", text)
        return m.group(0).strip() if m else "vidsense models install"
    if "not installed" in text or "pip install" in text:
        m = re.search(r"pip install [^;)]+", text)
        return m.group(0).strip() if m else "make models"
    if isinstance(exc, (ImportError, AttributeError, TypeError)):
        return REINSTALL_LOCKED
    if isinstance(exc, InputError):
        return "check the model setting named in the message (vidsense config show)"
    return f"{REINSTALL_LOCKED}; then vidsense models install --force"


def _failure(model: str, exc: BaseException, load_s: float = 0.0, run_s: float = 0.0) -> ModelCheck:
    cause = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return ModelCheck(model, False, load_s, run_s, cause, fix_for(exc))


# -- the checks ---------------------------------------------------------------------------------


def check_perception(settings: Settings, name: str, inputs: dict[str, Path]) -> ModelCheck:
    """Load perception model ``name``, run it alone on its check input, and check the answer."""
    from vidsense.services.perception import PerceptionConfig
    from vidsense.services.perception.perceiver import Perceiver, warm

    source, expect = PROBES.get(name, ("sight", _any("observations of the cycling clip")))
    config = replace(PerceptionConfig.from_settings(settings), models=(name,), cache=False, max_duration_s=None)
    perceiver = Perceiver(config)
    t0 = time.perf_counter()
    try:
        warm(perceiver.model(name))
    except Exception as exc:  # noqa: BLE001 - every load failure is a row of the table, not a crash
        return _failure(name, exc, load_s=time.perf_counter() - t0)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        timeline = perceiver.describe(inputs[source])
    except Exception as exc:  # noqa: BLE001
        return _failure(name, exc, load_s, time.perf_counter() - t0)
    run_s = time.perf_counter() - t0
    if timeline.failures:
        return ModelCheck(name, False, load_s, run_s, timeline.failures[0].partition(": ")[2][:300], REINSTALL_LOCKED)
    ok, said = expect(timeline)
    fix = "" if ok else f"the model runs but answers wrong: reinstall its weights ({_store_repair(name, settings)})"
    return ModelCheck(name, ok, load_s, run_s, said, fix)


def _store_repair(name: str, settings: Settings) -> str:
    stores = {
        "speech": settings.speech_model or "whisper-tiny-en",
        "audio-tags": "yamnet",
        "visual-tags": "coco-ssd efficientnet-lite3",
        "ocr": "ppocr-v4",
        "pose": "movenet-lightning movenet-multipose",
        "action": "i3d-kinetics400",
    }
    return repair_command(stores[name]) if name in stores else "check the model's path in vidsense config show"


def check_llm(settings: Settings) -> ModelCheck:
    """The reasoning LLM loads and, asked which word names a vehicle, prefers "bicycle"."""
    from vidsense.agents.llm import load_llm
    from vidsense.agents.reasoner import ReasonerConfig

    if not (settings.llm_model or settings.llm_backend != "llama-cpp"):
        return ModelCheck("llm", False, 0.0, 0.0, "no LLM configured", "set llm_model to a GGUF file (vidsense config show)")
    t0 = time.perf_counter()
    try:
        llm = load_llm(ReasonerConfig.from_settings(settings).llm, settings.model_env())
    except Exception as exc:  # noqa: BLE001
        return _failure("llm", exc, load_s=time.perf_counter() - t0)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        prompt = llm.render_chat([{"role": "user", "content": "Which word names a vehicle: banana or bicycle? Answer with the word only."}])
        scores, _ = llm.score(prompt, ["banana", "bicycle"])
    except Exception as exc:  # noqa: BLE001
        return _failure("llm", exc, load_s, time.perf_counter() - t0)
    finally:
        close = getattr(llm, "close", None)
        if close is not None:
            close()
    run_s = time.perf_counter() - t0
    by_text = {s.text: s.logprob for s in scores}
    ok = by_text["bicycle"] > by_text["banana"]
    said = f"vehicle: bicycle {by_text['bicycle']:.2f} vs banana {by_text['banana']:.2f} (log-prob)"
    return ModelCheck("llm", ok, load_s, run_s, said, "" if ok else f"the LLM answers wrong: {repair_command(settings.llm_model or '')}")


def check_encoder(settings: Settings) -> ModelCheck:
    """The sentence encoder puts "riding a bicycle" nearer "cycling" than "baking bread"."""
    from vidsense.agents.embeddings import load_sentence_encoder

    t0 = time.perf_counter()
    try:
        encoder = load_sentence_encoder(settings.embedding_model or "minilm-l6-v2", settings.model_env())
    except Exception as exc:  # noqa: BLE001
        return _failure("encoder", exc, load_s=time.perf_counter() - t0)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        v = np.asarray(encoder.encode(["a person riding a bicycle", "cycling", "baking bread"]), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001
        return _failure("encoder", exc, load_s, time.perf_counter() - t0)
    run_s = time.perf_counter() - t0
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    near, far = float(v[0] @ v[1]), float(v[0] @ v[2])
    ok = near > far + 0.2
    said = f"'riding a bicycle' ~ 'cycling' {near:.2f}, ~ 'baking bread' {far:.2f}"
    return ModelCheck("encoder", ok, load_s, run_s, said, "" if ok else f"the encoder answers wrong: {repair_command(settings.embedding_model or 'minilm-l6-v2')}")


def doctor(settings: Settings | None = None, models: Iterable[str] | None = None, progress: Callable[[str], None] | None = None) -> DoctorReport:
    """Check every model of the configured profile: perception models, the LLM and the encoder.

    Args:
        settings: the settings whose profile is checked (default: :func:`load_settings`).
        models: only these (perception model names, ``llm``, ``encoder``).
        progress: told each model's name before it is checked.

    Returns:
        One :class:`ModelCheck` per model, in the order they run.
    """
    settings = settings or load_settings()
    names = [*(settings.perception or ()), "encoder", "llm"]
    if models is not None:
        wanted = list(models)
        unknown = [m for m in wanted if m not in names]
        if unknown:
            raise InputError(f"doctor: {unknown[0]!r} is not a model of the {settings.profile} profile; choose from {', '.join(names)}")
        names = [n for n in names if n in wanted]
    folder = Path(tempfile.mkdtemp(prefix="vidsense-doctor-"))
    try:
        # The check clips are made only when a perception model will read them.
        inputs = check_inputs(folder) if any(n not in ("llm", "encoder") for n in names) else {}
        checks = []
        for name in names:
            if progress is not None:
                progress(name)
            if name == "llm":
                checks.append(check_llm(settings))
            elif name == "encoder":
                checks.append(check_encoder(settings))
            else:
                checks.append(check_perception(settings, name, inputs))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return DoctorReport(settings.profile, tuple(checks))
