"""`python -m config.services`, what `make cluster` runs first: a missing PostgreSQL, broker or
Redis cache is named, with the variable that points at another one; a missing database is
created."""

import uuid

import dj_database_url
import psycopg
import pytest
from django.db import connection

from config import services, settings
from tests.processes import free_port


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
