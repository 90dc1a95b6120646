"""Settings come from the environment and fail loudly when they cannot be used."""

import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import connection

PROJECT = Path(__file__).resolve().parents[2]
# What production settings (DEBUG off) cannot start without.
PRODUCTION_KEYS = {"SECRET_KEY": "s", "VAULT_KEYS": Fernet.generate_key().decode()}
DEV_KEY_FILE = str(Path(tempfile.gettempdir()) / "tests-vapid-dev.pem")


SUMMARY = (
    "from config import settings as s; "
    "print(s.DEBUG, s.ALLOWED_HOSTS, s.DATABASES['default']['ENGINE'], "
    "s.EVENTSTORE_SNAPSHOT_EVERY, s.DATABASES['default'].get('OPTIONS', {}))"
)


def load_settings(*, code: str = SUMMARY, **env: str) -> subprocess.CompletedProcess:
    """Import config.settings in a fresh interpreter with exactly these variables set, and run
    `code` (by default: print a summary of the settings)."""
    # With DEBUG on and no VAPID key, the development key file is made here, not in the checkout.
    environment = {"PATH": os.environ.get("PATH", ""), "VAPID_DEV_KEY_FILE": DEV_KEY_FILE, **env}
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


def test_without_debug_the_vault_keys_are_required():
    result = load_settings(SECRET_KEY="s")

    assert result.returncode != 0
    assert "VAULT_KEYS must be set when DEBUG is off" in result.stderr


def test_an_invalid_vault_key_is_refused_without_being_shown():
    valid = Fernet.generate_key().decode()

    result = load_settings(SECRET_KEY="s", VAULT_KEYS=f"{valid}, not-a-fernet-key")

    assert result.returncode != 0
    assert "ImproperlyConfigured: VAULT_KEYS must be Fernet keys" in result.stderr
    assert "key 2 of 2 is not one" in result.stderr
    assert "not-a-fernet-key" not in result.stderr


def test_the_vault_keys_come_from_the_environment_newest_first_and_debug_has_its_own():
    code = "from config import settings as s; print(' '.join(s.VAULT_KEYS))"
    newest, older = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    production = load_settings(SECRET_KEY="s", VAULT_KEYS=f" {newest} ,{older},", code=code)
    development = load_settings(DEBUG="1", code=code)

    assert production.stdout.split() == [newest, older]
    assert development.returncode == 0, development.stderr
    [development_key] = development.stdout.split()
    Fernet(development_key)  # a usable key, with no set-up


def run_in_project(*arguments: str, **env: str) -> subprocess.CompletedProcess:
    """Run `python ARGUMENTS` in the project folder with exactly these variables set."""
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=PROJECT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_manage_py_runs_on_the_development_settings_without_debug_or_a_secret_key(tmp_path):
    database = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    code = "from django.conf import settings as s; print(s.DEBUG, s.ALLOWED_HOSTS)"

    result = run_in_project("manage.py", "shell", "-c", code, DATABASE_URL=database)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True ['localhost', '127.0.0.1', '[::1]']"


def test_manage_py_with_debug_off_or_the_production_module_needs_a_secret_key():
    for env in ({"DEBUG": "0"}, {"DJANGO_SETTINGS_MODULE": "config.settings"}):
        result = run_in_project("manage.py", "check", **env)

        assert result.returncode != 0, env
        assert "SECRET_KEY must be set when DEBUG is off" in result.stderr, env


@pytest.mark.parametrize("entry", ["config.wsgi", "config.asgi", "config.celery"])
def test_production_entry_points_load_the_production_settings(entry):
    code = f"import {entry}; from django.conf import settings; print(settings.DEBUG)"

    without_key = run_in_project("-c", code)
    with_key = run_in_project("-c", code, **PRODUCTION_KEYS)

    assert "SECRET_KEY must be set when DEBUG is off" in without_key.stderr
    assert with_key.returncode == 0, with_key.stderr
    assert with_key.stdout.strip().splitlines()[-1] == "False"


def test_debug_defaults_to_sqlite_with_wal_immediate_transactions_and_local_hosts():
    result = load_settings(DEBUG="1")

    assert result.returncode == 0, result.stderr
    assert "True ['localhost', '127.0.0.1', '[::1]'] django.db.backends.sqlite3" in result.stdout
    assert "'transaction_mode': 'IMMEDIATE'" in result.stdout
    assert "journal_mode=WAL; PRAGMA synchronous=FULL;" in result.stdout
    assert "'timeout': 20" in result.stdout


def test_database_hosts_and_tuning_come_from_the_environment():
    result = load_settings(
        **PRODUCTION_KEYS,
        DATABASE_URL="postgres://user@db.example:5432/orders",
        ALLOWED_HOSTS="api.example.com, admin.example.com",
        EVENTSTORE_SNAPSHOT_EVERY="25",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "False"
    assert "['api.example.com', 'admin.example.com']" in result.stdout
    # The server ends a connection left idle inside a transaction (it would hold followers back).
    options = (
        "{'application_name': 'order-processing', "
        "'options': '-c idle_in_transaction_session_timeout=60000'}"
    )
    assert f"django.db.backends.postgresql 25 {options}" in result.stdout


def test_the_application_name_comes_from_the_environment():
    result = load_settings(
        **PRODUCTION_KEYS,
        DATABASE_URL="postgres://user@db.example:5432/orders",
        DATABASE_APPLICATION_NAME="shop-eu",
    )

    assert result.returncode == 0, result.stderr
    assert "'application_name': 'shop-eu'" in result.stdout


@pytest.mark.parametrize(
    "query", ["?application_name=reports", "?options=-c%20application_name%3Dreports"]
)
def test_a_database_url_naming_another_application_is_refused(query):
    """Followers would stop waiting for the project's own transactions."""
    result = load_settings(
        **PRODUCTION_KEYS, DATABASE_URL=f"postgres://user@db.example:5432/orders{query}"
    )

    assert result.returncode != 0
    assert "DATABASE_URL sets application_name: set DATABASE_APPLICATION_NAME" in result.stderr


@pytest.mark.parametrize("name", ["commandes-\u00e9t\u00e9", "x" * 64])
def test_an_application_name_the_server_would_change_is_refused(name):
    result = load_settings(
        **PRODUCTION_KEYS,
        DATABASE_URL="postgres://user@db.example:5432/orders",
        DATABASE_APPLICATION_NAME=name,
    )

    assert result.returncode != 0
    assert "DATABASE_APPLICATION_NAME must be 1 to 63 printable ASCII" in result.stderr


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("entry", ["config.wsgi", "config.celery", "manage.py shell"])
def test_every_process_reaches_the_server_with_the_application_name(entry):
    """Web, Celery workers and management commands (and this suite's own connection)."""
    from tests.processes import postgres_server

    query = (
        "from django.db import connection; cursor = connection.cursor(); "
        "cursor.execute('SELECT application_name FROM pg_stat_activity "
        "WHERE pid = pg_backend_pid()'); print(cursor.fetchone()[0])"
    )
    env = {
        **PRODUCTION_KEYS,
        "DATABASE_URL": f"{postgres_server()}/{connection.settings_dict['NAME']}",
        "DATABASE_APPLICATION_NAME": "order-processing-probe",
    }
    if entry == "manage.py shell":
        result = run_in_project("manage.py", "shell", "-c", query, **env)
    else:
        result = run_in_project(
            "-c", f"import {entry}; import django; django.setup(); {query}", **env
        )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "order-processing-probe"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('application_name')")
        assert cursor.fetchone()[0] == "order-processing"


def test_the_idle_in_transaction_timeout_comes_from_the_environment_and_0_turns_it_off():
    result = load_settings(
        **PRODUCTION_KEYS,
        DATABASE_URL="postgres://user@db.example:5432/orders?options=-c%20work_mem%3D8MB",
        DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS="0",
    )

    assert result.returncode == 0, result.stderr
    assert "-c work_mem=8MB -c idle_in_transaction_session_timeout=0" in result.stdout


@pytest.mark.parametrize("value", ["many", "1.5"])
def test_a_non_integer_tuning_value_is_refused(value):
    result = load_settings(**PRODUCTION_KEYS, EVENTSTORE_BATCH_SIZE=value)

    assert result.returncode != 0
    assert f"EVENTSTORE_BATCH_SIZE must be an integer, got '{value}'" in result.stderr


@pytest.mark.django_db
def test_sqlite_commits_are_durable_by_default_synchronous_full():
    if connection.vendor != "sqlite":
        pytest.skip("a SQLite setting")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 2  # FULL: fsync at every commit


def test_sqlite_synchronous_normal_can_be_chosen():
    result = load_settings(DEBUG="1", SQLITE_SYNCHRONOUS="normal")

    assert result.returncode == 0, result.stderr
    assert "PRAGMA synchronous=NORMAL;" in result.stdout


@pytest.mark.parametrize("value", ["OFF", "EXTRA", "sometimes"])
def test_any_other_sqlite_synchronous_is_refused(value):
    result = load_settings(DEBUG="1", SQLITE_SYNCHRONOUS=value)

    assert result.returncode != 0
    assert f"SQLITE_SYNCHRONOUS must be NORMAL or FULL, got '{value}'" in result.stderr


def run_check_deploy(**env: str) -> subprocess.CompletedProcess:
    """`manage.py check --deploy --fail-level WARNING` with the production settings."""
    # With DEBUG on and no VAPID key, the development key file is made here, not in the checkout.
    environment = {"PATH": os.environ.get("PATH", ""), "VAPID_DEV_KEY_FILE": DEV_KEY_FILE, **env}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_production_settings_pass_the_deployment_checks(tmp_path):
    result = run_check_deploy(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        VAULT_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="orders.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_defaults_are_https_only_and_debug_defaults_are_plain_http():
    code = (
        "from config import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, "
        "s.SECURE_PROXY_SSL_HEADER)"
    )

    production = load_settings(**PRODUCTION_KEYS, code=code)
    development = load_settings(DEBUG="1", code=code)

    assert production.stdout.split() == ["True"] * 3 + ["31536000", "True", "True", "None"]
    assert development.stdout.split() == ["False"] * 3 + ["0", "False", "False", "None"]


def test_https_settings_come_from_the_environment():
    code = (
        "from config import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, "
        "s.SECURE_PROXY_SSL_HEADER)"
    )

    result = load_settings(
        **PRODUCTION_KEYS,
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="no",
        CSRF_COOKIE_SECURE="off",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
        SECURE_HSTS_PRELOAD="0",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        code=code,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split(maxsplit=6) == [
        *["False"] * 3,
        "3600",
        "False",
        "False",
        "('HTTP_X_FORWARDED_PROTO', 'https')\n",
    ]


@pytest.mark.django_db
def test_the_test_client_is_served_over_plain_http(client):
    response = client.get("/api/health/")

    assert response.status_code == 200


def test_the_health_check_is_not_redirected_to_https_in_production():
    code = (
        "from config import settings as s; import re; "
        "print(s.SECURE_SSL_REDIRECT, "
        "any(re.search(p, 'api/health/') for p in s.SECURE_REDIRECT_EXEMPT), "
        "any(re.search(p, 'api/orders/') for p in s.SECURE_REDIRECT_EXEMPT))"
    )

    production = load_settings(**PRODUCTION_KEYS, code=code)

    assert production.stdout.split() == ["True", "True", "False"]


LOG_FORMAT_SUMMARY = (
    "from config import settings as s; "
    "print(s.LOG_FORMAT, s.LOGGING['handlers']['console']['formatter'])"
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (PRODUCTION_KEYS, "json json"),
        ({"DEBUG": "1"}, "text text"),
        ({**PRODUCTION_KEYS, "LOG_FORMAT": "Text"}, "text text"),
        ({"DEBUG": "1", "LOG_FORMAT": "json"}, "json json"),
    ],
)
def test_logs_are_json_in_production_and_text_under_debug_unless_log_format_says(env, expected):
    result = load_settings(code=LOG_FORMAT_SUMMARY, **env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_an_unknown_log_format_is_refused():
    result = load_settings(DEBUG="1", LOG_FORMAT="xml")

    assert result.returncode != 0
    assert "LOG_FORMAT must be json or text" in result.stderr
