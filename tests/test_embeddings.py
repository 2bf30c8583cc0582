"""The sentence encoder's two backends give the same vectors; the ONNX one loads without torch.

A tiny randomly initialised sentence-transformers model, built here from a config,
checks the ONNX export and the pooling against sentence-transformers itself; the
slow tests do the same with the bundled MiniLM and time a new process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidsense.agents.embeddings import OnnxSentenceEncoder, SentenceEncoder, export_onnx, load_sentence_encoder, onnx_compatible
from vidsense.services.model_store import ModelEnv

TEXTS = [
    "a person riding a bicycle", "cycling", "baking bread", "ApplyEyeMakeup", "filling eyebrows", "x", "",
    "the quick brown fox " * 90,  # past max_seq_length: truncated alike
    "émigré café naïve",
    "[whole video] movement looks like: pumping gas (4 of 5 windows), punching bag",
]
WORDS = "a person riding bicycle cycling baking bread the quick brown fox jumps over lazy dog movement looks like".split()


def tiny_sentence_model(folder: Path, pooling: str = "mean") -> Path:
    """A 2-layer BERT with a word-piece vocabulary of the test's words, saved as sentence-transformers saves one."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    base = folder / "bert"
    base.mkdir(parents=True)
    (base / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ing", "##e"]) + "\n")
    BertTokenizerFast(vocab_file=str(base / "vocab.txt")).save_pretrained(str(base))
    import torch

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(base))
    transformer = models.Transformer(str(base), max_seq_length=48)
    out = folder / f"st-{pooling}"
    SentenceTransformer(modules=[transformer, models.Pooling(32, pooling_mode=pooling), models.Normalize()], device="cpu").save(str(out))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_sentence_model(tmp_path_factory.mktemp("tiny-st"))


def test_onnx_and_sentence_transformers_give_the_same_vectors(tiny: Path, tmp_path: Path) -> None:
    assert onnx_compatible(tiny)
    onnx = export_onnx(tiny, tmp_path / "tiny.onnx")
    fast = OnnxSentenceEncoder(tiny, onnx, name="tiny", batch_size=4).encode(TEXTS)
    slow = SentenceEncoder(str(tiny), "cpu", name="tiny").encode(TEXTS)
    assert fast.shape == slow.shape == (len(TEXTS), 32) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fast[:6], axis=1), 1.0, atol=1e-5)


def test_other_poolings_stay_with_sentence_transformers(tmp_path: Path) -> None:
    cls = tiny_sentence_model(tmp_path, pooling="cls")
    assert not onnx_compatible(cls)
    assert not onnx_compatible(tmp_path)  # no modules.json at all
    encoder = load_sentence_encoder(str(cls), ModelEnv(tmp_path / "home"))
    assert isinstance(encoder, SentenceEncoder) and not (tmp_path / "home" / "cache" / "encoders").exists()


def test_a_local_model_is_exported_once_and_then_read(tiny: Path, tmp_path: Path) -> None:
    env = ModelEnv(tmp_path / "home")
    first = load_sentence_encoder(str(tiny), env)
    assert isinstance(first, OnnxSentenceEncoder)
    (onnx,) = (tmp_path / "home" / "cache" / "encoders").glob("*.onnx")
    stamp = onnx.stat().st_mtime_ns
    again = load_sentence_encoder(str(tiny), env)
    assert onnx.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first.encode(TEXTS[:3]), again.encode(TEXTS[:3]))


@pytest.mark.slow
def test_bundled_minilm_runs_on_onnx_with_the_same_vectors(tmp_path: Path) -> None:
    from vidsense.services.settings import load_settings

    env = load_settings().model_env()
    fast = load_sentence_encoder("minilm-l6-v2", env)
    assert isinstance(fast, OnnxSentenceEncoder) and fast.name == "minilm-l6-v2"
    slow = SentenceEncoder(env.resolve("minilm-l6-v2", role="embedding"), "cpu", name="minilm-l6-v2")
    np.testing.assert_allclose(fast.encode(TEXTS), slow.encode(TEXTS), atol=1e-4)


@pytest.mark.slow
def test_a_new_process_embeds_without_importing_torch_or_transformers() -> None:
    from vidsense.services.settings import load_settings

    load_sentence_encoder("minilm-l6-v2", load_settings().model_env())  # the export exists from here on
    code = (
        "import sys, json; from vidsense.agents.embeddings import load_sentence_encoder; "
        "from vidsense.services.settings import load_settings; "
        "e = load_sentence_encoder('minilm-l6-v2', load_settings().model_env()); e.encode(['riding a bike']); "
        "print(json.dumps({m: m in sys.modules for m in ('torch', 'transformers', 'sentence_transformers')}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"torch": False, "transformers": False, "sentence_transformers": False}
