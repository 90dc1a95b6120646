"""Fixtures of the celery-mode tests: the services (skipping when one is missing), a template
database seeded once for the session, and a cluster on a database and a vhost of each test's own
(or, in inline dispatch, on a database of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.acceptance.celery_mode.cluster import (
    CUSTOMERS,
    STAFF,
    Cluster,
    Seeded,
    Services,
    project_environment,
)
from tests.processes import (
    RabbitmqctlUnavailable,
    manage,
    postgres_database,
    postgres_missing,
    postgres_server,
    rabbitmq_missing,
    rabbitmq_vhost,
    rabbitmqctl_missing,
    token_for,
)
from tests.proxy import TcpProxy


@pytest.fixture(scope="session")
def postgres() -> Services:
    """The services with PostgreSQL checked (skipping when it does not answer), the broker not:
    for inline dispatch, which needs none."""
    found = Services(postgres=postgres_server(), broker=settings.CELERY_BROKER_URL)
    missing = postgres_missing(found.postgres)
    if missing:
        pytest.skip(missing)
    return found


@pytest.fixture(scope="session")
def services(postgres: Services) -> Services:
    missing = [
        problem for problem in (rabbitmq_missing(postgres.broker), rabbitmqctl_missing()) if problem
    ]
    if missing:
        pytest.skip("; ".join(missing))
    return postgres


@pytest.fixture(scope="session")
def seeded(postgres: Services) -> Iterator[Seeded]:
    with postgres_database(postgres.postgres, "celery_seed") as url:
        environment = project_environment(url)
        manage(environment, "migrate", "--noinput")
        manage(environment, "seed_demo")
        tokens = {user: token_for(environment, user) for user in (STAFF, *CUSTOMERS)}
        yield Seeded(database=url.rpartition("/")[2], tokens=tokens)


@pytest.fixture
def cluster(services: Services, seeded: Seeded, tmp_path: Path) -> Iterator[Cluster]:
    """A database and a vhost of the test's own, and the cluster that will run on them (the
    test starts it); every process is stopped afterwards, pass or fail."""
    with ExitStack() as stack:
        try:
            user = urlsplit(services.broker).username or "guest"
            vhost = stack.enter_context(rabbitmq_vhost("celery_test", user))
        except RabbitmqctlUnavailable as error:
            pytest.skip(str(error))
        database_url = stack.enter_context(
            postgres_database(services.postgres, "celery_test", template=seeded.database)
        )
        running = Cluster(services, database_url, vhost, seeded, tmp_path)
        stack.callback(running.stop)
        yield running


@pytest.fixture
def broker_proxy(services: Services) -> Iterator[TcpProxy]:
    """A proxy in front of the broker, closed after the cluster using it has stopped."""
    with TcpProxy(services.broker_address) as proxy:
        yield proxy


@pytest.fixture
def inline_cluster(postgres: Services, seeded: Seeded, tmp_path: Path) -> Iterator[Cluster]:
    """As `cluster`, in inline dispatch (the web server and the worker loop; no broker): a
    database of the test's own; every process is stopped afterwards, pass or fail."""
    with postgres_database(postgres.postgres, "inline_test", template=seeded.database) as url:
        running = Cluster(postgres, url, "", seeded, tmp_path, dispatch="inline")
        try:
            yield running
        finally:
            running.stop()
