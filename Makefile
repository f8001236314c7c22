# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORE   := initlab/inits.py initlab/activations.py initlab/losses.py initlab/optim.py \
          initlab/model.py initlab/train.py initlab/stats.py initlab/theory.py \
          initlab/data.py initlab/registry.py initlab/errors.py initlab/config.py \
          initlab/experiment.py initlab/diagnosis.py initlab/api.py

.PHONY: demo test lint env clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/initlab run configs/playground.yaml

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check initlab tests
	$(BIN)/mypy $(CORE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
