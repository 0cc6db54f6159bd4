# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make lab    JupyterLab over your working copies of notebooks/ (in work/) with the local Azure emulator
#               beside it and az in its terminals (the main job)
#   make test   the full suite: lint, types, unit, emulator conformance, notebooks, browser (CI runs this)
# `make tour` is the headless twin of `make lab`: it executes every notebook and prints a table.
#
# For contributors, the fast loop:
#   make check  lint + types + the tests without the browser, the `slow` ones and CHECK_SKIP, on
#               PYTEST_WORKERS processes (pytest-xdist); never installs Chromium. Under 3 minutes on
#               2 cores. `make test` still runs everything before you push.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# `make check`: worker processes, and the heavy integration tests it leaves to `make test` (node-id
# prefixes: notebook execution, the tour, JupyterLab start-up, Binder's postBuild, the scan of executed
# notebooks). Re-measure with `pytest -m "not browser" --durations=40` when the suite changes; mark new
# heavy tests `@pytest.mark.slow` instead of growing this list. `CHECK_SKIP= make check` runs them too.
# Three workers beat two on 2 cores (measured): most tests wait on sockets and retry windows, not the CPU.
PYTEST_WORKERS ?= 3
CHECK_MARKERS  ?= not browser and not slow
CHECK_SKIP     ?= tests/notebooks/test_execute.py \
                  tests/notebooks/test_parameters.py \
                  tests/hardening/test_secret_hygiene.py::test_executed_notebooks_hold_no_token \
                  tests/run/test_tour.py::test_tour_executes_in_order_writes_copies_and_prints_a_table \
                  tests/run/test_tour.py::test_a_failing_notebook_fails_the_tour \
                  tests/run/test_tour.py::test_a_whole_token_in_the_outputs_fails_and_is_never_written \
                  tests/run/test_lab.py::test_start_lab_serves_the_notebooks_with_the_emulator_beside_it \
                  tests/run/test_lab.py::test_mi_helpers_lab_prints_the_url_and_stops_everything_on_ctrl_c \
                  tests/run/test_lab.py::test_lab_ends_when_its_launcher_is_killed \
                  tests/run/test_binder.py::test_post_build_installs_the_package_and_the_lab_settings
CHECK_WORKERS  := $(if $(filter-out 0 1,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS),)

.PHONY: lab tour test check check-tests lint screenshots bench chromium azure-cli clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
		{ rm -rf $(VENV) && bash scripts/ensure-venv-support $(PYTHON) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,test,dev]'
	@touch $(STAMP)

# Lab's terminals have the real az CLI (its own .venv-az, installed on the first run, about a minute).
lab: $(STAMP) azure-cli
	$(BIN)/mi-helpers lab

tour: $(STAMP)
	MI_HELPERS_TARGET=emulator $(BIN)/mi-helpers tour

azure-cli:
	@bash scripts/ensure-azure-cli

chromium:
	@bash scripts/ensure-chromium

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The suite in two runs: everything but the browser on PYTEST_WORKERS processes (most tests wait on sockets,
# kernels and the az CLI, not the CPU), then the browser tests one at a time (each drives its own Chromium
# and JupyterLab). Serially the whole suite passed 14 minutes on 2 cores; `PYTEST_WORKERS=1` still does that.
test: $(STAMP) chromium azure-cli lint
	MI_HELPERS_TARGET=emulator $(BIN)/pytest $(CHECK_WORKERS) -m "not browser"
	MI_HELPERS_TARGET=emulator $(BIN)/pytest -m browser

# lint and the tests run side by side (most tests wait on sockets, leaving the CPU to mypy); each one's
# output is printed when it ends, and either failing fails `make check`.
check: $(STAMP)
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint check-tests

check-tests: $(STAMP)
	MI_HELPERS_TARGET=emulator $(BIN)/pytest -q $(CHECK_WORKERS) -m "$(CHECK_MARKERS)" \
		$(addprefix --deselect=,$(CHECK_SKIP))

screenshots: $(STAMP) chromium
	MI_HELPERS_TARGET=emulator MI_HELPERS_SCREENSHOTS=docs/img $(BIN)/pytest tests/browser -q

bench: $(STAMP)
	MI_HELPERS_TARGET=emulator $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .venv-az build .mypy_cache .ruff_cache
