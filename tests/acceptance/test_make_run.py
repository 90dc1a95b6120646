"""Scenario: `make run` for real. honcho starts the Procfile's web server and worker loop on a
fresh SQLite file, as the Makefile starts them; an order whose payment is never answered is
cancelled, and its stock released, about SAGA_STEP_TIMEOUT after it was placed with nothing
else run; a paid order's email shows in the console; SIGINT (Ctrl+C) to honcho stops both
processes.

These tests start real processes (marked `processes`) and stop every one of them, pass or fail.
They need only SQLite: the database is a file in the test's temporary folder."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.processes import HOST, ROOT, free_port, manage, token_for

pytestmark = pytest.mark.processes

BIN = Path(sys.executable).parent  # the environment's scripts: python, honcho
STEP_TIMEOUT = 2  # SAGA_STEP_TIMEOUT for the processes, in seconds
PRODUCT = "keyboard"  # seed_demo's catalogue
CUSTOMER = "alice"  # seed_demo's accounts

START_TIMEOUT = 60  # until the server answers /api/health/
CANCEL_TIMEOUT = 60  # from placing the order until it is cancelled
STOP_TIMEOUT = 15  # from SIGINT until honcho and both processes are gone
KILL_TIMEOUT = 10  # clean-up: from SIGTERM until SIGKILL

STARTED = re.compile(r"\| (\w+)(?:\.\d+)? started \(pid=(\d+)\)")


def _environment(tmp_path: Path) -> dict[str, str]:
    """The processes' environment: the caller's, on a SQLite file of the test's own, with short
    saga timeouts. Not the test run's settings module: `manage.py` picks config.settings as it
    does under `make run`."""
    environment = dict(os.environ)
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    environment["SAGA_STEP_TIMEOUT"] = str(STEP_TIMEOUT)
    environment["LOG_LEVEL"] = "INFO"  # the worker's log line that it expired the saga's step
    return environment


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
    """`make run`'s processes: honcho, its console (a file) and the server's port."""

    honcho: subprocess.Popen
    console_path: Path
    port: int

    def console(self) -> str:
        return self.console_path.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        """Process name (web, worker) -> the pid honcho started it with. honcho starts each in a
        session of its own, so the pid is also its process group (the runserver autoreloader's
        child included)."""
        return {name: int(pid) for name, pid in STARTED.findall(self.console())}

    def wait_for_console(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.console(), re.MULTILINE)
            if match or time.monotonic() > deadline:
                assert match, f"{pattern!r} not in the console:\n{self.console()}"
                return match
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

    def get(self, path: str, token: str) -> Any:
        status, answer = self.request("GET", path, token)
        assert status == 200, (path, status, answer)
        return answer


def _wait_until_serving(running: Running) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert running.honcho.poll() is None, f"honcho stopped:\n{running.console()}"
        assert time.monotonic() < deadline, f"no answer in {START_TIMEOUT} s:\n{running.console()}"
        try:
            if running.request("GET", "/api/health/")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)


def _stop(running: Running) -> None:
    """Stop honcho (it stops its processes); kill everything that is left after a while."""
    honcho = running.honcho
    if honcho.poll() is None:
        _signal_group(honcho.pid, signal.SIGTERM)
        try:
            honcho.wait(KILL_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(honcho.pid, signal.SIGKILL)
            honcho.wait()
    # honcho gone, its processes are orphans in groups of their own: kill whatever is left.
    for pgid in running.children().values():
        _signal_group(pgid, signal.SIGKILL)


@contextmanager
def _make_run(tmp_path: Path) -> Iterator[tuple[Running, dict[str, str]]]:
    """What `make run` does, on a database of the test's own: migrate, seed_demo, then honcho
    with the project's Procfile, started as the Makefile starts it (WEB_ADDRESS, the scripts'
    folder first on PATH, no .env file). Yields the running processes and their environment;
    stops every process afterwards, pass or fail."""
    environment = _environment(tmp_path)
    manage(environment, "migrate", "--noinput")
    manage(environment, "seed_demo")
    port = free_port()
    console_path = tmp_path / "console.log"
    with open(console_path, "wb") as console:
        honcho = subprocess.Popen(
            [str(BIN / "honcho"), "start", "--env", os.devnull],
            cwd=ROOT,
            env={
                **environment,
                "WEB_ADDRESS": f"{HOST}:{port}",
                "PATH": f"{BIN}{os.pathsep}{environment.get('PATH', os.defpath)}",
            },
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            # A group of its own, as the foreground job a terminal's Ctrl+C signals.
            start_new_session=True,
        )
    running = Running(honcho, console_path, port)
    try:
        _wait_until_serving(running)
        yield running, environment
    finally:
        _stop(running)


def test_make_run_cancels_an_unanswered_payment_emails_a_paid_one_and_stops_on_sigint(
    tmp_path,
):
    with _make_run(tmp_path) as (running, environment):
        token = token_for(environment, CUSTOMER)
        stock_path = f"/api/inventory/{PRODUCT}/"
        stock_before = running.get(stock_path, token)
        running.wait_for_console(r"^.*worker\S* +\| Following the log", timeout=START_TIMEOUT)

        placed_at = time.monotonic()
        status, order = running.request(
            "POST",
            "/api/orders/",
            token,
            {"items": [{"product_id": PRODUCT, "quantity": 2}], "payment_token": "tok_timeout"},
        )

        assert status == 201, order
        assert order["status"] == "inventory_reserved"
        assert running.get(stock_path, token)["available_stock"] == (
            stock_before["available_stock"] - 2
        )
        # Nothing but the worker loop moves the order on: no command is run from here on.
        order_path = f"/api/orders/{order['order_id']}/"
        while order["status"] != "cancelled":
            assert time.monotonic() - placed_at < CANCEL_TIMEOUT, (order, running.console())
            assert running.honcho.poll() is None, running.console()
            time.sleep(0.2)
            order = running.get(order_path, token)
        waited = time.monotonic() - placed_at

        assert order["cancel_reason"] == "payment_timeout"
        assert waited >= STEP_TIMEOUT
        stock_after = running.get(stock_path, token)
        assert (stock_after["available_stock"], stock_after["reserved_stock"]) == (
            stock_before["available_stock"],
            stock_before["reserved_stock"],
        )
        # The worker gave up on the payment, and said so in the shared console as it happened.
        running.wait_for_console(
            r"^.*worker\S* +\| .*Expired the overdue step of 1 saga", timeout=10
        )

        # A paid order completes, and its email shows in the console (the console backend).
        status, paid = running.request(
            "POST", "/api/orders/", token, {"items": [{"product_id": PRODUCT, "quantity": 1}]}
        )
        assert (status, paid["status"]) == (201, "completed"), paid
        running.wait_for_console(
            rf"Subject: Your order {paid['order_id']} is complete$", timeout=CANCEL_TIMEOUT
        )
        email = running.console()
        assert "To: alice@" in email, email

        children = running.children()
        assert set(children) == {"web", "worker"}, running.console()
        _signal_group(running.honcho.pid, signal.SIGINT)  # Ctrl+C in make run's terminal
        running.honcho.wait(STOP_TIMEOUT)

        console = running.console()
        assert re.search(r"^.*worker\S* +\| Stopped\.$", console, re.MULTILINE), console
        for name in children:
            assert re.search(rf"\| {name}(\.\d+)? stopped", console), console
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(_group_alive(pgid) for pgid in children.values()):
            assert time.monotonic() < deadline, (children, console)
            time.sleep(0.1)
