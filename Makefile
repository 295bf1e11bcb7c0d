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
# The gate on releasegate itself (gate.yaml; docs/decisions/0011): its own home and the embedded SQLite database,
# whatever database the environment names for other runs.
SELFGATE_POLICY  ?= gate.yaml
SELFGATE_WAIVERS ?= gate-waivers.yaml
SELFGATE_HOME    ?= $(CURDIR)/.releasegate-self
SELFGATE_VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
SELFGATE_ENV      = env -u RELEASEGATE_DB_URL -u AIRFLOW_CONN_RELEASEGATE_DB RELEASEGATE_HOME=$(SELFGATE_HOME)
LOCK_DATE        ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)

.PHONY: install system-deps demo test test-unit test-integration test-e2e lint typecheck selfgate lock bench bench-engine migrate clean

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

test: install lint typecheck selfgate
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

selfgate: install  # releasegate's own gate: Semgrep, pip-audit of requirements.lock, tests/unit; fails unless GO
	$(SELFGATE_ENV) $(BIN)/python scripts/selfgate_waivers.py $(SELFGATE_WAIVERS) --policy $(SELFGATE_POLICY)
	$(SELFGATE_ENV) $(BIN)/releasegate run --policy $(SELFGATE_POLICY) --version $(SELFGATE_VERSION)

lock: $(STAMP)  # requirements.lock from pyproject.toml (with the test extra) as PyPI has it now; needs the network
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 --python-platform linux \
	    --exclude-newer $(LOCK_DATE) --quiet -o requirements.lock

bench: install
	$(BIN)/python bench/run.py

bench-engine: install  # time to verdict on the real scheduler vs a sequential script of the same commands
	$(BIN)/python bench/time_to_verdict.py

migrate: install
	$(BIN)/releasegate db upgrade

clean:
	rm -rf $(VENV) .airflow .releasegate .releasegate-self
