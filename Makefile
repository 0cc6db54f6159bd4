# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make lab    JupyterLab over notebooks/ with the local Azure emulator beside it (the main job)
#   make test   the full suite: lint, types, unit, emulator conformance, notebooks, browser
# `make tour` is the headless twin of `make lab`: it executes every notebook and prints a table.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab tour test lint screenshots bench chromium clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
		{ rm -rf $(VENV) && bash scripts/ensure-venv-support $(PYTHON) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,test,dev]'
	@touch $(STAMP)

lab: $(STAMP)
	$(BIN)/mi-helpers lab

tour: $(STAMP)
	MI_HELPERS_TARGET=emulator $(BIN)/mi-helpers tour

chromium:
	@bash scripts/ensure-chromium

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) chromium lint
	MI_HELPERS_TARGET=emulator $(BIN)/pytest

screenshots: $(STAMP) chromium
	MI_HELPERS_TARGET=emulator MI_HELPERS_SCREENSHOTS=docs/img $(BIN)/pytest tests/browser -q

bench: $(STAMP)
	MI_HELPERS_TARGET=emulator $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache
