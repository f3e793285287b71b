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

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,dask]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "m1lib (project .venv)"
	@touch $(STAMP)

report: setup
	$(BIN)/m1lib report

test: setup chromium
	$(BIN)/python -m pytest

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
