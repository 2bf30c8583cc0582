"""Tests of the joint-embedding taggers with tiny randomly initialised CLIP and CLAP models."""

from __future__ import annotations

import numpy as np
import pytest
from visual_fixtures import noise_video, write_audio_only

from vidsense.services.errors import InputError
from vidsense.services.media.video import SAMPLE_RATE, Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import PerceptionConfig, create
from vidsense.services.perception.joint.tagger import (
    TagParams,
    Vocabulary,
    concept_vocabulary,
    locate_imagebind,
    locate_joint,
    make_clap_tagger,
    make_clip_tagger,
    resample,
    visual_vocabulary,
)
from vidsense.services.settings import load_settings
from vidsense.services.timeline import make_windows

VOCAB = Vocabulary("test", ("dog", "red ball", "street", "music"), "a photo of {}")


def _config(**kw) -> PerceptionConfig:
    return PerceptionConfig.from_settings(load_settings(**kw))


def test_visual_vocabulary_is_a_few_hundred_unique_terms():
    vocab = visual_vocabulary()
    assert 300 <= len(vocab.terms) == len(set(vocab.terms))
    assert {"person", "bicycle", "cup", "street", "riding a bicycle"} <= set(vocab.terms)
    assert vocab.prompts()[0] == "a photo of person."


def test_concept_vocabulary_dedupes_and_rejects_empty():
    assert concept_vocabulary(["a ball", " a ball ", "", "grass"]).terms == ("a ball", "grass")
    with pytest.raises(InputError, match="empty"):
        concept_vocabulary(["  "])


def test_resample_16k_to_48k_keeps_a_tone():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    up = resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), SAMPLE_RATE, 48_000)
    assert len(up) == 48_000 and up.dtype == np.float32
    assert np.argmax(np.abs(np.fft.rfft(up))) == 440


def test_unset_models_are_clear_input_errors(tmp_path):
    with pytest.raises(InputError, match="clip_model"):
        create("clip-tagger", _config(home=tmp_path))
    with pytest.raises(InputError, match="clap_model"):
        create("clap-tagger", _config(home=tmp_path))


def test_locate_joint_reads_the_model_type_from_the_env(clip_dir, clap_dir, tmp_path):
    env = ModelEnv(home=tmp_path, device="cpu")
    kind, ref = locate_joint(str(clip_dir), env, role="concept joint", setting="concept_joint_models")
    assert kind == "clip" and ref.path == str(clip_dir) and ref.device == "cpu" and ref.local_only
    assert locate_joint(str(clap_dir), env, role="concept joint", setting="concept_joint_models")[0] == "clap"
    with pytest.raises(InputError, match="concept joint model .*nope.*not a bundled model name.*allow_hub"):
        locate_joint(str(tmp_path / "nope"), env, role="concept joint", setting="concept_joint_models")


def test_locate_imagebind_resolves_the_checkpoint_from_the_env(tmp_path, monkeypatch):
    import hashlib
    import sys
    import types

    env = ModelEnv(home=tmp_path, device="cpu")
    # A stand-in for the package's model code, so the checkpoint rules are checked without the extra.
    monkeypatch.setitem(sys.modules, "imagebind.models.imagebind_model", types.ModuleType("imagebind.models.imagebind_model"))
    with pytest.raises(InputError, match=f"checkpoint {tmp_path}/models/imagebind-huge/imagebind_huge.pth not found"):
        locate_imagebind(None, env)
    own = tmp_path / "own.pth"
    own.write_bytes(b"1234")
    ref = locate_imagebind(own, env)
    assert (ref.path, ref.device, ref.local_only, ref.fingerprint) == (str(own), "cpu", True, hashlib.sha256(b"1234").hexdigest())
    # Same name and size, other bytes: another fingerprint, so nothing cached from the old weights is reused.
    own.write_bytes(b"5678")
    assert locate_imagebind(own, env).fingerprint == hashlib.sha256(b"5678").hexdigest()
    # The bare name "imagebind" stands for the checkpoint the caller passes (the imagebind_model setting).
    kind, ref = locate_joint("imagebind", env, role="concept joint", setting="concept_joint_models", imagebind=own)
    assert kind == "imagebind" and ref.path == str(own)
    with pytest.raises(InputError, match="concept joint model imagebind: checkpoint .*imagebind_huge.pth not found"):
        locate_joint("imagebind", env, role="concept joint", setting="concept_joint_models")
    assert locate_joint(str(own), env, role="concept joint", setting="concept_joint_models")[1].path == str(own)


