"""ImageBind (Meta's six-modality joint embedding) on the model code of ``imagebind-packaged``.

Only the package's model modules are imported (:func:`model_code`): its
``imagebind/__init__`` imports ``imagebind.data``, which needs ``pkg_resources``,
torchvision, torchaudio and pytorchvideo, none of which install next to this
project's torch. The preprocessing is therefore vidsense's own and starts from
what :class:`~vidsense.services.media.video.Media` decodes, following ``imagebind.data``:

- frames: short side to 224 (bicubic, antialiased), centre crop, CLIP mean and
  std; consecutive pairs of frames are one clip (the vision stem's kernel is
  ``(2, 14, 14)``; a last odd frame is repeated, as the model does with a still image);
- audio: 16 kHz mono, three 2-s clips spread over the window (one when it is
  shorter), each a 128-bin Kaldi-style log-mel fbank (25 ms Hann frames every
  10 ms) cut or zero-padded to 204 frames and normalised with ImageBind's
  AudioSet mean and std; the model averages the clips' embeddings;
- text: the package's BPE tokenizer and vocabulary, 77 tokens, the end token
  kept when a text is truncated.

Weights come from a local ``imagebind_huge.pth`` (a plain ``state_dict`` of
:func:`imagebind_model.imagebind_huge`), downloaded into the model store only
with ``allow_hub``. Its cache fingerprint is the file's SHA-256, stamped with
its size and mtime so the 4.5 GB are read once (:func:`~vidsense.services.model_store.content_sha256`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import warnings
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Sequence

import numpy as np

from vidsense.services import model_store
from vidsense.services.errors import InputError, ModelError
from vidsense.services.media.video import SAMPLE_RATE
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception.pretrained import Pretrained

CHECKPOINT = "imagebind-huge/imagebind_huge.pth"  # under $VIDSENSE_HOME/models
CHECKPOINT_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
INSTALL = 'pip install "vidsense[imagebind]" && pip install --no-deps imagebind-packaged==0.1.2'
# imagebind_model.imagebind_huge(), as data: the layout a checkpoint must match.
ARCHITECTURE: Mapping[str, Any] = {
    "vision_embed_dim": 1280,
    "vision_num_blocks": 32,
    "vision_num_heads": 16,
    "text_embed_dim": 1024,
    "text_num_blocks": 24,
    "text_num_heads": 16,
    "out_embed_dim": 1024,
    "audio_drop_path": 0.1,
    "imu_drop_path": 0.7,
}

IMAGE_SIZE = 224
FRAMES_PER_CLIP = 2
PIXEL_MEAN = (0.48145466, 0.4578275, 0.40821073)
PIXEL_STD = (0.26862954, 0.26130258, 0.27577711)
MEL_BINS = 128
MEL_FRAMES = 204
AUDIO_MEAN, AUDIO_STD = -4.268, 9.138
AUDIO_CLIP_S = 2.0
AUDIO_CLIPS = 3
FRAME_LENGTH, FRAME_SHIFT, FFT_SIZE = 400, 160, 512  # 25 ms, 10 ms at 16 kHz
CONTEXT_LENGTH = 77
MAX_LOGIT_SCALE = 100.0  # LearnableLogitScaling's clip

_IMPORT_LOCK = threading.Lock()


def model_code() -> ModuleType:
    """``imagebind.models.imagebind_model``, imported without the package's ``__init__``.

    timm (for ``DropPath`` and ``trunc_normal_``) is used when it imports; it
    needs a torchvision built for the installed torch, and PyPI's is a CUDA
    build that fails on a CPU torch, so otherwise torch's own equivalents stand
    in while the model code is imported (inference only: stochastic depth is
    the identity in eval mode, and every initialised tensor is overwritten by
    the checkpoint).

    Raises:
        InputError: the package or one of its model modules' imports is missing.
    """
    with _IMPORT_LOCK:
        loaded = sys.modules.get("imagebind.models.imagebind_model")
        if loaded is not None:
            return loaded
        spec = importlib.util.find_spec("imagebind")
        if spec is None or not spec.submodule_search_locations:
            raise InputError(f"ImageBind's model code is not installed; install it with: {INSTALL}")
        bare = "imagebind" not in sys.modules
        if bare:
            sys.modules["imagebind"] = importlib.util.module_from_spec(spec)
        stand_ins = _timm_stand_ins()
        saved = {name: sys.modules.get(name) for name in stand_ins}
        sys.modules.update(stand_ins)
        try:
            return importlib.import_module("imagebind.models.imagebind_model")
        except ImportError as exc:
            if bare:
                sys.modules.pop("imagebind", None)
            raise InputError(f"ImageBind's model code cannot be imported ({exc}); install it with: {INSTALL}") from None
        finally:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module


def _timm_stand_ins() -> dict[str, ModuleType]:
    """Modules that give the model code timm's two layers when timm itself does not import."""
    try:
        importlib.import_module("timm.models.layers")
        return {}
    except (ImportError, RuntimeError):  # RuntimeError: a torchvision built for another torch
        pass
    import torch

    layers = ModuleType("timm.layers")
    layers.DropPath = torch.nn.Identity  # type: ignore[attr-defined]
    layers.trunc_normal_ = torch.nn.init.trunc_normal_  # type: ignore[attr-defined]
    models = ModuleType("timm.models")
    models.layers = layers  # type: ignore[attr-defined]
    timm = ModuleType("timm")
    timm.layers, timm.models = layers, models  # type: ignore[attr-defined]
    return {"timm": timm, "timm.layers": layers, "timm.models": models, "timm.models.layers": layers}


