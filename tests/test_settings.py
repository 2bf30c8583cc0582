import pytest

from vidsense.services.errors import InputError
from vidsense.services.settings import PROFILES, load_settings


@pytest.fixture
def toml_file(tmp_path, monkeypatch):
    f = tmp_path / "vidsense.toml"
    monkeypatch.setenv("VIDSENSE_CONFIG", str(f))
    return f


def test_defaults_come_from_the_embedded_profile(toml_file):
    s = load_settings()
    assert s.profile == "embedded"
    assert s.perception == PROFILES["embedded"]["perception"]
    assert s.llm_model == "qwen2.5-coder-1.5b"
    assert s.window_s == 2.0
    assert s.allow_hub is False


def test_precedence_flags_over_env_over_file(toml_file, monkeypatch):
    toml_file.write_text('window_s = 3.0\ntop_k = 7\nshortlist = 11\n')
    s = load_settings()
    assert (s.window_s, s.top_k, s.shortlist) == (3.0, 7, 11)
    monkeypatch.setenv("VIDSENSE_WINDOW_S", "4")
    monkeypatch.setenv("VIDSENSE_TOP_K", "9")
    s = load_settings()
    assert (s.window_s, s.top_k, s.shortlist) == (4.0, 9, 11)
    s = load_settings(window_s=1.5, top_k=None)
    assert (s.window_s, s.top_k, s.shortlist) == (1.5, 9, 11)


def test_profile_fills_only_unset_fields(toml_file):
    s = load_settings(profile="full", llm_model="/models/llama.gguf")
    assert s.perception == PROFILES["full"]["perception"]
    assert s.llm_model == "/models/llama.gguf"
    toml_file.write_text('profile = "full"\nperception = ["speech"]\n')
    s = load_settings()
    assert s.profile == "full" and s.perception == ["speech"]
    # The frame taggers read one frame a window on CPUs (embedded), two with the full backends,
    # unless the user says.
    assert (load_settings(profile="embedded").frames_per_window, s.frames_per_window) == (1, 2)
    assert load_settings(profile="embedded", frames_per_window=3).frames_per_window == 3


def test_bad_values_are_one_line_input_errors(toml_file, monkeypatch):
    with pytest.raises(InputError, match="window_s"):
        load_settings(window_s=-1)
    monkeypatch.setenv("VIDSENSE_PROFILE", "huge")
    with pytest.raises(InputError, match="profile"):
        load_settings()


def test_unknown_key_in_file_is_rejected(toml_file):
    toml_file.write_text("windw_s = 2\n")
    with pytest.raises(InputError, match="windw_s"):
        load_settings()


def test_malformed_toml_names_the_file(toml_file):
    toml_file.write_text("window_s = = 2\n")
    with pytest.raises(InputError, match="vidsense.toml"):
        load_settings()


def test_home_env(toml_file, monkeypatch, tmp_path):
    monkeypatch.setenv("VIDSENSE_HOME", str(tmp_path / "h"))
    assert load_settings().home == tmp_path / "h"


def test_budget_is_checked_when_the_settings_load(toml_file):
    assert load_settings(budget="balanced").budget == "balanced" and load_settings(budget="2.5").budget == "2.5"
    for bad, why in (("whenever", "expected fast, balanced, best or seconds"), ("-1", "above 0")):
        with pytest.raises(InputError, match=f"setting budget: .*{why}"):
            load_settings(budget=bad)
