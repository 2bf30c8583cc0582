"""Fixture helpers for the visual perception tests.

Synthetic videos are written with PyAV (frames drawn with OpenCV, optional
audio); the full-size ``transformers`` backends get tiny randomly initialised
models built from a config and saved beside an offline tokenizer, so no test
downloads anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from media_fixtures import write_audio_stream

WORDS = "a an the person bicycle dog cat street car on in of with riding man woman photo ball red blue sound speech music".split()
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]
PAD, UNK, BOS, EOS = range(4)


def write_video(path: Path, frames: Sequence[np.ndarray], fps: int = 10, audio: np.ndarray | None = None, audio_rate: int = 16000) -> Path:
    """Write RGB uint8 frames (and optional mono float32 audio) to an MP4 with PyAV."""
    import av

    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.height, vs.width = frames[0].shape[:2]
        vs.pix_fmt = "yuv420p"
        aus = None
        if audio is not None:
            aus = c.add_stream("aac", rate=audio_rate)
            aus.layout = "mono"
        for f in frames:
            for pkt in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
        if aus is not None and audio is not None:
            write_audio_stream(c, aus, np.asarray(audio, dtype=np.float32), audio_rate)
    return path


def write_audio_only(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    """A WAV file with a 440 Hz tone and no video stream."""
    import av

    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=rate)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray((tone * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = rate
        for pkt in s.encode(frame):
            c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def text_frame(text: str, size: tuple[int, int] = (240, 480)) -> np.ndarray:
    """A white RGB frame with ``text`` in large black letters, as a title card would show it."""
    import cv2

    frame = np.full((*size, 3), 255, np.uint8)
    cv2.putText(frame, text, (20, size[0] // 2 + 15), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 4, cv2.LINE_AA)
    return frame


def title_card_video(path: Path, cards: Sequence[tuple[str, float]], fps: int = 10) -> Path:
    """A video showing each ``(text, seconds)`` card in turn."""
    frames = []
    for text, seconds in cards:
        frames += [text_frame(text)] * int(round(seconds * fps))
    return write_video(path, frames, fps)


def noise_video(path: Path, seconds: float = 4.0, fps: int = 10, size: tuple[int, int] = (64, 80), with_audio: bool = False) -> Path:
    """A short video of random colour blocks (and, optionally, a tone plus noise as audio)."""
    rng = np.random.default_rng(0)
    n = int(seconds * fps)
    frames = [np.kron(rng.integers(0, 255, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8)) for _ in range(n)]
    audio = None
    if with_audio:
        t = np.arange(int(seconds * 16000)) / 16000
        audio = (0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    return write_video(path, frames, fps, audio)


def tiny_tokenizer():
    """A word-level fast tokenizer over :data:`WORDS`, built offline with ``tokenizers``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", BOS), ("</s>", EOS)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def _text_config(vocab_size: int) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )


def tiny_blip2(folder: Path, num_query_tokens: int = 4) -> Path:
    """Save a randomly initialised BLIP-2 (OPT decoder) and its processor to ``folder``.

    The generation config suppresses the special tokens, so the random decoder
    writes words from :data:`WORDS` instead of stopping at once.
    """
    import torch
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor

    processor = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tiny_tokenizer(), num_query_tokens=num_query_tokens)
    tok = processor.tokenizer
    image_token = tok.convert_tokens_to_ids("<image>")
    text = {**_text_config(len(tok)), "model_type": "opt", "ffn_dim": 37, "word_embed_proj_dim": 32}
    del text["intermediate_size"]
    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, image_size=32, patch_size=8),
        qformer_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37, encoder_hidden_size=32),
        text_config=text,
        num_query_tokens=num_query_tokens,
        image_token_index=image_token,
    )
    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(config).eval()
    model.generation_config.suppress_tokens = [PAD, UNK, BOS, EOS, image_token]
    model.generation_config.eos_token_id = EOS
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def tiny_clip(folder: Path) -> Path:
    """Save a randomly initialised CLIP and its processor to ``folder``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}), tokenizer=tiny_tokenizer())
    config = CLIPConfig(
        text_config=_text_config(len(processor.tokenizer)),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def tiny_clap(folder: Path) -> Path:
    """Save a randomly initialised CLAP (HTSAT audio tower, 16 mel bins) and its processor to ``folder``."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    extractor = ClapFeatureExtractor(feature_size=16, sampling_rate=48000, max_length_s=2, truncation="rand_trunc")
    processor = ClapProcessor(feature_extractor=extractor, tokenizer=tiny_tokenizer())
    config = ClapConfig(
        text_config={**_text_config(len(processor.tokenizer)), "projection_dim": 16},
        audio_config=dict(
            num_mel_bins=16,
            spec_size=64,
            window_size=4,
            patch_size=2,
            patch_stride=2,
            hidden_size=32,
            patch_embeds_hidden_size=16,
            depths=[1, 1],
            num_attention_heads=[2, 2],
            projection_dim=16,
            enable_fusion=False,
        ),
        projection_dim=16,
    )
    torch.manual_seed(0)
    ClapModel(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
