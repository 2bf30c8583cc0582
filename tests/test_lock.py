"""The hashed locks that `make install` installs from, and the environment they made.

An install with lower bounds only took whatever upstream released last (OpenCV 5.1
dropped the importer the COCO detector needs); these tests keep the locks complete,
hashed, free of CUDA builds, consistent with pyproject's ranges, and the running
environment equal to them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from vidsense.services.model_store import MODELS

ROOT = Path(__file__).resolve().parents[1]
LOCKS = {name: ROOT / "requirements" / f"{name}.txt" for name in ("build", "lock", "nodeps")}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
# What pulls a GPU build onto a CPU machine: CUDA libraries, and triton (openai-whisper's Linux requirement).
GPU_ONLY = re.compile(r"^(nvidia-|cuda-|triton$|torch-cuda|cupy)")


def pins(path: Path) -> dict[str, tuple[str, int]]:
    """``{canonical name: (version, number of hashes)}`` of a pip-compile / uv lock file."""
    found: dict[str, tuple[str, int]] = {}
    current = None
    for line in path.read_text().splitlines():
        m = PIN.match(line)
        if m:
            current = canonicalize_name(m.group(1))
            found[current] = (m.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, n = found[current]
            found[current] = (version, n + 1)
        elif line.strip() and not line.startswith((" ", "#")):
            raise AssertionError(f"{path.name}: a line that is neither a pin nor a hash: {line!r}")
    return found


@pytest.fixture(scope="module")
def locked() -> dict[str, dict[str, tuple[str, int]]]:
    return {name: pins(path) for name, path in LOCKS.items()}


def test_every_pin_is_exact_and_hashed(locked) -> None:
    for name, table in locked.items():
        assert table, name
        unhashed = [p for p, (_, n) in table.items() if n == 0]
        assert not unhashed, f"{name}.txt: pins without a hash: {unhashed}"


def test_torch_is_the_local_cpu_build_and_nothing_pulls_a_gpu_build(locked) -> None:
    assert locked["lock"]["torch"][0] == "2.13.0+cpu"
    for name, table in locked.items():
        gpu = [p for p in table if GPU_ONLY.match(p)]
        assert not gpu, f"{name}.txt pins GPU-only packages: {gpu}"


def test_pip_and_the_build_backends_are_pinned(locked) -> None:
    assert {"pip", "setuptools", "wheel", "scikit-build-core"} <= set(locked["build"])
    # One version of each: the three files are installed into one environment.
    for a, b in (("build", "lock"), ("build", "nodeps"), ("lock", "nodeps")):
        for p in set(locked[a]) & set(locked[b]):
            assert locked[a][p][0] == locked[b][p][0], f"{p} is {locked[a][p][0]} in {a}.txt, {locked[b][p][0]} in {b}.txt"


def test_every_model_carrier_is_installed_without_dependencies(locked) -> None:
    carriers = {canonicalize_name(c.distribution): c.version for m in MODELS.values() for c in m.carriers}
    listed = (ROOT / "requirements" / "nodeps.in").read_text()
    for name, version in carriers.items():
        assert re.search(rf"^{re.escape(name)}=={re.escape(version)}$", listed, re.MULTILINE | re.IGNORECASE), f"{name}=={version} is missing from requirements/nodeps.in"
        assert locked["nodeps"].get(name, ("",))[0] == version, f"{name}=={version} is not in requirements/nodeps.txt (make lock)"
        assert name not in locked["lock"], f"{name} is a carrier: its declared dependencies would be resolved into lock.txt"


def test_pyproject_ranges_admit_the_locked_versions(locked) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    everything = {**locked["nodeps"], **locked["lock"]}
    for text in requirements:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name == "vidsense":
            continue
        assert name in everything, f"{text} (pyproject) is not in the lock: run make lock"
        version = Version(everything[name][0])
        assert req.specifier.contains(version, prereleases=True), f"{name} {version} (lock) is outside pyproject's {req.specifier}"


def test_opencv_is_bounded_below_the_release_without_the_tensorflow_importer() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (cv,) = [Requirement(r) for r in project["dependencies"] if r.startswith("opencv-python-headless")]
    assert cv.specifier.contains("5.0.0.93") and cv.specifier.contains("4.14.0.94")
    assert not cv.specifier.contains("5.1.0.95")


def test_the_environment_is_the_lock(locked) -> None:
    """What is installed is what the lock says: a hand-installed upgrade (OpenCV 5.1) is caught here."""
    wrong = []
    for name, (version, _) in {**locked["lock"], **locked["nodeps"]}.items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} missing (lock: {version})")
            continue
        if Version(have) != Version(version):
            wrong.append(f"{name} {have} (lock: {version})")
    assert not wrong, "the environment differs from the lock (make install reinstalls it): " + "; ".join(wrong)


def cmake_args(**make_vars: str) -> list[str]:
    """The ``CMAKE_ARGS`` the Makefile hands llama-cpp-python's build, for the given make variables."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k != "CMAKE_ARGS"}
    script = f'include {ROOT / "Makefile"}\nshow-cmake-args:\n\t@echo "$$CMAKE_ARGS"\n'
    out = subprocess.run(
        ["make", "-s", "-f", "-", "show-cmake-args", *(f"{k}={v}" for k, v in make_vars.items())],
        input=script,
        text=True,
        capture_output=True,
        check=True,
        cwd=ROOT,
        env=env,
    )
    return out.stdout.split()


def test_llama_cpp_is_built_for_the_cpus_instruction_sets_without_amx() -> None:
    # A native build compiled the AMX kernels on a VM that reports AMX but does not let a process
    # use it: the first matrix product died (SIGSEGV), and make demo with it.
    flags = "sse4_2 avx avx2 fma f16c bmi2 avx512f avx512cd avx512vl avx512dq avx512bw avx512_vnni amx_tile amx_int8 amx_bf16"
    sapphire = cmake_args(ARCH="x86_64", CPU_FLAGS=flags)
    assert "-DGGML_NATIVE=OFF" in sapphire and "-DLLAVA_BUILD=OFF" in sapphire
    assert {"-DGGML_AVX2=ON", "-DGGML_AVX512=ON", "-DGGML_AVX512_VNNI=ON"} <= set(sapphire)
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(sapphire)
    # An older CPU gets no instruction set it lacks (AVX-512 needs all five of its parts).
    older = cmake_args(ARCH="x86_64", CPU_FLAGS="sse4_2 avx avx2 fma f16c avx512f")
    assert {"-DGGML_AVX2=ON", "-DGGML_AVX512=OFF", "-DGGML_AVX_VNNI=OFF", "-DGGML_AVX512_VBMI=OFF"} <= set(older)
    # Other architectures keep llama.cpp's own native build.
    assert cmake_args(ARCH="aarch64", CPU_FLAGS=flags) == ["-DLLAVA_BUILD=OFF"]
