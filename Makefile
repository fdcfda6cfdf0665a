# hvaelab: `make dashboard` to look around, `make test` to check everything.
# Everything runs from the project's own virtual environment in .venv (created on first use).

PYTHON ?= python3
VENV ?= .venv
PORT ?= 8866
# The CPU build of PyTorch, installed before anything else: a plain `torch` requirement would
# pull a multi-GB CUDA build on Linux.
TORCH_VERSION ?= 2.13.0
ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.hvaelab-setup

# Tests read the real data through HVAELAB_DATA (default: the sibling ../shared/data if present);
# where a dataset is not found they use the fixture in tests/data (see tests/conftest.py).
ifndef HVAELAB_DATA
ifneq ($(wildcard ../shared/data),)
export HVAELAB_DATA := $(abspath ../shared/data)
endif
endif

.PHONY: help setup test test-fixture dashboard lint format docs train evaluate clean-venv

help:
	@echo "make dashboard   start the dashboards (Voila) on http://127.0.0.1:$(PORT)/"
	@echo "make test        run the test suite (installs Debian's chromium if missing, as root)"
	@echo "make test-fixture  the non-browser tests on the fixture only (data search limited to an empty folder, no downloads)"
	@echo "make lint        ruff check + ruff format --check + mypy (the library, app/ left out)"
	@echo "make docs        the documentation site, offline, warnings as errors: docs/_build/html"
	@echo "make format      ruff format + ruff check --fix"
	@echo "make train ARGS='...'     hvaelab train ..."
	@echo "make evaluate ARGS='...'  hvaelab evaluate ..."
	@echo "make setup       create $(VENV) (torch==$(TORCH_VERSION) CPU first, then .[app,test,dev])"

setup: $(STAMP)

# Re-runs only when pyproject.toml changes; pip leaves an installed torch==$(TORCH_VERSION) alone.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { \
		$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "hvaelab needs Python >= 3.11; run: make PYTHON=python3.11 ..." >&2; exit 1; }; \
		$(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e '.[app,test,dev]'
	@touch $@

test: setup
	bash scripts/ensure-chromium
	$(BIN)/python scripts/fetch_onnxruntime_web.py
	$(BIN)/pytest -q --durations=25

# A test that quietly needs the full datasets fails here: the data search is limited to an empty
# folder (HVAELAB_DATA_ONLY) and downloads are off, so every test reads the fixture.
test-fixture: setup
	@empty=$$(mktemp -d) && trap 'rm -rf "$$empty"' EXIT && \
	HVAELAB_DATA="$$empty" HVAELAB_DATA_ONLY=1 HVAELAB_NO_DOWNLOAD=1 $(BIN)/pytest -q --durations=15 -m "not e2e and not docs"

# hvaelab dashboard (hvaelab/app/dashboard.py): Voila on 127.0.0.1 with the offline template;
# the browser tests start the server the same way. More settings: `hvaelab dashboard --help`.
dashboard: setup
	$(BIN)/hvaelab dashboard --port $(PORT) $(ARGS)

# mypy's settings (default mode; hvaelab/ without hvaelab/app/) are in pyproject.toml.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The documentation site (Sphinx, docs/conf.py), built offline: a warning, e.g. a broken
# reference, is an error. Open docs/_build/html/index.html; nothing hosts it.
docs: setup
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

train: setup
	$(BIN)/hvaelab train $(ARGS)

evaluate: setup
	$(BIN)/hvaelab evaluate $(ARGS)

clean-venv:
	rm -rf $(VENV)
