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

## Serve on :8000; on the embedded SQLite default this migrates and seeds the demo data.
run: install
	$(BIN)/salesdesk serve --host $(HOST) --port $(PORT)

## ruff, the suite on SQLite and on PostgreSQL, and schemathesis against the app.
test: install
	scripts/run-tests

lint: install
	$(BIN)/ruff check app tests alembic bench
	$(BIN)/ruff format --check app tests alembic bench

format: install
	$(BIN)/ruff format app tests alembic bench
	$(BIN)/ruff check --fix app tests alembic bench

## Rewrite the committed OpenAPI snapshot after an intended API change.
openapi: install
	$(BIN)/salesdesk openapi > openapi.json

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
