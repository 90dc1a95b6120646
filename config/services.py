"""`python -m config.services`: what `make cluster` runs before anything else. Celery mode needs a
PostgreSQL server and a broker (RabbitMQ by default), and several processes need a shared cache
for their throttles (Redis); this checks that each answers, with the settings' own
DATABASE_URL, CELERY_BROKER_URL and CACHE_URL (when set), and then, only if all do, creates the
database when the server has none of that name yet, so `make cluster` works on a fresh server
with no management command and leaves nothing behind when a service is missing.

`python -m config.services --database-only`: what `make run` (and `make migrate`) runs before
migrating, with the development settings `manage.py` loads by default: DATABASE_URL alone is
checked (a PostgreSQL database missing on a server that answers is created; SQLite, the default,
needs nothing).

Exit status 0 when all is well; otherwise 1, with a short message naming what is wrong and the
variable to set. Runs without Django set up: it reads the settings as a plain module (which
needs SECRET_KEY and VAULT_KEYS, or DEBUG, like every process of the project).
"""

from __future__ import annotations

import sys
from importlib import import_module
from pathlib import Path
from typing import Any

CONNECT_TIMEOUT = 3  # seconds, for each service
MAINTENANCE_DATABASE = "postgres"  # where CREATE DATABASE is run, as `createdb` does
EXAMPLE_URL = "DATABASE_URL=postgres://user:password@host:5432/orders"
# What manage.py (and so `make run`) loads unless DJANGO_SETTINGS_MODULE says otherwise.
MANAGE_SETTINGS = "config.settings_dev"


class Missing(Exception):
    """A service does not answer; the message says which one and how to point at another."""


def _where(database: dict[str, Any]) -> str:
    """host:port/name of a database, without its credentials."""
    host = database.get("HOST") or "localhost"
    port = database.get("PORT") or 5432
    return f"{host}:{port}/{database['NAME']}"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def ensure_database(database: dict[str, Any]) -> bool:
    """Check that the PostgreSQL server of `database` (a DATABASES entry) answers and create the
    database if it does not exist; whether it was created."""
    if database_exists(database):
        return False
    create_database(database)
    return True


def _maintenance(database: dict[str, Any]):
    """A connection to the server of `database` (a DATABASES entry), to its maintenance
    database; Missing, naming the variable to set, when it is not PostgreSQL or does not answer."""
    import psycopg

    if database["ENGINE"] != "django.db.backends.postgresql":
        raise Missing(
            f"DATABASE_URL names a {database['ENGINE'].rsplit('.', 1)[-1]} database, not "
            "PostgreSQL, which make cluster runs on.\n"
            f"  Point DATABASE_URL at one: {EXAMPLE_URL}"
        )
    try:
        return psycopg.connect(
            dbname=MAINTENANCE_DATABASE,
            user=database.get("USER") or None,
            password=database.get("PASSWORD") or None,
            host=database.get("HOST") or None,
            port=database.get("PORT") or None,
            connect_timeout=CONNECT_TIMEOUT,
            autocommit=True,
            application_name=database.get("OPTIONS", {}).get("application_name"),
        )
    except psycopg.Error as error:
        raise _unreachable(database, error) from error


def _unreachable(database: dict[str, Any], error: BaseException) -> Missing:
    """What is wrong when the server of `database` could not be connected to: it refused the
    login (libpq reports the server's own refusal as FATAL), or nothing answered."""
    if "FATAL:" in str(error):
        return Missing(
            f"PostgreSQL at {_where(database)} refused the connection: {_one_line(error)}\n"
            "  Check the user and password in DATABASE_URL."
        )
    return Missing(
        f"PostgreSQL does not answer at {_where(database)}: {_one_line(error)}\n"
        f"  Start one, or point DATABASE_URL at one: {EXAMPLE_URL}"
    )


def database_exists(database: dict[str, Any]) -> bool:
    """Whether the server of `database` (a DATABASES entry) has it; Missing when the server is
    not PostgreSQL or does not answer. Changes nothing."""
    with _maintenance(database) as connection:
        return bool(
            connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [database["NAME"]]
            ).fetchone()
        )


def create_database(database: dict[str, Any]) -> None:
    """Create `database` (a DATABASES entry) on its server, as `createdb` does."""
    import psycopg
    from psycopg import sql

    with _maintenance(database) as connection:
        try:
            connection.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database["NAME"]))
            )
        except psycopg.Error as error:
            raise Missing(
                f"PostgreSQL at {_where(database)} answers, but the database could not be "
                f"created: {_one_line(error)}\n"
                "  Create it, or point DATABASE_URL at one that exists."
            ) from error


