# Two commands for users: `make report` and `make test` (and `make lab`).
# Each creates .venv when missing, installs m1lib into it and registers the
# project's own Jupyter kernel inside it, so papermill never picks up another
# interpreter's "python3" kernel.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
KERNEL := m1lib
STAMP  := $(VENV)/.installed

.PHONY: setup report test lab bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,dask]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "m1lib (project .venv)"
	@touch $(STAMP)

report: setup
	$(BIN)/m1lib report

test: setup
	$(BIN)/python -m pytest

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .cache reports
