"""One typed settings object for the whole product.

Sources, highest precedence first: explicit arguments (CLI flags, SDK keyword
arguments), environment variables ``VIDSENSE_<FIELD>``, a TOML file
(``$VIDSENSE_CONFIG`` or ``./vidsense.toml``), then the named profile's
defaults, then the field defaults. Profiles are data in :data:`PROFILES`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from vidsense.services.errors import InputError

if TYPE_CHECKING:
    from vidsense.services.model_store import ModelEnv

# What each profile turns on when the user does not say otherwise.
PROFILES: dict[str, dict[str, Any]] = {
    "embedded": {
        "perception": ["speech", "audio-tags", "visual-tags", "ocr", "pose", "flow", "action"],
        "speech_model": "whisper-tiny-en",
        # One frame a window for the COCO and ImageNet taggers: on the development set it kept every
        # family's top-1 of two frames (37/85; top-5 59 against 57; benchmarks/routes.py --check)
        # and cut the taggers' 0.9 s on a 10 s clip to 0.5 s. The on-screen text reader reads the
        # same frame of a window, so it finds it decoded (Media.sample_shared).
        "frames_per_window": 1,
        "llm_model": "qwen2.5-coder-1.5b",
        "embedding_model": "minilm-l6-v2",
    },
    "full": {
        "perception": ["blip2", "speech", "audio-tags", "clip-tagger", "clap-tagger", "ocr", "pose", "flow", "action"],
        "speech_model": "whisper-base",
        "frames_per_window": 2,
        "llm_model": "",  # the user must point at a Llama-family GGUF
        "embedding_model": "minilm-l6-v2",
    },
}


# Present when a GPU driver is loaded (NVIDIA, ROCm).
GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")


def default_home() -> Path:
    """``$XDG_CACHE_HOME/vidsense`` or ``~/.cache/vidsense``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vidsense"


def config_file() -> Path:
    """The TOML file read for settings: ``$VIDSENSE_CONFIG`` or ``./vidsense.toml``."""
    return Path(os.environ.get("VIDSENSE_CONFIG", "vidsense.toml"))


