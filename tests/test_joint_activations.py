"""Concept activations from joint models: tiny random CLIP and CLAP on synthetic clips, checked against the models themselves."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from agents_fixtures import encoder
from concept_fixtures import LABELS
from visual_fixtures import noise_video, write_audio_only, write_video

from vidsense.concepts.activations import (
    ActivationCache,
    activations_by_modality,
    blend,
    concept_activations,
)
from vidsense.concepts.bank import ConceptBank, make_concept
from vidsense.concepts.explainer import ConceptConfig, ConceptExplainer
from vidsense.concepts.joint import joint_evidence, joint_scorers
from vidsense.services.errors import InputError
from vidsense.services.media.video import SAMPLE_RATE, Media
from vidsense.services.perception.joint.tagger import HfClapEncoder, HfClipEncoder, resample
from vidsense.services.settings import load_settings
from vidsense.services.timeline import Observation, Timeline, make_windows

CONCEPTS = ("a red ball", "a dog on the street", "music", "a man riding a bicycle")


@pytest.fixture(scope="module")
def clip6s(tmp_path_factory):
    """6 s of random colour blocks (three 2-s windows) with a tone in the first 2 s only."""
    rng = np.random.default_rng(1)
    frames = [np.kron(rng.integers(0, 255, (8, 10, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8)) for _ in range(60)]
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames, fps=10, audio=tone)


def bank() -> ConceptBank:
    return ConceptBank("toy", LABELS, tuple(make_concept(t, "object", {LABELS[i % 3]: 1.0}) for i, t in enumerate(CONCEPTS)))


def timeline_of(media: Media) -> Timeline:
    """The clip's timeline: a few sight and sound observations, window 1 empty."""
    windows = make_windows(media.info.duration_s, 2.0)
    obs = (
        Observation(0, 0.0, 2.0, "sight", "visual-tags", "red ball", 0.9, "objects"),
        Observation(0, 0.0, 2.0, "sound", "audio-tags", "music", 0.6, "tags"),
        Observation(2, 4.0, 6.0, "sight", "visual-tags", "dog", 0.7, "objects"),
    )
    return Timeline(video=media.info, windows=windows, observations=obs)


def settings_with(tmp_path, *models, **extra):
    """Settings with a fresh home (empty caches) that still sees the installed model store."""
    home = tmp_path / "home"
    if not home.exists():
        home.mkdir()
        (home / "models").symlink_to(Path(os.environ["VIDSENSE_HOME"]) / "models", target_is_directory=True)
    return load_settings(home=home, device="cpu", concept_joint_models=[str(m) for m in models], **extra)


def evidence(settings, timeline, bank, **kw):
    """The joint evidence as the Pipeline wires it from ``settings``."""
    scorers = joint_scorers(settings.concept_joint_models, settings.model_env(), settings.imagebind_model)
    return joint_evidence(timeline, bank, scorers, ConceptConfig.from_settings(settings).joint, **kw)


def explainer(settings) -> ConceptExplainer:
    """The concept room as the Pipeline builds it from ``settings`` (with the bundled encoder)."""
    return ConceptExplainer(ConceptConfig.from_settings(settings), encoder(), env=settings.model_env())


def scorer_args(settings):
    return settings.concept_joint_models, settings.model_env()


def cache_of(settings) -> ActivationCache:
    return ActivationCache(settings.home / "cache" / "concepts")


def _features(out):
    return out if hasattr(out, "detach") else out.pooler_output  # transformers 4 / 5


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_clip_activations_are_the_models_cosines(clip_dir, clip6s, tmp_path):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    settings = settings_with(tmp_path, clip_dir, frames_per_window=3)
    media, b = Media.open(clip6s), bank()
    tl = timeline_of(media)
    ev = evidence(settings, tl, b, media=media)
    (part,) = ev.parts
    assert part.modality == "sight" and part.name == f"clip:{clip_dir}"
    assert part.matrix.shape == (3, len(CONCEPTS)) and part.matrix.dtype == np.float32
    assert np.all(np.abs(part.matrix) <= 1.0 + 1e-5) and np.all(part.matrix != 0)

    # Window 1 by hand: mean of the normalised frame embeddings, renormalised, against each text.
    model, processor = CLIPModel.from_pretrained(clip_dir).eval(), CLIPProcessor.from_pretrained(clip_dir)
    frames = media.sample(2.0, 4.0, 3, settings.frame_max_side)
    with torch.no_grad():
        img = _unit(_features(model.get_image_features(**processor(images=list(frames), return_tensors="pt"))).numpy())
        txt = _unit(_features(model.get_text_features(**processor(text=list(b.texts), padding=True, return_tensors="pt"))).numpy())
    np.testing.assert_allclose(part.matrix[1], _unit(img.mean(axis=0)) @ txt.T, atol=1e-5)

    # An audio-only input has no frames: rows of zeros, not an error.
    tone = Media.open(write_audio_only(tmp_path / "tone.wav", seconds=4.0))
    silent = evidence(settings, Timeline(video=tone.info, windows=make_windows(4.0, 2.0), observations=()), b, media=tone)
    assert silent.parts[0].matrix.shape == (2, len(CONCEPTS)) and not silent.parts[0].matrix.any()


