"""`python -m config.services`, what `make cluster` runs first: a missing PostgreSQL, broker or
Redis cache is named, with the variable that points at another one; a missing database is
created. With `--database-only`, what `make run` runs first: DATABASE_URL alone, SQLite needing
nothing."""

import os
import subprocess
import sys
import uuid

import dj_database_url
import psycopg
import pytest
from django.db import connection

from config import services, settings
from tests.processes import ROOT, free_port, postgres_server


def _postgres(name: str, port: int | None = None) -> dict:
    return dj_database_url.parse(f"postgres://postgres@127.0.0.1:{port or 5432}/{name}")


def test_a_database_other_than_postgresql_is_refused_with_the_variable_to_set():
    with pytest.raises(services.Missing) as refused:
        services.ensure_database(dj_database_url.parse("sqlite:///db.sqlite3"))

    assert "sqlite3 database, not PostgreSQL" in str(refused.value)
    assert "DATABASE_URL=postgres://" in str(refused.value)


def test_a_postgresql_server_that_does_not_answer_is_named_with_the_variable_to_set():
    port = free_port()  # nothing listens there

    with pytest.raises(services.Missing) as missing:
        services.ensure_database(_postgres("orders", port))

    message = str(missing.value)
    assert message.startswith(f"PostgreSQL does not answer at 127.0.0.1:{port}/orders: ")
    assert "point DATABASE_URL at one" in message


@pytest.mark.parametrize(
    ("scheme", "name"), [("amqp://guest:secret@", "RabbitMQ"), ("redis://:secret@", "Redis")]
)
def test_a_broker_that_does_not_answer_is_named_without_its_password(scheme, name):
    port = free_port()

    with pytest.raises(services.Missing) as missing:
        services.check_broker(f"{scheme}127.0.0.1:{port}/")

    message = str(missing.value)
    assert message.startswith(f"{name} does not answer at ")
    assert f"127.0.0.1:{port}" in message
    assert "secret" not in message
    assert "point CELERY_BROKER_URL at one" in message


def test_a_cache_that_does_not_answer_is_named_without_its_password():
    port = free_port()

    with pytest.raises(services.Missing) as missing:
        services.check_cache(f"redis://:secret@127.0.0.1:{port}/3")

    message = str(missing.value)
    assert message.startswith(f"Redis does not answer at 127.0.0.1:{port}/3: ")
    assert "secret" not in message
    assert "point CACHE_URL at one" in message


def _redis_cache(url: str) -> dict:
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}


def test_main_names_every_missing_service_and_fails(monkeypatch, capsys):
    monkeypatch.setattr(settings, "DATABASES", {"default": _postgres("orders", free_port())})
    monkeypatch.setattr(settings, "CELERY_BROKER_URL", f"amqp://127.0.0.1:{free_port()}//")
    monkeypatch.setattr(settings, "CACHES", _redis_cache(f"redis://127.0.0.1:{free_port()}/0"))

    assert services.main() == 1

    errors = capsys.readouterr().err
    assert "PostgreSQL does not answer" in errors
    assert "RabbitMQ does not answer" in errors
    assert "Redis does not answer" in errors


@pytest.fixture
def unborn_database(monkeypatch):
    """The settings' database: a name the test's PostgreSQL server does not have yet (dropped
    afterwards, should the test have created it)."""
    server = connection.settings_dict
    name = f"services_{uuid.uuid4().hex[:12]}"
    database = {
        **_postgres(name),
        **{key: server[key] for key in ("USER", "PASSWORD", "HOST", "PORT")},
    }
    monkeypatch.setattr(settings, "DATABASES", {"default": database})
    yield database
    with psycopg.connect(
        dbname="postgres",
        user=server["USER"],
        password=server["PASSWORD"] or None,
        host=server["HOST"],
        port=server["PORT"],
        autocommit=True,
    ) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.postgres
