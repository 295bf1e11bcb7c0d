# Every command a contributor runs. The README shows the same ones.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export RELEASEGATE_HOME ?= $(CURDIR)/.releasegate
export AIRFLOW_HOME     ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False

.PHONY: install system-deps demo test test-unit test-integration test-e2e lint typecheck bench bench-engine migrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.4"
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP) system-deps

system-deps:
	@bash scripts/install-system-deps.sh

demo: install
	$(BIN)/python scripts/demo.py

test: install lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install lint typecheck  # no I/O, about 2 minutes
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install lint typecheck  # real databases (SQLite and PostgreSQL) and real tools
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: install lint typecheck  # the DAG's parse guards and structure, then the demo end to end
	$(BIN)/python -m pytest tests/dags tests/e2e $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check releasegate persistence dags plugins tests bench scripts

typecheck: install  # mypy as configured in pyproject.toml (strict on the core domain), cached in .mypy_cache
	$(BIN)/python -m mypy

bench: install
	$(BIN)/python bench/run.py

bench-engine: install  # time to verdict on the real scheduler vs a sequential script of the same commands
	$(BIN)/python bench/time_to_verdict.py

migrate: install
	$(BIN)/releasegate db upgrade

clean:
	rm -rf $(VENV) .airflow .releasegate
