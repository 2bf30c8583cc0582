"""Tests of the BLIP-2 captioner, with a tiny randomly initialised BLIP-2 built offline."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from visual_fixtures import WORDS, noise_video, tiny_blip2, write_audio_only

from vidsense.services.errors import InputError, ModelError
from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import PerceptionConfig, create
from vidsense.services.perception.captions import Blip2Captioner, CaptionParams
from vidsense.services.settings import load_settings
from vidsense.services.timeline import make_windows


@pytest.fixture(scope="module")
def blip2_dir(tmp_path_factory):
    return tiny_blip2(tmp_path_factory.mktemp("blip2"))


def _env(tmp_path):
    return ModelEnv(home=tmp_path, device="cpu")


def test_unset_caption_model_is_a_clear_input_error(tmp_path):
    with pytest.raises(InputError, match="caption_model"):
        create("blip2", PerceptionConfig.from_settings(load_settings(home=tmp_path)))


def test_missing_folder_without_hub_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="allow_hub"):
        Blip2Captioner(str(tmp_path / "nope"), _env(tmp_path))


def test_folder_without_a_model_is_a_model_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="Blip2ForConditionalGeneration"):
        Blip2Captioner(str(empty), _env(tmp_path))


def test_tiny_blip2_captions_every_window_in_batches(blip2_dir, tmp_path):
    config = PerceptionConfig.from_settings(load_settings(home=tmp_path, caption_model=str(blip2_dir), device="cpu", frame_max_side=320))
    captioner = Blip2Captioner(config.caption_model, config.env, CaptionParams(max_new_tokens=4, num_beams=1, batch_size=2), frame_max_side=config.frame_max_side)
    media = Media.open(noise_video(tmp_path / "v.mp4", seconds=6.0))
    windows = make_windows(media.info.duration_s, 2.0)
    obs = captioner.describe(media, windows).observations
    assert [o.window for o in obs] == [0, 1, 2]  # 3 windows over 2 batches
    for o in obs:
        assert o.modality == "sight" and o.kind == "caption" and o.source_model == "blip2" and o.score == 1.0
        words = o.text.split()
        assert 1 <= len(words) <= 4 and set(words) <= set(WORDS)
    again = captioner.describe(media, windows)
    assert [o.text for o in again.observations] == [o.text for o in obs]  # greedy decoding is deterministic
    assert again.notes == ()
    params = captioner.params()
    assert params["model"] == str(blip2_dir) and len(params["fingerprint"]) == 64 and params["half"] is False
    assert params["frame_max_side"] == 320 and params["max_new_tokens"] == 4
    # The registry builds the same model from the config.
    assert create("blip2", config).params() == {**params, **asdict(CaptionParams())}


def test_audio_only_media_gets_no_caption(blip2_dir, tmp_path):
    captioner = Blip2Captioner(str(blip2_dir), _env(tmp_path))
    media = Media.open(write_audio_only(tmp_path / "tone.wav"))
    assert captioner.describe(media, make_windows(media.info.duration_s, 2.0)).observations == ()