def check_broker(url: str) -> None:
    """Check that the broker at `url` answers (and takes the credentials and virtual host)."""
    from kombu import Connection

    connection = Connection(url, connect_timeout=CONNECT_TIMEOUT)
    name = "Redis" if str(connection.transport_cls).startswith("redis") else "RabbitMQ"
    try:  # without kombu's back-off (2 s before trying again): a check answers at once
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
    except Exception as error:  # socket errors, and amqp's refusals of the login or vhost
        raise Missing(
            f"{name} does not answer at {connection.as_uri()}: {_one_line(error)}\n"
            "  Start one, or point CELERY_BROKER_URL at one: "
            "make cluster CELERY_BROKER_URL=amqp://user:password@host:5672/vhost "
            "(or redis://host:6379/0)"
        ) from error
    finally:
        connection.release()


def check_cache(url: str) -> None:
    """Check that the Redis server at `url` (CACHE_URL, where the throttles count) answers and
    takes the credentials and database number."""
    import redis

    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
    )
    where = client.connection_pool.connection_kwargs
    try:
        client.ping()
    except redis.RedisError as error:
        raise Missing(
            f"Redis does not answer at {where.get('host')}:{where.get('port')}/"
            f"{where.get('db', 0)}: {_one_line(error)}\n"
            "  Start one, or point CACHE_URL at one: make cluster CACHE_URL=redis://host:6379/0"
        ) from error
    finally:
        client.close()


def check_sqlite(database: dict[str, Any]) -> None:
    """Check that a SQLite database file can be made: its folder exists (SQLite creates the
    file, not the folders)."""
    name = str(database["NAME"])
    if name == ":memory:" or name.startswith("file:"):
        return
    folder = Path(name).parent
    if not folder.is_dir():
        raise Missing(
            f"DATABASE_URL names a SQLite file in {folder}, a folder that does not exist.\n"
            "  Create the folder, or unset DATABASE_URL for db.sqlite3 in the project folder."
        )


def check_database(database: dict[str, Any]) -> bool:
    """Check the database `make run` migrates (a DATABASES entry): a SQLite file's folder, or a
    PostgreSQL server, where a missing database is created; whether one was created. Missing
    for any other database, or one that cannot be reached."""
    engine = database["ENGINE"].rsplit(".", 1)[-1]
    if engine == "sqlite3":
        check_sqlite(database)
        return False
    if engine == "postgresql":
        return ensure_database(database)
    raise Missing(
        f"DATABASE_URL names a {engine} database: the project runs on PostgreSQL or SQLite.\n"
        f"  Point DATABASE_URL at PostgreSQL ({EXAMPLE_URL}), or unset it for SQLite."
    )


def database_main() -> int:
    """Check, with the settings manage.py loads, the database `make run` is about to migrate,
    and create it if it is a PostgreSQL database its server does not have yet."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        # Not DJANGO_SETTINGS_MODULE, which importing `config` sets (for Celery): every settings
        # module reads DATABASES from the environment alike.
        settings = import_module(MANAGE_SETTINGS)
    except ImproperlyConfigured as error:  # a variable the settings cannot read
        print(error, file=sys.stderr)
        return 1
    database = settings.DATABASES["default"]
    try:
        created = check_database(database)
    except Missing as missing:
        print(missing, file=sys.stderr)
        return 1
    if created:
        print(f"Created the database {_where(database)}")
    return 0


def main() -> int:
    """Check every service, then create the database if it is missing: nothing is created
    while a service does not answer."""
    from config import settings

    database = settings.DATABASES["default"]
    problems = []
    exists = True
    try:
        exists = database_exists(database)
    except Missing as missing:
        problems.append(str(missing))
    try:
        check_broker(settings.CELERY_BROKER_URL)
    except Missing as missing:
        problems.append(str(missing))
    cache = settings.CACHES["default"]
    if cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
        try:
            check_cache(cache["LOCATION"])
        except Missing as missing:
            problems.append(str(missing))
    if not problems and not exists:
        try:
            create_database(database)
        except Missing as missing:
            problems.append(str(missing))
        else:
            print(f"Created the database {_where(database)}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(database_main() if sys.argv[1:] == ["--database-only"] else main())
