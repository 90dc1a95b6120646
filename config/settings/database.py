"""The database: DATABASE_URL (SQLite by default), with each engine's options."""

import os
import re

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import BASE_DIR
from config.settings.env import env_database, env_flag, env_int

# Appends must run in short transactions of their own, so ATOMIC_REQUESTS stays off.
# SQLite: WAL lets readers run beside the single writer; IMMEDIATE takes the write lock when a
# transaction begins, so writers queue (busy timeout) instead of failing mid-transaction, and
# event positions are assigned in commit order. synchronous=FULL syncs the WAL at every commit,
# so a commit that answered survives a power loss (a charged card stays recorded); NORMAL syncs
# only at checkpoints, faster, but the last commits before a power loss can vanish.
SQLITE_SYNCHRONOUS = os.environ.get("SQLITE_SYNCHRONOUS", "").strip().upper() or "FULL"
if SQLITE_SYNCHRONOUS not in {"NORMAL", "FULL"}:
    raise ImproperlyConfigured(
        f"SQLITE_SYNCHRONOUS must be NORMAL or FULL, got {os.environ['SQLITE_SYNCHRONOUS']!r}"
    )
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={SQLITE_SYNCHRONOUS};",
}

# A connection kept for CONN_MAX_AGE seconds is checked before each request's (and each Celery
# task's: config/celery.py) first query, so one the server ended while it sat idle (a restart,
# a fail-over) is replaced instead of failing that request; one lost mid-request answers 503
# (httpapi/errors.py) and is replaced when the request ends.
DATABASES = {
    "default": env_database(
        "DATABASE_URL",
        f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
# PostgreSQL: followers of the log wait for the oldest of the project's transactions still
# running in the database (eventstore.recorders.PostgresRecorder.follow_condition), so a
# connection left idle inside a transaction would hold every subscriber back: the server ends
# such a session after this many ms (0: never).
DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS = env_int("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60000)
# Every connection of the project (web, workers, commands) carries this application_name:
# followers wait only for transactions of sessions that carry it, so it must reach the server
# unchanged (printable ASCII, at most 63 bytes: the server replaces other characters and cuts
# longer names) and be the same in every process.
DATABASE_APPLICATION_NAME = os.environ.get("DATABASE_APPLICATION_NAME", "").strip() or (
    "order-processing"
)
if not re.fullmatch(r"[ -~]{1,63}", DATABASE_APPLICATION_NAME):
    raise ImproperlyConfigured(
        "DATABASE_APPLICATION_NAME must be 1 to 63 printable ASCII characters, "
        f"got {DATABASE_APPLICATION_NAME!r}"
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    # A DATABASE_URL query naming another application would silently make every follower
    # stop waiting for the project's own transactions.
    if _options.get("application_name", DATABASE_APPLICATION_NAME) != DATABASE_APPLICATION_NAME or (
        "application_name" in _options.get("options", "")
    ):
        raise ImproperlyConfigured(
            "DATABASE_URL sets application_name: set DATABASE_APPLICATION_NAME instead"
        )
    _options["application_name"] = DATABASE_APPLICATION_NAME
    _options["options"] = (
        f"{_options.get('options', '')} "
        f"-c idle_in_transaction_session_timeout={DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS}"
    ).strip()

# METRICS_DATABASE: the database through django-prometheus's backend (query and error series;
# config/settings/observability.py has the other metrics settings).
if env_flag("METRICS_DATABASE"):
    DATABASES["default"]["ENGINE"] = {
        "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
        "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    }.get(DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"])
