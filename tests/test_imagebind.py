"""ImageBind on the ``imagebind-packaged`` model code: a tiny random ImageBindModel, end to end.

The preprocessing tests need no model code; the rest skip when the ``imagebind``
extra is not installed.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from concept_fixtures import LABELS, toy_bank
from visual_fixtures import noise_video, write_video

from vidsense.concepts.explainer import ConceptConfig
from vidsense.concepts.joint import joint_evidence, joint_scorers
from vidsense.services.errors import InputError, ModelError
from vidsense.services.media.video import SAMPLE_RATE, Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import PerceptionConfig
from vidsense.services.perception.joint import imagebind
from vidsense.services.perception.joint.tagger import TagParams, Vocabulary, make_imagebind_tagger
from vidsense.services.perception.pretrained import Pretrained
from vidsense.services.settings import load_settings
from vidsense.services.timeline import Timeline, make_windows

# imagebind_huge with every width and depth cut down: 1.7 M parameters, the same code paths.
TINY = {
    "out_embed_dim": 16,
    **{f"{m}_embed_dim": 32 for m in ("vision", "audio", "text")},
    **{f"{m}_embed_dim": 16 for m in ("depth", "thermal", "imu")},
    **{f"{m}_num_blocks": 1 for m in ("vision", "audio", "text", "depth", "thermal", "imu")},
    **{f"{m}_num_heads": 2 for m in ("vision", "audio", "text", "depth", "thermal", "imu")},
}
VOCAB = Vocabulary("test", ("dog", "red ball", "street", "music"), "a photo of {}")


@pytest.fixture(scope="module")
def code():
    """The package's model code (skips without the ``imagebind`` extra)."""
    try:
        return imagebind.model_code()
    except InputError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def checkpoint(code, tmp_path_factory):
    """A randomly initialised tiny ImageBindModel's state dict, saved as a user's ``.pth``."""
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("imagebind") / "tiny.pth"
    torch.save(code.ImageBindModel(**TINY).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def encoder(checkpoint):
    return imagebind.ImageBindEncoder(_ref(checkpoint), TINY)


@pytest.fixture
def tiny_layout(monkeypatch):
    """The tiny layout in place of imagebind_huge, for code that builds the encoder itself."""
    monkeypatch.setattr(imagebind, "ARCHITECTURE", TINY)


def _ref(path):
    return Pretrained(str(path), "imagebind", "cpu", True, "test")


def _tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_frames_become_two_frame_clips_resized_cropped_and_normalised():
    from PIL import Image

    rng = np.random.default_rng(0)
    frames = np.kron(rng.integers(0, 255, (3, 9, 16, 3), dtype=np.uint8), np.ones((1, 10, 10, 1), np.uint8))  # 3 frames, 90 x 160
    x = imagebind.frame_clips(frames).numpy()
    assert x.shape == (2, 1, 3, 2, 224, 224)
    # An odd last frame is repeated into its own clip.
    np.testing.assert_array_equal(x[1, 0, :, 0], x[1, 0, :, 1])
    # imagebind.data's transform: Resize(224, bicubic) on the PIL image, CenterCrop(224), CLIP mean / std.
    img = Image.fromarray(frames[0]).resize((398, 224), Image.BICUBIC)
    crop = np.asarray(img, np.float32)[:, 87:311] / 255.0
    ref = ((crop - imagebind.PIXEL_MEAN) / imagebind.PIXEL_STD).transpose(2, 0, 1)
    assert np.abs(x[0, 0, :, 0] - ref).mean() < 0.02


def test_audio_becomes_normalised_kaldi_fbank_clips():
    short = imagebind.audio_clips(_tone(1.0)).numpy()
    assert short.shape == (1, 1, imagebind.MEL_BINS, imagebind.MEL_FRAMES)
    # 1 s fills 98 frames of 25 ms every 10 ms; the rest is zero padding, normalised like the rest.
    pad = (0.0 - imagebind.AUDIO_MEAN) / imagebind.AUDIO_STD
    assert np.allclose(short[0, 0, :, 98:], pad, atol=1e-6) and not np.allclose(short[0, 0, :, 97], pad, atol=1e-6)
    # The tone's energy is in the mel band around 440 Hz (Kaldi's mel scale, 20 Hz to Nyquist).
    mel = lambda f: 1127.0 * np.log1p(f / 700.0)  # noqa: E731
    centres = mel(20.0) + np.arange(1, imagebind.MEL_BINS + 1) * (mel(8000.0) - mel(20.0)) / (imagebind.MEL_BINS + 1)
    assert abs(int(short[0, 0, :, :98].mean(axis=1).argmax()) - int(np.abs(centres - mel(440.0)).argmin())) <= 1
    # A window longer than a clip: three 2-s clips from its start to its end.
    long = imagebind.audio_clips(np.concatenate([_tone(2.0, 300.0), np.zeros(SAMPLE_RATE, np.float32), _tone(2.0, 2000.0)])).numpy()
    assert long.shape == (3, 1, imagebind.MEL_BINS, imagebind.MEL_FRAMES)
    assert long[0, 0, :, :190].mean(axis=1).argmax() < long[2, 0, :, :190].mean(axis=1).argmax()


def kaldi_fbank(x: np.ndarray, bins: int = 128, rate: int = SAMPLE_RATE) -> np.ndarray:
    """``[frames, bins]``: torchaudio.compliance.kaldi.fbank as ImageBind calls it (htk_compat, hanning
    window, no dither, no energy, 25/10 ms frames, snip_edges), written out from Kaldi's recipe in plain
    numpy, independently of the transformers code :func:`imagebind.fbank` uses (torchaudio has no
    release for this torch, so it cannot be the reference here)."""
    x = np.asarray(x, np.float64) - np.mean(x)
    size, shift, fft = 400, 160, 512
    n = 1 + (len(x) - size) // shift
    frames = np.stack([x[i * shift : i * shift + size] for i in range(n)])
    frames -= frames.mean(axis=1, keepdims=True)  # remove_dc_offset
    frames -= 0.97 * np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)  # pre-emphasis, first sample against itself
    frames *= 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / (size - 1))  # symmetric Hann ("hanning")
    power = np.abs(np.fft.rfft(frames, n=fft)) ** 2
    mel = lambda f: 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    low, high = mel(20.0), mel(rate / 2)
    delta = (high - low) / (bins + 1)
    left = low + np.arange(bins)[:, None] * delta
    centre, right = left + delta, left + 2 * delta
    m = mel(np.arange(fft // 2) * rate / fft)[None]
    banks = np.maximum(0.0, np.minimum((m - left) / (centre - left), (right - m) / (right - centre)))
    banks = np.pad(banks, ((0, 0), (0, 1)))  # Kaldi leaves out the Nyquist bin
    return np.log(np.maximum(power @ banks.T, np.finfo(np.float32).eps))


def test_fbank_matches_kaldis_recipe():
    x = _tone(2.0) + 0.05 * np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE).astype(np.float32)
    ref = kaldi_fbank(x)
    assert ref.shape == (198, 128)
    np.testing.assert_allclose(imagebind.fbank(x)[:, : ref.shape[0]], ref.T, atol=2e-3)


def test_tokens_match_the_packages_tokenizer_and_keep_the_end_token(code):
    import torch

    texts = ["a dog", "The sound of a Guitar!"]
    assert torch.equal(imagebind.tokenize(texts), torch.stack([imagebind._tokenizer()(t) for t in texts]))
    long = imagebind.tokenize([" ".join(["word"] * 100)])[0]
    assert int(long.argmax()) == imagebind.CONTEXT_LENGTH - 1  # the end token, which the model reads


def test_tiny_model_embeds_vision_audio_and_text(encoder):
    import torch

    frames = np.random.default_rng(0).integers(0, 255, (3, 90, 160, 3), dtype=np.uint8)
    img, aud, txt = encoder.embed_images(frames), encoder.embed_audio([_tone(1.0), _tone(5.0)]), encoder.embed_texts(list(VOCAB.prompts()))
    assert (img.shape, aud.shape, txt.shape) == ((2, 16), (2, 16), (4, 16))
    for e in (img, aud, txt):
        assert e.dtype == np.float32 and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(aud[0], aud[1]) and not np.allclose(txt[0], txt[1])
    # A single frame is a still image: the model pads it to a clip by repetition, like our odd last frame.
    model = encoder._model
    with torch.inference_mode():
        still = model({"vision": imagebind.frame_clips(frames[:1])[:, 0, :, 0]})["vision"]
    np.testing.assert_allclose(encoder.embed_images(frames[:1]), torch.nn.functional.normalize(still, dim=-1).numpy(), atol=1e-5)
    assert encoder.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)  # the text tower's temperature, as initialised
    # Texts run without the padding after the longest one: the same rows as the model's full 77 tokens.
    texts = ["a dog", "the sound of a guitar playing on a street at night"]
    with torch.inference_mode():
        full = model({"text": imagebind.tokenize(texts)})["text"]
    np.testing.assert_allclose(encoder.embed_texts(texts), torch.nn.functional.normalize(full, dim=-1).numpy(), atol=1e-5)


