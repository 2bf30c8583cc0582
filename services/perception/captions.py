"""Visual captions with BLIP-2 through ``transformers``.

The model comes from the ``caption_model`` setting: a local folder holding a
BLIP-2 checkpoint and its processor, or (only with ``allow_hub`` on) a hub id
such as ``Salesforce/blip2-opt-2.7b``. No captioning weights ship on PyPI, so
there is no bundled default.

Why ``transformers`` and not ``salesforce-lavis``: LAVIS 1.0.2 pins
``transformers<4.27`` (and timm 0.4.12, opencv 4.5.5, a source build of
fairscale) and would replace the CPU torch build, so it cannot be installed
beside the rest of vidsense; it also fetches checkpoints from URLs at run time.
BLIP-2 itself lives on in ``transformers`` as
``Blip2ForConditionalGeneration`` with the same Salesforce checkpoints.

One frame per window is captioned (the middle one): two frames a second apart
give near-identical sentences at several times the cost. Frames of many
windows are captioned together in batches of ``batch_size``. A caption's
score is 1.0: generation gives no calibrated confidence, and the timeline
renders a score-1 sentence as it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vidsense.services.media.video import Media
from vidsense.services.model_store import ModelEnv
from vidsense.services.perception import ModelCard, Perception, PerceptionConfig, pretrained
from vidsense.services.timeline import Observation, Window


@dataclass(frozen=True)
class CaptionParams:
    """Decoding settings of :class:`Blip2Captioner` (all go in the cache key).

    Attributes:
        max_new_tokens: longest caption, in tokens.
        num_beams: beam width (1 is greedy).
        batch_size: frames captioned per forward pass.
    """

    max_new_tokens: int = 30
    num_beams: int = 3
    batch_size: int = 8


class Blip2Captioner:
    """The ``blip2`` perception model: one caption per window."""

    card = ModelCard(name="blip2", version="1", modalities=("sight",), note="BLIP-2 captions (transformers)", cost=8.0, heavy=True)

    def __init__(self, model: str | None, env: ModelEnv, tuning: CaptionParams | None = None, *, frame_max_side: int = 640) -> None:
        """Load the BLIP-2 model ``model``.

        Args:
            model: a BLIP-2 folder or (hub access on) a hub id: the ``caption_model`` setting.
            env: where models are found and run.
            tuning: decoding settings.
            frame_max_side: frames are scaled so their long side is at most this.

        Raises:
            InputError: ``model`` is not set, or is no local path while hub access is off.
            ModelError: the folder holds no loadable BLIP-2 model.
        """
        self.tuning = tuning or CaptionParams()
        self.frame_max_side = frame_max_side
        self.ref = pretrained.locate(model, env, role="caption", setting="caption_model")
        from transformers import Blip2ForConditionalGeneration, Blip2Processor  # slow import: only once the setting checks out

        self._processor, self._model = pretrained.load(self.ref, Blip2ForConditionalGeneration, Blip2Processor)

    @classmethod
    def from_config(cls, config: PerceptionConfig) -> "Blip2Captioner":
        """The registry's ``blip2`` model (``config.caption_model``)."""
        return cls(config.caption_model, config.env, frame_max_side=config.frame_max_side)

    def params(self) -> dict[str, Any]:
        """Model identity, sampling and decoding: everything that changes the output."""
        return {
            "model": self.ref.path,
            "fingerprint": self.ref.fingerprint,
            "half": self.ref.half,
            "frame_max_side": self.frame_max_side,
            **asdict(self.tuning),
        }

    def caption(self, frames: list[Any]) -> list[str]:
        """One caption per RGB uint8 frame."""
        import torch

        inputs = self._processor(images=frames, return_tensors="pt").to(self.ref.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self._model.dtype)
        with torch.inference_mode():
            # BLIP-2 hands generation to its language model, which would otherwise use its
            # own defaults and ignore the checkpoint's generation_config.json.
            ids = self._model.generate(
                **inputs,
                generation_config=self._model.generation_config,
                max_new_tokens=self.tuning.max_new_tokens,
                num_beams=self.tuning.num_beams,
            )
        return [" ".join(text.split()) for text in self._processor.batch_decode(ids, skip_special_tokens=True)]

    def describe(self, media: Media, windows: tuple[Window, ...]) -> Perception:
        """A caption for each window (none for a video without frames)."""
        if not media.info.has_video:
            return Perception()
        out: list[Observation] = []
        step = self.tuning.batch_size
        for i in range(0, len(windows), step):
            batch = windows[i : i + step]
            frames = [media.sample(w.start_s, w.end_s, 1, self.frame_max_side)[0] for w in batch]
            for w, text in zip(batch, self.caption(frames)):
                if text:
                    out.append(Observation(w.index, w.start_s, w.end_s, "sight", self.card.name, text, 1.0, "caption"))
        return Perception(out)
