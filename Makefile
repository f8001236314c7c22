# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when needed:
# demo installs the runtime only (fast), test/lint install the dev extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# mypy: the core packages whole, and the modules that turn a config into a Result
CORE   := initlab/nn initlab/theory initlab/data initlab/config initlab/registry.py \
          initlab/errors.py initlab/experiment.py initlab/experiment_residual.py \
          initlab/boundary.py initlab/processes.py \
          initlab/diagnosis.py initlab/outcomes.py \
          initlab/api.py

.PHONY: demo test lint env clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.run

env: $(VENV)/.dev

demo: $(VENV)/.run
	$(BIN)/initlab run configs/playground.yaml

test: $(VENV)/.dev
	$(BIN)/pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check initlab tests
	$(BIN)/mypy $(CORE)

# initlab against NumPy and PyTorch at one thread (< 5 min); writes benchmarks/results/latest.json.
# OPENBLAS_CORETYPE/L2_SIZE (set on some machines for old OpenBLAS builds) slow a current numpy:
# unset for this command only.
bench: $(VENV)/.run
	$(BIN)/pip install -q -e '.[bench]'
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python benchmarks/bench.py --memory

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
