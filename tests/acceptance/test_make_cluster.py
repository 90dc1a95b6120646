"""Scenario: `make cluster` for real. make checks PostgreSQL and RabbitMQ, creates the database,
migrates and seeds it, then honcho starts Procfile.cluster: gunicorn, two Celery workers and
beat, in celery mode. An order placed over HTTP is completed by the workers alone (its email
shows in the console), and SIGINT (Ctrl+C) stops make, honcho and every process they started.

Marked `processes`. Needs PostgreSQL at POSTGRES_SERVER and RabbitMQ at RABBITMQ, with
`rabbitmqctl` on this machine: skipped, naming what is missing, otherwise. Everything it uses is
its own and removed afterwards: a database (created by `make cluster` itself, dropped here), a
RabbitMQ virtual host, a free port."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.processes import HOST, ROOT, free_port, token_for

pytestmark = pytest.mark.processes

# The environment running the tests, used as make's VENV: its scripts (python, honcho, gunicorn,
# celery) are what `make cluster` starts.
VENV = Path(sys.executable).parent.parent
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"  # as .ci/run's default
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"
RABBITMQ_USER = "guest"
PRODUCT = "keyboard"  # seed_demo's catalogue
CUSTOMER = "alice"  # seed_demo's accounts
PROCESSES = {"web", "worker1", "worker2", "beat"}  # Procfile.cluster

CONNECT_TIMEOUT = 3  # each service's check
RABBITMQCTL_TIMEOUT = 60
START_TIMEOUT = 60  # from make until the server answers /api/health/
COMPLETE_TIMEOUT = 30  # from placing the order until it is completed
STOP_TIMEOUT = 15  # from SIGINT until make, honcho and every process are gone
KILL_TIMEOUT = 10  # clean-up: from SIGTERM until SIGKILL

STARTED = re.compile(r"\| (\w+)(?:\.\d+)? started \(pid=(\d+)\)")


def _postgres_missing() -> str | None:
    try:
        psycopg.connect(f"{POSTGRES_SERVER}/postgres", connect_timeout=CONNECT_TIMEOUT).close()
    except psycopg.Error as error:
        return f"needs PostgreSQL at {POSTGRES_SERVER}: {' '.join(str(error).split())}"
    return None


def _rabbitmq_missing() -> str | None:
    from kombu import Connection

    connection = Connection(f"{RABBITMQ}//", connect_timeout=CONNECT_TIMEOUT)
    try:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
    except Exception as error:  # socket errors, amqp's refusals
        return f"needs RabbitMQ at {connection.as_uri()}: {error}"
    finally:
        connection.release()
    if not shutil.which("rabbitmqctl"):
        return "needs rabbitmqctl, to give the test a RabbitMQ virtual host of its own"
    return None


def _rabbitmqctl(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["rabbitmqctl", *arguments],
        capture_output=True,
        text=True,
        timeout=RABBITMQCTL_TIMEOUT,
        check=False,
    )


def _drop_database(name: str) -> None:
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def services() -> Iterator[tuple[str, str]]:
    """(DATABASE_URL, CELERY_BROKER_URL) of the test's own: a database name nothing else uses
    (`make cluster` creates it; dropped afterwards) and a RabbitMQ virtual host (deleted
    afterwards). Skips the test when a service does not answer."""
    for missing in (_postgres_missing(), _rabbitmq_missing()):
        if missing:
            pytest.skip(missing)
    name = f"cluster_test_{uuid.uuid4().hex[:12]}"
    added = _rabbitmqctl("add_vhost", name)
    if added.returncode != 0:
        pytest.skip(f"needs rabbitmqctl to add a RabbitMQ virtual host: {added.stderr.strip()}")
    try:
        allowed = _rabbitmqctl("set_permissions", "-p", name, RABBITMQ_USER, ".*", ".*", ".*")
        assert allowed.returncode == 0, allowed.stderr
        yield f"{POSTGRES_SERVER}/{name}", f"{RABBITMQ}/{name}"
    finally:
        _drop_database(name)
        _rabbitmqctl("delete_vhost", name)


def _signal_group(pgid: int, signum: int) -> None:
    """Send `signum` to a process group that may be gone already."""
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Running:
    """`make cluster`: make (which runs honcho in its own process group), its console (a file)
    and the server's port."""

    make: subprocess.Popen
    console_path: Path
    port: int

    def console(self) -> str:
        return self.console_path.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        """Process name -> the pid honcho started it with; honcho starts each in a session of
        its own, so the pid is also the process group of the process and its children
        (gunicorn's workers, Celery's pool)."""
        return {name: int(pid) for name, pid in STARTED.findall(self.console())}

    def wait_for_console(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.console(), re.MULTILINE):
            assert time.monotonic() < deadline, f"{pattern!r} not in the console:\n{self.console()}"
            time.sleep(0.1)

    def request(self, method: str, path: str, token: str | None = None, body: Any = None):
        """(status, JSON answer or None) of one request to the server."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            payload = None if body is None else json.dumps(body)
            connection.request(method, path, payload, headers)
            response = connection.getresponse()
            content = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(content)
        except ValueError:
            return response.status, None


def _wait_until_serving(running: Running) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert running.make.poll() is None, f"make stopped:\n{running.console()}"
        assert time.monotonic() < deadline, f"no answer in {START_TIMEOUT} s:\n{running.console()}"
        with suppress(OSError):
            if running.request("GET", "/api/health/")[0] == 200:
                return
        time.sleep(0.2)


def _stop(running: Running) -> None:
    """Stop make and honcho (honcho stops its processes); kill whatever is left after a while."""
    make = running.make
    if make.poll() is None:
        _signal_group(make.pid, signal.SIGTERM)
        try:
            make.wait(KILL_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(make.pid, signal.SIGKILL)
            make.wait()
    _signal_group(make.pid, signal.SIGKILL)  # honcho, had it outlived make
    for pgid in running.children().values():
        _signal_group(pgid, signal.SIGKILL)


@contextmanager
def _make_cluster(
    tmp_path: Path, database_url: str, broker_url: str
) -> Iterator[tuple[Running, dict[str, str]]]:
    """`make cluster` on a free port with the test's own database and virtual host; yields the
    running processes and the environment of management commands on that database; stops every
    process afterwards, pass or fail."""
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
                f"DATABASE_URL={database_url}",
                f"CELERY_BROKER_URL={broker_url}",
            ],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            # A group of its own, as the foreground job a terminal's Ctrl+C signals.
            start_new_session=True,
        )
    running = Running(make, console_path, port)
    try:
        _wait_until_serving(running)
        yield running, {**environment, "DATABASE_URL": database_url}
    finally:
        _stop(running)


def test_make_cluster_completes_an_order_with_celery_workers_and_stops_on_sigint(
    tmp_path, services
):
    database_url, broker_url = services
    with _make_cluster(tmp_path, database_url, broker_url) as (running, environment):
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
            assert running.make.poll() is None, running.console()
            time.sleep(0.2)
            status, order = running.request("GET", order_path, token)
            assert status == 200, (status, order)
        # A worker sent the email (the console backend): the effects queue is served too.
        running.wait_for_console(
            rf"^\S+ worker\d\S* +\| Subject: Your order {order['order_id']} is complete$",
            timeout=COMPLETE_TIMEOUT,
        )

        children = running.children()
        assert set(children) == PROCESSES, running.console()
        _signal_group(running.make.pid, signal.SIGINT)  # Ctrl+C in make cluster's terminal
        running.make.wait(STOP_TIMEOUT)

        console = running.console()
        for name in children:
            assert re.search(rf"\| {name}(\.\d+)? stopped", console), console
        deadline = time.monotonic() + STOP_TIMEOUT
        groups = [running.make.pid, *children.values()]  # make's holds honcho
        while any(_group_alive(pgid) for pgid in groups):
            assert time.monotonic() < deadline, (children, console)
            time.sleep(0.1)