def test_clip_tagger_scores_match_the_model_and_obey_thresholds(clip_dir, tmp_path):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    config = _config(home=tmp_path, clip_model=str(clip_dir), device="cpu", frames_per_window=1)
    tagger = make_clip_tagger(config, VOCAB, TagParams(top_k=2, min_score=0.0))
    media = Media.open(noise_video(tmp_path / "v.mp4", seconds=4.0))
    windows = make_windows(media.info.duration_s, 2.0)

    probs = tagger.scores(0, media, windows[0])
    model, processor = CLIPModel.from_pretrained(clip_dir).eval(), CLIPProcessor.from_pretrained(clip_dir)
    frame = media.sample(0.0, 2.0, 1, config.frame_max_side)
    with torch.no_grad():
        ref = model(**processor(text=VOCAB.prompts(), images=list(frame), return_tensors="pt", padding=True)).logits_per_image.softmax(-1)[0]
    np.testing.assert_allclose(probs, ref.numpy(), atol=1e-4)

    obs = tagger.describe(media, windows).observations
    assert [o.window for o in obs] == [0, 0, 1, 1]
    assert all(o.modality == "sight" and o.kind == "tags" and o.source_model == "clip-tagger" and o.text in VOCAB.terms for o in obs)
    assert obs[0].score >= obs[1].score
    none = make_clip_tagger(config, VOCAB, TagParams(min_score=1.01))
    assert none.describe(media, windows).observations == ()
    assert tagger.params()["vocabularies"]["sight"].startswith("test:") and len(tagger.params()["fingerprint"]) == 64
    assert tagger.params()["frames_per_window"] == 1 and tagger.params()["frame_max_side"] == config.frame_max_side


def test_clap_tagger_tags_audio_at_48k(clap_dir, tmp_path):
    import torch
    from transformers import ClapModel, ClapProcessor

    config = _config(home=tmp_path, clap_model=str(clap_dir), device="cpu")
    tagger = make_clap_tagger(config, VOCAB, TagParams(top_k=3, min_score=0.0))
    assert tagger.encoder.audio_rate == 48_000 and tagger.card.needs_audio and not tagger.card.needs_video
    media = Media.open(noise_video(tmp_path / "a.mp4", seconds=4.0, with_audio=True))
    windows = make_windows(media.info.duration_s, 2.0)

    probs = tagger.scores(0, media, windows[0])
    model, processor = ClapModel.from_pretrained(clap_dir).eval(), ClapProcessor.from_pretrained(clap_dir)
    clip = resample(media.audio_between(0.0, 2.0), SAMPLE_RATE, 48_000)
    with torch.no_grad():
        inputs = processor(text=VOCAB.prompts(), audio=[clip], sampling_rate=48_000, return_tensors="pt", padding=True)
        ref = model(**inputs).logits_per_audio.softmax(-1)[0]
    np.testing.assert_allclose(probs, ref.numpy(), atol=1e-4)

    obs = tagger.describe(media, windows).observations
    assert [o.window for o in obs] == [0, 0, 0, 1, 1, 1]
    assert all(o.modality == "sound" and o.kind == "tags" and o.text in VOCAB.terms for o in obs)


def test_clap_tagger_skips_media_without_audio(clap_dir, tmp_path):
    config = _config(home=tmp_path, clap_model=str(clap_dir), device="cpu")
    tagger = make_clap_tagger(config, VOCAB, TagParams(min_score=0.0))
    silent = Media.open(noise_video(tmp_path / "v.mp4", seconds=2.0))
    assert tagger.describe(silent, make_windows(silent.info.duration_s, 2.0)).observations == ()
    tone = Media.open(write_audio_only(tmp_path / "tone.wav"))
    assert {o.modality for o in tagger.describe(tone, make_windows(tone.info.duration_s, 2.0)).observations} == {"sound"}