def test_checkpoint_problems_are_one_line_errors(code, checkpoint, tmp_path):
    import torch

    with pytest.raises(InputError, match="my-tagger: checkpoint .*nope.pth not found"):
        imagebind.locate(tmp_path / "nope.pth", ModelEnv(home=tmp_path, device="cpu"), who="my-tagger")

    def load_error(state, architecture=TINY) -> str:
        path = tmp_path / "bad.pth"
        if isinstance(state, bytes):
            path.write_bytes(state)
        else:
            torch.save(state, path)
        with pytest.raises(ModelError) as info:
            imagebind.ImageBindEncoder(_ref(path), architecture)
        message = str(info.value)
        assert message.startswith(f"ImageBind checkpoint {path}: ") and "\n" not in message
        return message

    assert "not a torch state dict" in load_error(b"not a checkpoint")
    assert "holds a list" in load_error([1, 2])
    state = torch.load(checkpoint, weights_only=True)
    state.pop("modality_heads.vision.2.weight")
    state["extra.weight"] = torch.zeros(1)
    state["modality_heads.text.proj.1.weight"] = torch.zeros(8, 32)
    message = load_error(state)
    assert "1 missing keys: modality_heads.vision.2.weight" in message and "1 unexpected keys: extra.weight" in message
    assert "1 shape mismatches, e.g. modality_heads.text.proj.1.weight: [8, 32] in the file, [16, 32] expected" in message
    # The huge layout is the default: the tiny file does not match it.
    assert "not the imagebind_huge layout" in load_error(torch.load(checkpoint, weights_only=True), architecture=None)


