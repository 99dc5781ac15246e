# The two commands: `make serve` and `make test`. Both create .venv when it is missing and
# install only what changed since the last run (a stamp per pyproject.toml digest and extras),
# and build the web UI only when its sources are newer than the build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := llama,demo,dev,speech
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml; echo $(EXTRAS)) | sha256sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8080
DATA_DIR ?= .data
WEBUI_BUILD := src/corral/supervisor/webui_dist/index.html
WEBUI_SOURCES := $(shell find webui/src webui/public -type f 2>/dev/null) webui/index.html \
	webui/package.json webui/package-lock.json $(wildcard webui/vite.config.*) $(wildcard webui/tsconfig*.json)

.PHONY: serve test lint typecheck install webui webui-test system-deps bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

# llama-cpp-python compiles from source the first time; pip caches the wheel after that.
$(STAMP): pyproject.toml | $(PY)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install -e '.[$(EXTRAS)]'
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
	$(PY) -m corral.supervisor serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

lint: $(STAMP)
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench

# mypy strict over src/corral: protocol, supervisor, child and deploy (pyproject's [tool.mypy]).
typecheck: $(STAMP)
	$(PY) -m mypy

test: system-deps $(STAMP) $(WEBUI_BUILD)
	$(MAKE) lint typecheck webui-test
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/overhead.py

clean:
	rm -rf .build .pytest_cache .mypy_cache .ruff_cache src/corral/supervisor/webui_dist