class Settings(BaseSettings):
    """Every knob of vidsense. See the module docstring for precedence."""

    model_config = SettingsConfigDict(env_prefix="VIDSENSE_", extra="forbid", validate_default=True)

    profile: Literal["embedded", "full"] = "embedded"
    home: Path = Field(default_factory=default_home, description="model store and cache root")
    allow_hub: bool = Field(False, description="let full backends download from a model hub (off: offline)")
    device: Literal["auto", "cpu", "cuda"] = "auto"

    # Timeline
    window_s: float = Field(2.0, gt=0)
    window_count: int | None = Field(None, ge=1, description="cut the video into this many windows instead")
    frames_per_window: int | None = Field(None, ge=1, le=32, description="frames the frame taggers read per window (default: the profile's)")
    frame_max_side: int = Field(640, ge=64)
    perception: list[str] | None = Field(None, description="perception models to run (default: the profile's)")
    # No limit by default: memory does not grow with a video's length (motion clips and audio
    # are read group by group), so a long video costs only time, which its owner chose to spend.
    # Services taking videos from others set one.
    max_duration_s: float | None = Field(None, gt=0, description="refuse videos longer than this many seconds (default: no limit)")
    # Two lanes: the light models one thread each side by side, a heavy one (I3D) alone on every
    # core in its turn (services/perception/turns.py). On 2 cores the bundled clip's warm
    # perception took 3.36 s against 3.75 s one model after another (medians of 20, interleaved).
    perception_threads: int = Field(
        default_factory=lambda: 1 if (os.cpu_count() or 1) < 2 else 2,
        ge=1,
        description="perception models run side by side on this many threads (default: 2, 1 on a single core)",
    )
    cache: bool = True
    # About 15 KB a video with the embedded profile: 2 GB holds ~130k videos (several full eval
    # sets) and stays a small share of a laptop's disk. Past it the least recently used rows go.
    cache_max_mb: float = Field(2048.0, gt=0, description="perception cache size cap in MB; least recently used results are evicted past it")

    # Models: registry names from the model store, or local paths / hub ids
    speech_model: str | None = None
    speech_backend: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    llm_backend: Literal["llama-cpp", "openai-compatible"] = "llama-cpp"
    llm_model: str | None = None
    llm_n_ctx: int = Field(4096, ge=512)
    llm_threads: int | None = Field(None, ge=1)
    llm_base_url: str = "http://127.0.0.1:8000/v1"
    llm_api_key: str = "not-needed"
    llm_timeout_s: float = Field(60.0, gt=0)
    embedding_model: str | None = None
    caption_model: str | None = Field(None, description="BLIP-2 dir or hub id (full profile)")
    clip_model: str | None = None
    clap_model: str | None = None
    imagebind_model: str | None = Field(None, description="ImageBind checkpoint (imagebind_huge.pth); needs the imagebind extra")

    # Concept activations
    concept_joint_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "joint models whose frame / audio similarity to each concept text joins the text activations: "
            "CLIP folders (sight), CLAP folders (sound), 'imagebind' or an ImageBind .pth (both); local paths, "
            "or hub ids with allow_hub. In the environment: a JSON list or comma-separated paths"
        ),
    )
    concept_joint_weight: float = Field(
        0.5, ge=0.0, le=1.0,
        description="weight of the joint models' activations: 0 = text only, 1 = joint only, in between = the weighted mean",
    )
    concept_evidence: bool = Field(True, description="the zero-shot concept model also reads the perception models' classes as evidence concepts")

    # Reasoning
    reasoner: Literal["llm", "fused", "cascade", "embedding"] = Field("cascade", description="route used when a call names none and no budget is set")
    cascade_margin: float = Field(
        0.0, ge=0.0, le=1.0,
        description="the cascade asks the LLM when the fused top-1 leads the second by less than this (0: only --reasoner llm runs it)",
    )
    budget: str | None = Field(None, description="fast, balanced, best or seconds of reasoning: pick the most accurate measured route that fits")
    shortlist: int = Field(20, ge=1)
    top_k: int = Field(5, ge=1)

    # Interfaces
    max_upload_mb: int = Field(200, ge=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=config_file()))

    @field_validator("budget")
    @classmethod
    def _check_budget(cls, value: str | None) -> str | None:
        # Checked here so a bad value fails when the settings load, not at the first video.
        if value is None or value in ("fast", "balanced", "best"):
            return value
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError("expected fast, balanced, best or seconds") from None
        if seconds <= 0:
            raise ValueError("expected seconds above 0")
        return value

    @field_validator("concept_joint_models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        # One path is the common case in an environment variable; JSON lists stay possible.
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",") if p.strip()]
        return value

    @model_validator(mode="after")
    def _apply_profile(self) -> "Settings":
        for key, value in PROFILES[self.profile].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        return self

    def resolved_device(self) -> str:
        """``cuda`` when asked for or available under ``auto``, else ``cpu``."""
        if self.device != "auto":
            return self.device
        # Importing torch costs seconds, and every Pipeline resolves the device at start: without a
        # GPU driver (NVIDIA's or ROCm's) torch could not see a GPU either, so skip it.
        if "torch" not in sys.modules and not any(os.path.exists(p) for p in GPU_DRIVER_FILES):
            return "cpu"
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"

    def model_env(self) -> "ModelEnv":
        """The :class:`~vidsense.services.model_store.ModelEnv` every room loads its models from."""
        from vidsense.services.model_store import ModelEnv

        return ModelEnv(home=Path(self.home), device=self.resolved_device(), allow_hub=self.allow_hub)


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, dropping ``None`` overrides so lower sources show through.

    Raises:
        InputError: naming the offending setting, instead of pydantic's multi-line report.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        raise InputError(f"setting {where}: {err.get('msg')} (got {err.get('input')!r})") from None
    except Exception as exc:  # a malformed TOML file
        if config_file().exists():
            raise InputError(f"{config_file()}: cannot read settings ({exc})") from None
        raise