def locate(checkpoint: str | Path | None, env: ModelEnv, who: str = "imagebind-tagger") -> Pretrained:
    """Check that ImageBind can run and resolve its checkpoint (the model is not loaded yet).

    Args:
        checkpoint: the ``.pth`` file (the ``imagebind_model`` setting); ``None``:
            ``<env.home>/models/imagebind-huge/imagebind_huge.pth``, downloaded
            there from Meta when missing and ``env.allow_hub`` is on.
        env: where models are found and run.
        who: what needs it, for messages.

    Raises:
        InputError: the model code or the checkpoint is missing.
        ModelError: the download failed.
    """
    try:
        model_code()
    except InputError as exc:
        raise InputError(f"{who}: {exc}") from None
    default = Path(env.home) / "models" / CHECKPOINT
    path = Path(checkpoint).expanduser() if checkpoint else default
    if not path.is_file():
        if checkpoint or not env.allow_hub:
            raise InputError(f"{who}: checkpoint {path} not found; put imagebind_huge.pth there, or leave imagebind_model unset and allow_hub = true to download it")
        _download(path, who)
    # The content hash, stamped with size and mtime: hashed once per file, not per start.
    return Pretrained(str(path), "imagebind", env.device, not env.allow_hub, model_store.content_sha256(path, env.home))


def _download(path: Path, who: str) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(CHECKPOINT_URL, str(path), progress=True)  # a temporary file, then a rename
    except OSError as exc:
        raise ModelError(f"{who}: cannot download {CHECKPOINT_URL} to {path} ({exc})") from None


def load_model(path: str | Path, device: str, architecture: Mapping[str, Any] | None = None) -> Any:
    """An ``ImageBindModel`` with the weights of ``path``, in eval mode on ``device`` (fp16 on CUDA).

    The model is built on the meta device and takes the (memory-mapped) checkpoint's
    tensors as they are, so loading holds one copy of the weights, not two.

    Args:
        path: a ``state_dict`` saved with ``torch.save``.
        device: ``cpu`` or ``cuda``.
        architecture: ``ImageBindModel`` keyword arguments; default :data:`ARCHITECTURE`.

    Raises:
        ModelError: the file is no state dict, or its keys or shapes are not the architecture's.
    """
    import torch

    code = model_code()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a bad file
        raise ModelError(f"ImageBind checkpoint {path}: not a torch state dict ({_first_line(exc)})") from None
    if not isinstance(state, Mapping):
        raise ModelError(f"ImageBind checkpoint {path}: holds a {type(state).__name__}, not a state dict")
    model = _skeleton(code, architecture or ARCHITECTURE)
    problem = _mismatch(model.state_dict(), state)
    if problem:
        raise ModelError(f"ImageBind checkpoint {path}: not the imagebind_huge layout ({problem})")
    model.load_state_dict(state, strict=True, assign=True)
    # fp16 on CUDA only (CPU fp16 kernels are slow or missing); on the CPU an fp32 file is used in place.
    return model.to(device, torch.float16 if device == "cuda" else torch.float32).eval()


