# Two commands for users: `make report` and `make test` (and `make lab`).
# Each creates .venv when missing, installs m1lib into it and registers the
# project's own Jupyter kernel inside it, so papermill never picks up another
# interpreter's "python3" kernel.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
KERNEL := m1lib
STAMP  := $(VENV)/.installed

.PHONY: setup report test lab lab-check chromium bench clean

setup: $(STAMP)

# Set-up says what it does: pip prints each package it collects and installs (the first
# time takes a few minutes; afterwards nothing is reinstalled until pyproject.toml changes).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "setup: creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo "setup: upgrading pip in $(VENV)"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "setup: installing m1lib (editable) with its dependencies, dev and dask extras into $(VENV):"
	@$(BIN)/python -m pip install --progress-bar off -e '.[dev,dask]' 2>&1 | grep -E '^(Collecting|Successfully installed|ERROR)' || true
	@$(BIN)/python -c "import m1lib" || { echo "setup: installation failed (run: $(BIN)/python -m pip install -e '.[dev,dask]')"; exit 1; }
	@echo "setup: registering the Jupyter kernel '$(KERNEL)' inside $(VENV)"
	@$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "m1lib (project .venv)" >/dev/null
	@touch $(STAMP)
	@echo "setup: done"

report: setup
	$(BIN)/m1lib report $(REPORT_ARGS)

# The whole suite on TEST_JOBS worker processes (pytest-xdist; tests that share a fixture run
# on one worker, see tests/conftest.py): one line per test as it ends, the 15 slowest at the end.
TEST_JOBS ?= 2
test: setup chromium
	$(BIN)/python -m pytest -n $(TEST_JOBS) --verbose --durations=15

lab: setup lab-check
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

# What notebooks/07_explorer.ipynb needs live: the project's kernel and the
# front-end extensions of ipywidgets and ipympl (installed with the wheels).
lab-check: setup
	@$(BIN)/jupyter kernelspec list | grep -q '^ *$(KERNEL) ' || { echo "lab-check: kernel '$(KERNEL)' is not installed (make setup)"; exit 1; }
	@$(BIN)/jupyter labextension list 2>&1 | grep -q '@jupyter-widgets/jupyterlab-manager.*enabled' || { echo "lab-check: the ipywidgets JupyterLab extension is missing"; exit 1; }
	@$(BIN)/jupyter labextension list 2>&1 | grep -q 'jupyter-matplotlib.*enabled' || { echo "lab-check: the ipympl JupyterLab extension is missing"; exit 1; }
	@echo "lab-check: kernel $(KERNEL), ipywidgets and ipympl extensions OK"

# The browser test (tests/test_browser.py) drives Debian's Chromium through
# Playwright (no browser download). Installs it when missing and possible (root, apt).
chromium:
	@command -v chromium >/dev/null 2>&1 && echo "chromium: $$(command -v chromium)" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else echo "chromium: not installed and cannot install it here (needs root and apt-get); the browser test will be skipped"; fi; }

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .cache reports
