# Two commands for a fresh machine with python3 and make:
#   make run   seed demo data, serve the system on SQLite at http://127.0.0.1:8000 and run the
#              worker loop beside it (honcho, Procfile)
#   make test  run every check (ruff, import contracts, pytest with coverage)
# and, to measure: make bench (SQLite; BENCH_ARGS=--postgres adds PostgreSQL, see BENCHMARKS.md)
# With PostgreSQL and RabbitMQ at hand, `make cluster` runs the production-like topology of
# celery mode (gunicorn, two Celery workers, beat; Procfile.cluster) instead of `make run`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Where the processes honcho starts (make run, make cluster) write their Prometheus series, so
# that /metrics sums them all (PROMETHEUS_MULTIPROC_DIR, docs/METRICS.md). Its files are
# removed before each start: a dead process's would be summed in.
METRICS_DIR ?= .metrics

.PHONY: run cluster test lint migrate clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps record which dependency set is installed; editing pyproject.toml reinstalls.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run

# config.services first checks DATABASE_URL (a short message naming what is wrong instead of a
# traceback) and creates a PostgreSQL database its server does not have yet; SQLite, the
# default, needs nothing.
migrate: $(VENV)/.installed-run
	$(BIN)/python -m config.services --database-only
	$(BIN)/python manage.py migrate --noinput

# seed_demo is idempotent: it prints the demo accounts' tokens and adds only what is missing.
# Then honcho runs the Procfile: the development server on $(HOST):$(PORT) and the worker loop
# (process_events --follow) that fires saga timeouts, in one console; Ctrl+C stops both.
# --env /dev/null: honcho would otherwise read a .env file that migrate and seed_demo do not;
# the environment alone configures all three. Both processes write their series to METRICS_DIR
# (emptied first), so the server's /metrics counts what the worker loop did too.
# tests/acceptance/test_make_run.py starts honcho the same way: keep the two in step.
run: migrate
	$(BIN)/python manage.py seed_demo
	mkdir -p "$(METRICS_DIR)" && rm -f "$(METRICS_DIR)"/*.db
	PROMETHEUS_MULTIPROC_DIR="$(abspath $(METRICS_DIR))" WEB_ADDRESS=$(HOST):$(PORT) \
		PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --env /dev/null

# The production-like topology of celery mode in one console, on PostgreSQL and RabbitMQ:
# gunicorn (2 workers) on $(HOST):$(PORT), two Celery workers serving every queue, and beat
# (Procfile.cluster, run by honcho; Ctrl+C stops every process). First config.services checks
# that every service answers (naming the missing one and the variable that points at another)
# and creates the database if the server has none of that name; then migrate and seed_demo, as
# `make run` does. DATABASE_URL, CELERY_BROKER_URL and CACHE_URL come from the environment or
# the command line (make cluster DATABASE_URL=postgres://... CELERY_BROKER_URL=amqp://...); the
# broker's default is the settings' own (amqp://guest:guest@127.0.0.1:5672//).
# CACHE_URL: Redis, where both gunicorn workers count the throttles (each would otherwise allow
# the whole rate). METRICS_DIR: every process writes its series there, so /metrics from either
# gunicorn worker counts what the Celery workers did.
# The production settings (config.settings, not manage.py's development ones) with DEBUG off,
# as in production: errors answer the API's JSON 500 and never a debug page, and
# Celery workers keep no log of every query (Celery warns against DEBUG in a worker). What that
# asks for is set below for plain http on this machine: SECRET_KEY and VAULT_KEYS default to
# fixed development keys (the vault's is base64 of b"make-cluster-vault-key-notsecret"; never
# use them, or this target, for a real deployment: set secret ones),
# ALLOWED_HOSTS names $(HOST), and https is not required (no redirect, cookies sent over http,
# as behind a proxy that ends TLS). Emails are printed in the console (no mail server).
# collectstatic: the admin's and the API docs' files, compressed and named after their content,
# which WhiteNoise serves from gunicorn (STATIC_ROOT, staticfiles/ by default).
# seed_demo --force: with DEBUG off it refuses to create the demo accounts (public passwords)
# unless asked; a cluster on this machine is what they are for.
# CONN_MAX_AGE: database connections are kept for a minute; otherwise every task and every
# request would open its own.
# PYTHONPATH: the checkout's own code, even when VENV is another checkout's environment (celery
# imports only `config` from the current folder, the rest from where the project is installed).
cluster: export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/orders_cluster
cluster: export CACHE_URL ?= redis://127.0.0.1:6379/0
cluster: export EVENTSTORE_DISPATCH = celery
cluster: export EVENTSTORE_PARTITIONS = 16
cluster: export DJANGO_SETTINGS_MODULE := config.settings
cluster: export DEBUG ?= 0
cluster: export SECRET_KEY ?= make-cluster-development-key-not-for-any-real-deployment
cluster: export VAULT_KEYS ?= bWFrZS1jbHVzdGVyLXZhdWx0LWtleS1ub3RzZWNyZXQ=
cluster: export ALLOWED_HOSTS ?= $(HOST),localhost,127.0.0.1,[::1]
cluster: export SECURE_SSL_REDIRECT ?= 0
cluster: export SESSION_COOKIE_SECURE ?= 0
cluster: export CSRF_COOKIE_SECURE ?= 0
cluster: export EMAIL_BACKEND ?= django.core.mail.backends.console.EmailBackend
cluster: export CONN_MAX_AGE ?= 60
cluster: export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
cluster: $(VENV)/.installed-run
	$(BIN)/python -m config.services
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo --force
	mkdir -p "$(METRICS_DIR)" && rm -f "$(METRICS_DIR)"/*.db
	PROMETHEUS_MULTIPROC_DIR="$(abspath $(METRICS_DIR))" WEB_ADDRESS=$(HOST):$(PORT) \
		PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho -f Procfile.cluster start --env /dev/null

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
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm .pytest-db-* .coverage .metrics