def _skeleton(code: ModuleType, architecture: Mapping[str, Any]) -> Any:
    """``ImageBindModel(**architecture)`` with its parameters and buffers on the meta device.

    No time or memory goes into initialising weights the checkpoint replaces
    (the huge model's random init takes 26 s and 5 GB on two cores).
    ``torch.device("meta")`` cannot be used: the model code reads its drop-path
    rates from ``torch.linspace`` with ``.item()``; here only ``empty``, ``zeros``
    and ``ones``, which make every parameter and buffer, go to meta.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    factories = {torch.empty, torch.zeros, torch.ones}

    class OnMeta(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            if func in factories and kwargs.get("device") is None:
                kwargs["device"] = "meta"
            return func(*args, **kwargs)

    with OnMeta():  # torch function modes are per thread: models built elsewhere meanwhile are not affected
        return code.ImageBindModel(**architecture)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str:
    """What keeps ``found`` from loading into a model whose state dict is ``expected`` ('' when nothing)."""

    def some(keys: Sequence[str]) -> str:
        return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")

    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    shapes = sorted(k for k in expected.keys() & found.keys() if tuple(getattr(found[k], "shape", ())) != tuple(expected[k].shape))
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys: {some(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {some(unexpected)}")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} shape mismatches, e.g. {k}: {list(getattr(found[k], 'shape', ()))} in the file, {list(expected[k].shape)} expected")
    return "; ".join(parts)


def frame_clips(frames: np.ndarray) -> Any:
    """``[k, H, W, 3]`` uint8 RGB frames as ImageBind's vision input ``[ceil(k/2), 1, 3, 2, 224, 224]``.

    Each row is one clip of two consecutive frames (one view; the middle 1 is the
    clips-per-video axis the model averages over).
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[2:]
    # torchvision's Resize(224): the short side to 224, the long side truncated.
    size = (IMAGE_SIZE, int(IMAGE_SIZE * w / h)) if h <= w else (int(IMAGE_SIZE * h / w), IMAGE_SIZE)
    x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    top, left = round((size[0] - IMAGE_SIZE) / 2), round((size[1] - IMAGE_SIZE) / 2)
    x = x[:, :, top : top + IMAGE_SIZE, left : left + IMAGE_SIZE]
    x = (x - torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)) / torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    if len(x) % FRAMES_PER_CLIP:
        x = torch.cat([x, x[-1:].expand(FRAMES_PER_CLIP - len(x) % FRAMES_PER_CLIP, -1, -1, -1)])
    return x.view(-1, FRAMES_PER_CLIP, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(1, 2)[:, None]


@lru_cache(maxsize=1)
def _mel_filters() -> np.ndarray:
    from transformers.audio_utils import mel_filter_bank

    # Kaldi's: triangles in mel space from 20 Hz to Nyquist, unnormalised. With 128 bins on a
    # 512-point FFT the lowest triangles fall between FFT bins and stay empty, in Kaldi too.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "At least one mel filter has all zero values")
        return mel_filter_bank(
            num_frequency_bins=FFT_SIZE // 2 + 1,
            num_mel_filters=MEL_BINS,
            min_frequency=20.0,
            max_frequency=SAMPLE_RATE / 2,
            sampling_rate=SAMPLE_RATE,
            norm=None,
            mel_scale="kaldi",
            triangularize_in_mel_space=True,
        )


def fbank(samples: np.ndarray) -> np.ndarray:
    """``[MEL_BINS, MEL_FRAMES]`` log-mel fbank of 16 kHz samples, as ``torchaudio.compliance.kaldi.fbank``.

    With ImageBind's options (Hann window, no dither, no energy, pre-emphasis
    0.97, DC offset removed per frame), cut or zero-padded to :data:`MEL_FRAMES`;
    not yet normalised.
    """
    from transformers.audio_utils import spectrogram, window_function

    x = np.asarray(samples, np.float64)
    x = x - x.mean() if len(x) else x
    if len(x) < FRAME_LENGTH:
        spec = np.zeros((MEL_BINS, 0))
    else:
        spec = spectrogram(
            x,
            window_function(FRAME_LENGTH, "hann", periodic=False),
            frame_length=FRAME_LENGTH,
            hop_length=FRAME_SHIFT,
            fft_length=FFT_SIZE,
            power=2.0,
            center=False,
            preemphasis=0.97,
            mel_filters=_mel_filters(),
            log_mel="log",
            mel_floor=float(np.finfo(np.float32).eps),
            remove_dc_offset=True,
        )
    out = np.zeros((MEL_BINS, MEL_FRAMES), np.float32)
    n = min(spec.shape[1], MEL_FRAMES)
    out[:, :n] = spec[:, :n]
    return out


def audio_clips(samples: np.ndarray) -> Any:
    """One window's 16 kHz audio as ImageBind's audio input ``[clips, 1, MEL_BINS, MEL_FRAMES]``.

    :data:`AUDIO_CLIPS` clips of :data:`AUDIO_CLIP_S` spread evenly from the
    window's start to its end; one when the window is no longer than a clip
    (ImageBind would take the same clip three times).
    """
    import torch

    length = int(AUDIO_CLIP_S * SAMPLE_RATE)
    last = max(len(samples) - length, 0)
    starts = np.linspace(0, last, AUDIO_CLIPS).astype(int) if last else [0]
    specs = [(fbank(samples[s : s + length]) - AUDIO_MEAN) / AUDIO_STD for s in starts]
    return torch.from_numpy(np.stack(specs))[:, None]


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    code = model_code()
    from imagebind.models.multimodal_preprocessors import SimpleTokenizer

    bpe = Path(code.__file__).parents[1] / "bpe" / "bpe_simple_vocab_16e6.txt.gz"
    return SimpleTokenizer(bpe_path=str(bpe), context_length=CONTEXT_LENGTH)


def tokenize(texts: Sequence[str]) -> Any:
    """``[len(texts), 77]`` token ids: start, the text's BPE tokens, end, zeros.

    The package's tokenizer cuts a long text's end token off; the model reads
    the embedding at the largest id, which is the end token only when it is there.
    """
    import torch

    tok = _tokenizer()
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    out = torch.zeros(len(texts), CONTEXT_LENGTH, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [sot, *tok.encode(text)[: CONTEXT_LENGTH - 2], eot]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


class ImageBindEncoder:
    """ImageBind as a :class:`~vidsense.services.perception.joint.tagger.JointEncoder` (vision, audio and text towers).

    Args:
        ref: the checkpoint (from :func:`locate`).
        architecture: ``ImageBindModel`` keyword arguments; default :data:`ARCHITECTURE` (huge).

    Raises:
        ModelError: the checkpoint does not load into the architecture.
    """

    audio_rate = SAMPLE_RATE

    def __init__(self, ref: Pretrained, architecture: Mapping[str, Any] | None = None) -> None:
        self.name = "imagebind-huge"
        self.fingerprint = ref.fingerprint
        self._device = ref.device
        self._model = load_model(ref.path, ref.device, architecture)
        self._dtype = next(self._model.parameters()).dtype
        # The text tower's learnt temperature: ImageBind's text rows carry it, so vision-text logits use it.
        scale = self._model.modality_postprocessors["text"][1].log_logit_scale
        self.logit_scale = min(float(scale.detach().float().exp()), MAX_LOGIT_SCALE)

    def _embed(self, kind: str, value: Any) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        value = value.to(self._device, self._dtype) if value.is_floating_point() else value.to(self._device)
        with torch.inference_mode():
            out = self._model({kind: value})[kind]
        return F.normalize(out.float(), dim=-1).cpu().numpy()

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """``[len(texts), d]`` unit rows.

        The text tower is causal and reads its output at the end token, so the
        padding after the batch's longest text cannot change it: the tower runs
        on the tokens up to there (a prompt of ten tokens costs an eighth of 77).
        """
        import torch
        import torch.nn.functional as F

        tokens = tokenize(texts).to(self._device)
        ends = tokens.argmax(dim=-1)
        length = int(ends.max()) + 1
        pre = self._model.modality_preprocessors["text"]
        with torch.inference_mode():
            x = pre.token_embedding(tokens[:, :length]) + pre.pos_embed[:, :length]
            x = self._model.modality_trunks["text"](tokens=x, attn_mask=pre.mask[:length, :length])
            out = self._model.modality_heads["text"](x, seq_len=ends)
        return F.normalize(out.float(), dim=-1).cpu().numpy()

    def embed_images(self, frames: np.ndarray) -> np.ndarray:
        """``[ceil(k/2), d]`` unit rows: one per clip of two consecutive frames."""
        return self._embed("vision", frame_clips(frames))

    def embed_audio(self, clips: list[np.ndarray]) -> np.ndarray:
        """``[len(clips), d]`` unit rows: one per window's 16 kHz audio, its 2-s clips averaged by the model."""
        return np.concatenate([self._embed("audio", audio_clips(c)[None]) for c in clips])