def test_the_checkpoint_is_downloaded_only_with_allow_hub(tmp_path, monkeypatch):
    import sys
    import types

    import torch

    monkeypatch.setitem(sys.modules, "imagebind.models.imagebind_model", types.ModuleType("imagebind.models.imagebind_model"))
    fetched = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, progress: fetched.append(url) or open(dst, "wb").write(b"weights"))
    with pytest.raises(InputError, match="not found.*allow_hub"):
        imagebind.locate(None, ModelEnv(home=tmp_path, device="cpu"))
    with pytest.raises(InputError, match="own.pth not found"):  # a path the user named is never fetched
        imagebind.locate(tmp_path / "own.pth", ModelEnv(home=tmp_path, device="cpu", allow_hub=True))
    hub = ModelEnv(home=tmp_path, device="cpu", allow_hub=True)
    ref = imagebind.locate(None, hub)
    assert fetched == [imagebind.CHECKPOINT_URL] and ref.path == str(tmp_path / "models" / imagebind.CHECKPOINT)
    assert ref.fingerprint == hashlib.sha256(b"weights").hexdigest()
    imagebind.locate(None, hub)
    assert len(fetched) == 1


def test_timm_is_used_when_it_imports_and_torch_stands_in_otherwise(monkeypatch):
    import sys
    import types

    import torch

    monkeypatch.setitem(sys.modules, "timm.models.layers", types.ModuleType("timm.models.layers"))
    assert imagebind._timm_stand_ins() == {}
    monkeypatch.setitem(sys.modules, "timm.models.layers", None)
    stand_ins = imagebind._timm_stand_ins()
    assert set(stand_ins) == {"timm", "timm.layers", "timm.models", "timm.models.layers"}
    assert stand_ins["timm.models.layers"].DropPath is torch.nn.Identity and stand_ins["timm.layers"].trunc_normal_ is torch.nn.init.trunc_normal_


