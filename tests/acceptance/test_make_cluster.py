"""Scenario: `make cluster` for real. make checks PostgreSQL, RabbitMQ and Redis, creates the
database, migrates and seeds it, then honcho starts Procfile.cluster: gunicorn, two Celery
workers and beat, in celery mode. An order placed over HTTP is completed by the workers alone
(its email shows in the console, gunicorn's /metrics counts it), and SIGINT (Ctrl+C) stops
make, honcho and every process they started.

Marked `processes`. Needs PostgreSQL at POSTGRES_SERVER, RabbitMQ at RABBITMQ, with
`rabbitmqctl` on this machine, and Redis at REDIS: skipped, naming what is missing, otherwise.
Everything it uses is its own and removed afterwards: a database (created by `make cluster`
itself, dropped here), a RabbitMQ virtual host, a Redis key prefix, a metrics directory, a free
port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.processes import (
    HOST,
    REDIS,
    ROOT,
    Console,
    RabbitmqctlUnavailable,
    free_port,
    group_alive,
    http_request,
    postgres_missing,
    rabbitmq_missing,
    rabbitmq_vhost,
    rabbitmqctl_missing,
    redis_key_prefix,
    redis_missing,
    signal_group,
    token_for,
)

pytestmark = pytest.mark.processes

# The environment running the tests, used as make's VENV: its scripts (python, honcho, gunicorn,
# celery) are what `make cluster` starts.
VENV = Path(sys.executable).parent.parent
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"  # as .ci/run's default
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"
RABBITMQ_USER = "guest"
PRODUCT = "keyboard"  # seed_demo's catalogue
CUSTOMER = "alice"  # seed_demo's accounts
STAFF = "admin"  # who may read /metrics
PROCESSES = {"web", "worker1", "worker2", "beat"}  # Procfile.cluster

START_TIMEOUT = 60  # from make until the server answers /api/health/
COMPLETE_TIMEOUT = 30  # from placing the order until it is completed
STOP_TIMEOUT = 15  # from SIGINT until make, honcho and every process are gone


def _drop_database(name: str) -> None:
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def services() -> Iterator[dict[str, str]]:
    """The variables pointing `make cluster` at services of the test's own: a database name
    nothing else uses (`make cluster` creates it; dropped afterwards), a RabbitMQ virtual host
    and a Redis key prefix (both deleted afterwards). Skips the test when a service does not
    answer."""
    for missing in (
        postgres_missing(POSTGRES_SERVER),
        rabbitmq_missing(f"{RABBITMQ}//"),
        rabbitmqctl_missing(),
        redis_missing(REDIS),
    ):
        if missing:
            pytest.skip(missing)
    name = f"cluster_test_{uuid.uuid4().hex[:12]}"
    try:
        with (
            rabbitmq_vhost("cluster_test", RABBITMQ_USER) as vhost,
            redis_key_prefix("cluster_test", REDIS) as prefix,
        ):
            yield {
                "DATABASE_URL": f"{POSTGRES_SERVER}/{name}",
                "CELERY_BROKER_URL": f"{RABBITMQ}/{vhost}",
                "CACHE_URL": REDIS,
                "CACHE_KEY_PREFIX": prefix,
            }
    except RabbitmqctlUnavailable as error:
        pytest.skip(f"needs rabbitmqctl to add a RabbitMQ virtual host: {error}")
    finally:
        _drop_database(name)


@contextmanager
def _make_cluster(
    tmp_path: Path, services: dict[str, str]
) -> Iterator[tuple[Console, dict[str, str]]]:
    """`make cluster` on a free port with the test's own services and metrics directory; yields
    the running processes and the environment of management commands on that database; stops
    every process afterwards, pass or fail."""
    environment = dict(os.environ)
    environment.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py picks config.settings
    port = free_port()
    console_path = tmp_path / "console.log"
    with open(console_path, "wb") as console:
        make = subprocess.Popen(
            [
                "make",
                # The running environment as is: without -o make would install the project
                # into it, its stamp being missing or older than pyproject.toml.
                "-o",
                f"{VENV}/.installed-run",
                "cluster",
                f"VENV={VENV}",
                f"HOST={HOST}",
                f"PORT={port}",
                f"METRICS_DIR={tmp_path / 'metrics'}",
                *(f"{name}={value}" for name, value in services.items()),
            ],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            # A group of its own, as the foreground job a terminal's Ctrl+C signals.
            start_new_session=True,
        )
    running = Console(make, console_path, port)
    try:
        running.wait_until_serving(START_TIMEOUT)
        yield running, {**environment, "DATABASE_URL": services["DATABASE_URL"]}
    finally:
        running.stop()


def test_make_cluster_completes_an_order_with_celery_workers_and_stops_on_sigint(
    tmp_path, services
):
    with _make_cluster(tmp_path, services) as (running, environment):
        token = token_for(environment, CUSTOMER)

        status, order = running.request(
            "POST", "/api/orders/", token, {"items": [{"product_id": PRODUCT, "quantity": 1}]}
        )

        # Celery mode answers once the order is recorded (201), or 202 while it is pending.
        assert status in (201, 202), order
        order_path = f"/api/orders/{order['order_id']}/"
        deadline = time.monotonic() + COMPLETE_TIMEOUT
        while order["status"] != "completed":
            assert time.monotonic() < deadline, (order, running.console())
            assert running.process.poll() is None, running.console()
            time.sleep(0.2)
            status, order = running.request("GET", order_path, token)
            assert status == 200, (status, order)
        # A worker sent the email (the console backend): the effects queue is served too.
        running.wait_for_console(
            rf"^\S+ worker\d\S* +\| Subject: Your order {order['order_id']} is complete$",
            timeout=COMPLETE_TIMEOUT,
        )

        # gunicorn's /metrics counts it, though only a Celery worker recorded it.
        scrape = http_request(
            running.port, "GET", "/metrics", token=token_for(environment, STAFF), timeout=10
        )
        assert scrape.status == 200, scrape.body
        assert 'orders_total{outcome="completed",reason=""} 1.0' in scrape.body

        children = running.children()
        assert set(children) == PROCESSES, running.console()
        signal_group(running.process.pid, signal.SIGINT)  # Ctrl+C in make cluster's terminal
        running.process.wait(STOP_TIMEOUT)

        console = running.console()
        for name in children:
            assert re.search(rf"\| {name}(\.\d+)? stopped", console), console
        deadline = time.monotonic() + STOP_TIMEOUT
        groups = [running.process.pid, *children.values()]  # make's holds honcho
        while any(group_alive(pgid) for pgid in groups):
            assert time.monotonic() < deadline, (children, console)
            time.sleep(0.1)