def test_clap_activations_and_zero_rows_without_audio(clap_dir, clip6s, tmp_path):
    import torch
    from transformers import ClapModel, ClapProcessor

    settings = settings_with(tmp_path, clap_dir)
    media, b = Media.open(clip6s), bank()
    (part,) = evidence(settings, timeline_of(media), b, media=media).parts
    assert part.modality == "sound" and part.matrix.shape == (3, len(CONCEPTS))
    # Audio only in the first window: the others read nothing.
    assert np.all(part.matrix[0] != 0) and not part.matrix[1:].any()

    model, processor = ClapModel.from_pretrained(clap_dir).eval(), ClapProcessor.from_pretrained(clap_dir)
    audio = resample(media.audio_between(0.0, 2.0), SAMPLE_RATE, 48_000)
    with torch.no_grad():
        aud = _unit(_features(model.get_audio_features(**processor(audio=[audio], sampling_rate=48_000, return_tensors="pt"))).numpy())
        txt = _unit(_features(model.get_text_features(**processor(text=list(b.texts), padding=True, return_tensors="pt"))).numpy())
    np.testing.assert_allclose(part.matrix[0], (aud @ txt.T)[0], atol=1e-5)

    no_audio = Media.open(noise_video(tmp_path / "silent.mp4", seconds=4.0))
    tl = Timeline(video=no_audio.info, windows=make_windows(no_audio.info.duration_s, 2.0), observations=())
    assert not evidence(settings, tl, b, media=no_audio).parts[0].matrix.any()


@pytest.mark.slow
def test_weight_0_is_text_1_is_joint_and_between_blends(clip_dir, clip6s, tmp_path):
    media, b = Media.open(clip6s), bank()
    tl = timeline_of(media)
    enc = encoder()
    text = concept_activations(tl, b, enc)

    only_text = explainer(settings_with(tmp_path, clip_dir, concept_joint_weight=0.0)).activations(tl, b, media=media)
    assert np.array_equal(only_text.matrix, text.matrix) and only_text.encoder == enc.name

    joint = evidence(settings_with(tmp_path, clip_dir), tl, b, media=media).parts[0].matrix
    only_joint = explainer(settings_with(tmp_path, clip_dir, concept_joint_weight=1.0)).activations(tl, b, media=media)
    np.testing.assert_allclose(only_joint.matrix, joint, atol=1e-7)
    assert only_joint.encoder == f"{enc.name}+clip:{clip_dir}"

    mixed = explainer(settings_with(tmp_path, clip_dir, concept_joint_weight=0.25)).activations(tl, b, media=media)
    np.testing.assert_allclose(mixed.matrix, 0.75 * text.matrix + 0.25 * joint, atol=1e-6)
    assert mixed.texts == text.texts  # the explanation still shows the window text


def test_a_cached_matrix_costs_no_model_call(clip_dir, clip6s, tmp_path, monkeypatch):
    calls = []
    embed = HfClipEncoder.embed_images
    monkeypatch.setattr(HfClipEncoder, "embed_images", lambda self, frames: calls.append(len(frames)) or embed(self, frames))
    settings, b = settings_with(tmp_path, clip_dir), bank()
    tl = timeline_of(Media.open(clip6s))

    first = evidence(settings, tl, b, cache=cache_of(settings))
    assert len(calls) == 3  # one per window, the file opened from the timeline's path
    files = list((settings.home / "cache" / "concepts").glob("joint-*.npz"))
    assert len(files) == 1

    # A new process: an empty memory cache, the matrix read back from disk.
    again = evidence(settings, tl, b, cache=cache_of(settings))
    assert len(calls) == 3 and np.array_equal(again.parts[0].matrix, first.parts[0].matrix)

    # Anything the matrix depends on is in the key: other frame sampling, other bank.
    evidence(settings_with(tmp_path, clip_dir, frames_per_window=3), tl, b, cache=cache_of(settings))
    assert len(calls) == 6
    other = ConceptBank("toy", LABELS, b.concepts[:3])
    evidence(settings, tl, other, cache=cache_of(settings))
    assert len(calls) == 9


