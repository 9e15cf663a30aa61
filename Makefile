# The README's commands. Everything installs into a project-local .venv, with uv when it can be had
# (scripts/install.sh: pip-installs uv into the .venv, then `uv pip install`; plain pip otherwise):
# `make run` installs the runtime only, `make test` (and the other checks) the dev and docs extras as well.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP     := $(VENV)/.installed-dev
HOST   ?= 127.0.0.1
PORT   ?= 8080
SCENARIO ?= builtin:happy_path

.PHONY: run test system-deps lint typecheck unit docs bench clean

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv --without-pip $(VENV)

# An editable install leaves the package uncompiled and PYTHONDONTWRITEBYTECODE (common on CI machines) stops
# Python from caching it, so every start would compile the sources again: compile them once here, as pip
# does for a regular install. Python ignores a cached file whose source has changed since.
$(RUNTIME_STAMP): pyproject.toml | $(VENV)/bin/python
	PYTHON=$(PYTHON) sh scripts/install.sh $(BIN)/python -e .
	$(BIN)/python -m compileall -q simulator
	touch $(RUNTIME_STAMP)

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	PYTHON=$(PYTHON) sh scripts/install.sh $(BIN)/python -e '.[dev,docs]'
	$(BIN)/python -m compileall -q simulator
	touch $(DEV_STAMP) $(RUNTIME_STAMP)

run: $(RUNTIME_STAMP)
	$(BIN)/python -m simulator serve --host $(HOST) --port $(PORT) --scenario $(SCENARIO)

test: system-deps lint typecheck docs unit

# Debian packages the browser tests need (chromium, chromium-driver); installs them when run as root
system-deps:
	sh scripts/system-deps.sh

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

unit: $(DEV_STAMP)
	$(BIN)/python -m pytest -q

# The documentation site (docs/ and mkdocs.yml) into site/; --strict makes a broken link or anchor an error
docs: $(DEV_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

bench: $(DEV_STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/stores.py

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
