# The two commands: `make serve` and `make test`. Both create .venv when it is missing and
# install only what changed since the last run (a stamp per pyproject.toml digest).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := llama,demo,dev
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml; echo $(EXTRAS)) | sha256sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test lint typecheck install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

$(STAMP): pyproject.toml | $(PY)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

serve: $(STAMP)
	$(PY) -m corral.supervisor serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(PY) -m ruff check protocol supervisor child tests bench
	$(PY) -m ruff format --check protocol supervisor child tests bench
	$(MAKE) typecheck

# mypy cannot follow setuptools' editable finder, so it reads the sources through a link tree
# that has the installed layout (corral/protocol -> protocol, ...).
typecheck: $(STAMP)
	@mkdir -p .build/typecheck/corral
	@for p in protocol supervisor child; do ln -sfn ../../../$$p .build/typecheck/corral/$$p; done
	cd .build/typecheck && MYPYPATH=. ../../$(PY) -m mypy --config-file ../../pyproject.toml \
		-p corral.protocol -p corral.supervisor

test: $(STAMP)
	$(MAKE) lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/overhead.py

clean:
	rm -rf .build .pytest_cache .mypy_cache .ruff_cache