def test_model_code_missing_says_how_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "imagebind.models.imagebind_model", None)
    with pytest.raises(InputError, match=r"imagebind-tagger: ImageBind's model code (is not installed|cannot be imported).*pip install \"vidsense\[imagebind\]\""):
        make_imagebind_tagger(PerceptionConfig.from_settings(load_settings(home=tmp_path)))


@pytest.mark.slow
def test_tagger_tags_frames_and_audio_end_to_end(checkpoint, tiny_layout, tmp_path):
    config = PerceptionConfig.from_settings(load_settings(home=tmp_path, imagebind_model=str(checkpoint), device="cpu"))
    tagger = make_imagebind_tagger(config, TagParams(top_k=2, min_score=0.0), sight=VOCAB, sound=Vocabulary("sounds", VOCAB.terms))
    media = Media.open(noise_video(tmp_path / "v.mp4", seconds=4.0, with_audio=True))
    obs = tagger.describe(media, make_windows(media.info.duration_s, 2.0)).observations
    assert [(o.window, o.modality) for o in obs] == [(0, "sight")] * 2 + [(0, "sound")] * 2 + [(1, "sight")] * 2 + [(1, "sound")] * 2
    assert all(o.source_model == "imagebind-tagger" and o.kind == "tags" and o.text in VOCAB.terms and 0 < o.score <= 1 for o in obs)
    assert tagger.params()["fingerprint"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()


@pytest.mark.slow
def test_joint_concept_activations_read_frames_and_audio(checkpoint, tiny_layout, tmp_path):
    rng = np.random.default_rng(1)
    frames = [np.kron(rng.integers(0, 255, (8, 10, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8)) for _ in range(40)]
    media = Media.open(write_video(tmp_path / "clip.mp4", frames, fps=10, audio=_tone(2.0, 300.0)))  # sound in window 0 only
    settings = load_settings(home=tmp_path, device="cpu", concept_joint_models=["imagebind"], imagebind_model=str(checkpoint))
    config = ConceptConfig.from_settings(settings).joint
    scorers = joint_scorers(settings.concept_joint_models, settings.model_env(), settings.imagebind_model)
    assert [s.modality for s in scorers] == ["sight", "sound"] and scorers[0].model is scorers[1].model
    bank = toy_bank()
    timeline = Timeline(video=media.info, windows=make_windows(media.info.duration_s, 2.0), observations=())
    sight, sound = (p.matrix for p in joint_evidence(timeline, bank, scorers, config, media=media).parts)
    assert sight.shape == sound.shape == (2, len(bank)) and len(LABELS) == 3
    assert np.all(sight != 0) and np.all(sound[0] != 0) and not sound[1].any()

    # Window 0 by hand: the clip's embedding and the window's audio against each concept text.
    enc = scorers[0].encoder
    text = enc.embed_texts(list(bank.texts))
    np.testing.assert_allclose(sight[0], (enc.embed_images(media.sample(0.0, 2.0, config.frames_per_window, config.frame_max_side)) @ text.T)[0], atol=1e-5)
    np.testing.assert_allclose(sound[0], (enc.embed_audio([media.audio_between(0.0, 2.0)]) @ text.T)[0], atol=1e-5)
