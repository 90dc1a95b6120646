"""Settings come from the environment and fail loudly when they cannot be used."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


SUMMARY = (
    "from config import settings as s; "
    "print(s.DEBUG, s.ALLOWED_HOSTS, s.DATABASES['default']['ENGINE'], "
    "s.EVENTSTORE_SNAPSHOT_EVERY, s.DATABASES['default'].get('OPTIONS', {}))"
)


def load_settings(*, code: str = SUMMARY, **env: str) -> subprocess.CompletedProcess:
    """Import config.settings in a fresh interpreter with exactly these variables set, and run
    `code` (by default: print a summary of the settings)."""
    environment = {"PATH": os.environ.get("PATH", ""), **env}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_debug_a_secret_key_is_required():
    result = load_settings()

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_debug_defaults_to_sqlite_with_wal_immediate_transactions_and_local_hosts():
    result = load_settings(DEBUG="1")

    assert result.returncode == 0, result.stderr
    assert "True ['localhost', '127.0.0.1', '[::1]'] django.db.backends.sqlite3" in result.stdout
    assert "'transaction_mode': 'IMMEDIATE'" in result.stdout
    assert "journal_mode=WAL" in result.stdout
    assert "'timeout': 20" in result.stdout


def test_database_hosts_and_tuning_come_from_the_environment():
    result = load_settings(
        SECRET_KEY="s",
        DATABASE_URL="postgres://user@db.example:5432/orders",
        ALLOWED_HOSTS="api.example.com, admin.example.com",
        EVENTSTORE_SNAPSHOT_EVERY="25",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "False"
    assert "['api.example.com', 'admin.example.com']" in result.stdout
    assert "django.db.backends.postgresql 25 {}" in result.stdout


@pytest.mark.parametrize("value", ["many", "1.5"])
def test_a_non_integer_tuning_value_is_refused(value):
    result = load_settings(SECRET_KEY="s", EVENTSTORE_BATCH_SIZE=value)

    assert result.returncode != 0
    assert f"EVENTSTORE_BATCH_SIZE must be an integer, got '{value}'" in result.stderr
