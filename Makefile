# aifinops developer commands. `make demo` and `make test` create the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint test-unit test-integration test-faults bench protos schemas clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "aifinops needs Python 3.11 or newer: run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aifinops demo

test: $(STAMP)
	$(BIN)/ruff check shared services aifinops tests bench
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest -m integration

test-faults: $(STAMP)
	$(BIN)/pytest -m faults tests/faults

lint: $(STAMP)
	$(BIN)/ruff check shared services aifinops tests bench
	$(BIN)/ruff format --check shared services aifinops tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.pipeline_rate

protos: $(STAMP)
	$(BIN)/python -m shared.protos.generate

schemas: $(STAMP)
	$(BIN)/aifinops schemas export schemas

clean:
	rm -rf $(VENV) .aifinops .pytest_cache