def test_a_missing_database_is_created_once(unborn_database, monkeypatch, capsys):
    database = unborn_database
    monkeypatch.setattr(services, "check_broker", lambda url: None)
    monkeypatch.setattr(services, "check_cache", lambda url: None)

    assert services.main() == 0
    where = f"{database['HOST'] or 'localhost'}:{database['PORT'] or 5432}/{database['NAME']}"
    assert capsys.readouterr().out == f"Created the database {where}\n"
    assert services.main() == 0
    assert capsys.readouterr().out == ""


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("setting", "missing", "name"),
    [
        ("CELERY_BROKER_URL", lambda port: f"amqp://127.0.0.1:{port}//", "RabbitMQ"),
        ("CACHES", lambda port: _redis_cache(f"redis://127.0.0.1:{port}/0"), "Redis"),
    ],
)
def test_nothing_is_created_while_the_broker_or_the_cache_does_not_answer(
    unborn_database, monkeypatch, capsys, setting, missing, name
):
    # The other service answers, whatever the suite's environment configures.
    monkeypatch.setattr(
        services, "check_broker" if name == "Redis" else "check_cache", lambda url: None
    )
    monkeypatch.setattr(settings, setting, missing(free_port()))

    assert services.main() == 1

    output = capsys.readouterr()
    assert f"{name} does not answer" in output.err
    assert "Created the database" not in output.out
    assert not services.database_exists(unborn_database)


# --- python -m config.services --database-only: what `make run` runs before migrating ----------


def _check_database(database_url: str | None) -> subprocess.CompletedProcess:
    """`python -m config.services --database-only` as the Makefile runs it, with `database_url`
    as DATABASE_URL (unset when None)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY"}
    }
    if database_url is not None:
        environment["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "config.services", "--database-only"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_database_url_sqlite_needs_nothing():
    checked = _check_database(None)

    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("database_url", "said"),
    [
        ("postgress://me:secret@127.0.0.1/shop", "its scheme postgress:// is not a database's"),
        ("127.0.0.1:5432/shop", "it has no scheme"),
        ("postgres://me:secret@127.0.0.1:no-port/shop", "it is not a URL"),
        ("mysql://me:secret@127.0.0.1/shop", "names a mysql database"),
        ("sqlite:////no/such/folder/db.sqlite3", "a folder that does not exist"),
        ("postgres://me:secret@127.0.0.1:{port}/shop", "PostgreSQL does not answer at 127.0.0.1"),
    ],
)
def test_a_wrong_database_url_is_named_in_a_short_message_and_stops_make_run(database_url, said):
    checked = _check_database(database_url.format(port=free_port()))

    assert checked.returncode == 1
    assert said in checked.stderr
    assert "DATABASE_URL" in checked.stderr
    assert "Traceback" not in checked.stderr
    assert "secret" not in checked.stderr
    assert len(checked.stderr.splitlines()) <= 2


@pytest.fixture
def ux_database_name():
    """A database name the suite's PostgreSQL server does not have; dropped afterwards."""
    name = f"ux_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(f"{postgres_server()}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.postgres
def test_wrong_postgresql_credentials_are_told_apart_from_a_server_that_does_not_answer(
    ux_database_name,
):
    server = postgres_server().split("@", 1)[1]

    checked = _check_database(f"postgres://ux_no_such_role@{server}/{ux_database_name}")

    assert checked.returncode == 1
    assert "refused the connection" in checked.stderr
    assert 'role "ux_no_such_role" does not exist' in checked.stderr
    assert "Check the user and password in DATABASE_URL." in checked.stderr


@pytest.mark.postgres
def test_make_run_creates_a_missing_postgresql_database_once(ux_database_name):
    url = f"{postgres_server()}/{ux_database_name}"

    first = _check_database(url)
    second = _check_database(url)

    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout.startswith("Created the database ")
    assert first.stdout.rstrip().endswith(f"/{ux_database_name}")
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    assert services.database_exists(dj_database_url.parse(url))