@pytest.mark.slow
def test_dropping_a_modality_drops_its_joint_part(clip_dir, clap_dir, clip6s, tmp_path):
    media, b = Media.open(clip6s), bank()
    tl = timeline_of(media)
    enc = encoder()
    ev = evidence(settings_with(tmp_path, clip_dir, clap_dir), tl, b, media=media)
    sight, sound = (p.matrix for p in ev.parts)
    assert [p.modality for p in ev.parts] == ["sight", "sound"] and ev.weight == 0.5

    full = ev.apply(concept_activations(tl, b, enc))
    np.testing.assert_allclose(full.matrix, 0.5 * concept_activations(tl, b, enc).matrix + 0.25 * (sight + sound), atol=1e-6)
    assert full.encoder == f"{enc.name}+clip:{clip_dir}+clap:{clap_dir}"

    without = activations_by_modality(tl, b, enc, "without", joint=ev)
    no_sight = concept_activations(tl, b, enc, ["sound"])
    np.testing.assert_allclose(without["sight"].matrix, 0.5 * no_sight.matrix + 0.25 * sound, atol=1e-6)
    np.testing.assert_allclose(without["sound"].matrix, 0.5 * concept_activations(tl, b, enc, ["sight"]).matrix + 0.25 * sight, atol=1e-6)

    # A restriction to speech keeps neither joint part; a modality only a joint model sees is still a group.
    assert not ev.only(["speech"]).matrix().any()
    sight_only_text = Timeline(video=tl.video, windows=tl.windows, observations=tl.observations[:1])
    assert set(activations_by_modality(sight_only_text, b, enc, "without", joint=ev)) == {"sight", "sound"}
    with pytest.raises(ValueError, match="same windows"):
        blend(full, concept_activations(Timeline(video=tl.video, windows=tl.windows[:2], observations=()), b, enc))


def test_missing_or_foreign_joint_models_are_one_line_errors(tmp_path):
    missing = tmp_path / "no-such-clip"
    with pytest.raises(InputError) as info:
        joint_scorers(*scorer_args(settings_with(tmp_path, missing)))
    assert str(missing) in str(info.value) and "\n" not in str(info.value)

    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InputError, match="'bert' model; concept_joint_models takes clip, clap, imagebind"):
        joint_scorers(*scorer_args(settings_with(tmp_path, bert)))
    # Without the imagebind extra: how to install it; with it: where the checkpoint goes.
    with pytest.raises(InputError, match="install it with: pip install|imagebind_huge.pth not found"):
        joint_scorers(*scorer_args(settings_with(tmp_path, "imagebind")))

    import vidsense

    # The pipeline refuses before it spends time on perception.
    with pytest.raises(InputError, match=re.escape(str(missing))):
        vidsense.Pipeline(settings=settings_with(tmp_path, missing)).explain(tmp_path / "not-even-a-video.mp4", "a,b")


def test_settings_take_a_path_list_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDSENSE_CONCEPT_JOINT_MODELS", "/m/clip, /m/clap")
    assert load_settings().concept_joint_models == ["/m/clip", "/m/clap"]
    monkeypatch.setenv("VIDSENSE_CONCEPT_JOINT_MODELS", '["/m/a,b"]')
    assert load_settings().concept_joint_models == ["/m/a,b"]
    with pytest.raises(InputError, match="concept_joint_weight"):
        load_settings(concept_joint_weight=1.5)


@pytest.mark.slow
def test_pipeline_explain_blends_the_joint_models(clip_dir, clap_dir, clip6s, tmp_path, monkeypatch):
    import vidsense

    calls = []
    embed = HfClapEncoder.embed_audio
    monkeypatch.setattr(HfClapEncoder, "embed_audio", lambda self, clips: calls.append(1) or embed(self, clips))
    pipe = vidsense.Pipeline(settings=settings_with(tmp_path, clip_dir, clap_dir, perception=["visual-tags"]))
    res = pipe.explain(clip6s, "dog,street,music", reasoner="embedding", llm_occlusion=False)
    expl = res.explanation
    assert expl.encoder == f"{pipe.reasoner.encoder.name}+clip:{clip_dir}+clap:{clap_dir}"
    assert res.to_dict()["explanation"]["encoder"] == expl.encoder
    # CLAP hears the tone although no perception model reads sound: dropping sound is an intervention.
    assert {s.group for s in expl.attributions.feature_ablation.by_modality} == {"sight", "sound"}
    assert {r.target for r in expl.interventions if r.action == "drop_modality"} == {"sight", "sound"}
    assert calls == [1]

    again = vidsense.Pipeline(settings=pipe.settings).explain(clip6s, "dog,street,music", reasoner="embedding", llm_occlusion=False)
    assert calls == [1] and again.explanation.encoder == expl.encoder
    assert again.explanation.prediction == expl.prediction


def test_cli_joint_model_flag_reaches_the_settings(capsys, tmp_path):
    from vidsense.app import cli

    missing = tmp_path / "clip-folder-that-is-not-there"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["explain", str(tmp_path / "x.mp4"), "--labels", "a,b", "--joint-model", str(missing)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and str(missing) in err and err.count("\n") == 1, err
