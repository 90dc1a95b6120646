"""Fresh databases for one run: the project's (migrated) and the baseline's, then dropped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SETTINGS_MODULE = "config.settings"

# The project runs as in production: DEBUG off (no query log), its own settings otherwise.
BENCH_ENVIRONMENT = {
    "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
    "SECRET_KEY": "benchmarks-only-secret-key",
    "VAULT_KEYS": "YmVuY2htYXJrcy1vbmx5LXZhdWx0LWtleS1ub3Qtc2U=",  # not secret either
    "DEBUG": "0",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    # gunicorn is spoken to in plain http on 127.0.0.1, as a proxy that ends TLS would.
    "SECURE_SSL_REDIRECT": "0",
    # Emails are handed to a backend that accepts them and sends nothing: the runs measure the
    # project's work for each delivery (its effect and events), not a mail server.
    "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    # Shoppers share an address and place orders as fast as they can: the runs measure the
    # project's work per request (the throttles' bookkeeping included), not the rate limits.
    "THROTTLE_ANON": "100000000/min",
    "THROTTLE_USER": "100000000/min",
    "THROTTLE_ORDERS": "100000000/min",
    # Web Push is configured, as in a production that pushes: each notification asks whether
    # its customer has a live push subscription (none here). A key for the runs only.
    "VAPID_PRIVATE_KEY": "Ey7PdS0uUjgNtbn4yaRIK6Pz4vbB3LN385fAwB_vWwQ",
}


def configure_django(database_url: str) -> None:
    """Point Django at `database_url` and set it up (call once per process, before any model
    import)."""
    import django

    os.environ.update(BENCH_ENVIRONMENT)
    os.environ["DATABASE_URL"] = database_url
    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def postgres_database(admin_url: str, label: str, template: str | None = None) -> Iterator[str]:
    """A new, empty PostgreSQL database for one run (or a copy of the database `template`,
    which nothing may be connected to meanwhile), named after $BENCH_DATABASE_PREFIX (default
    "bench") and `label`; dropped afterwards."""
    import psycopg

    prefix = os.environ.get("BENCH_DATABASE_PREFIX", "bench")
    name = f"{prefix}_{label}_{uuid.uuid4().hex[:10]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def databases(backend: str, workdir: Path, admin_url: str | None) -> Iterator[tuple[str, str]]:
    """(project database URL, baseline target) for one run, both new and empty."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'project.sqlite3'}", str(workdir / "baseline.sqlite3")
        return
    assert admin_url, "PostgreSQL runs need an admin URL"
    with (
        postgres_database(admin_url, "project") as project,
        postgres_database(admin_url, "baseline") as baseline,
    ):
        yield project, baseline
