# The two commands: `make run` and `make test`. Each sets up .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint format openapi bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

## Serve on :8000; on the embedded SQLite default this migrates and seeds the demo data, and
## (SALESDESK_CORS_ORIGINS unset) lets pages from http://localhost:* and http://127.0.0.1:*
## call the API. From a phone on the LAN: make run HOST=0.0.0.0 (README, "Web apps").
run: install
	$(BIN)/salesdesk serve --host $(HOST) --port $(PORT)

## ruff, the suite on SQLite and on PostgreSQL, and schemathesis against the app.
test: install
	scripts/run-tests

## The slow soak and fault test: two servers and two workers under load while their own
## PostgreSQL restarts (needs the PostgreSQL 15 server binaries; about two minutes).
.PHONY: soak
soak: install
	$(BIN)/pytest -q -m slow tests/test_soak.py

lint: install
	$(BIN)/ruff check app tests alembic bench
	$(BIN)/ruff format --check app tests alembic bench

format: install
	$(BIN)/ruff format app tests alembic bench
	$(BIN)/ruff check --fix app tests alembic bench

## Rewrite the committed OpenAPI snapshot after an intended API change.
openapi: install
	$(BIN)/salesdesk openapi > openapi.json

## Load, storm and scale benchmarks on the PostgreSQL at 127.0.0.1:5432 (bench/README.md), in
## their own databases: about 8 minutes, 11 the first time (1,000,000 customers are loaded once).
.PHONY: bench-load bench-storm bench-scale
bench: bench-load bench-storm bench-scale

bench-load: install
	$(BIN)/python -m bench.load

## A storm of reports beside ordinary reads, with and without the reports' lane (app/lanes.py),
## on bench-load's database (built first if there is none).
bench-storm: install
	$(BIN)/python -m bench.storm --reuse

bench-scale: install
	$(BIN)/python -m bench.scale

## Reports at scale (bench/README.md): loads 1,000,000 contracts, 3,000,000 payments and
## 2,000,000 opportunities into salesdesk_bench once (about 5 minutes), then times each report.
.PHONY: bench-reports
bench-reports: install
	$(BIN)/python -m bench.reports

clean:
	rm -rf $(VENV) .venv-tools clients/typescript/node_modules clients/typescript/generated \
		var .pytest_cache .ruff_cache
