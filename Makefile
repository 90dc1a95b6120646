# Two commands for a fresh machine with python3 and make:
#   make run   seed demo data, serve the system on SQLite at http://127.0.0.1:8000 and run the
#              worker loop beside it (honcho, Procfile)
#   make test  run every check (ruff, import contracts, pytest with coverage)
# and, to measure: make bench (SQLite; BENCH_ARGS=--postgres adds PostgreSQL, see BENCHMARKS.md)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint migrate clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps record which dependency set is installed; editing pyproject.toml reinstalls.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run

migrate: $(VENV)/.installed-run
	DEBUG=1 $(BIN)/python manage.py migrate --noinput

# seed_demo is idempotent: it prints the demo accounts' tokens and adds only what is missing.
# Then honcho runs the Procfile: the development server on $(HOST):$(PORT) and the worker loop
# (process_events --follow) that fires saga timeouts, in one console; Ctrl+C stops both.
# --env /dev/null: honcho would otherwise read a .env file that migrate and seed_demo do not;
# the environment alone configures all three. tests/acceptance/test_make_run.py starts honcho
# the same way: keep the two in step.
run: migrate
	DEBUG=1 $(BIN)/python manage.py seed_demo
	WEB_ADDRESS=$(HOST):$(PORT) PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --env /dev/null

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

# Every workload three times on fresh databases; the medians go to BENCHMARKS.md.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm .pytest-db-* .coverage
