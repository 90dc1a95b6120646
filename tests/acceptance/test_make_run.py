"""Scenario: `make run` for real. honcho starts the Procfile's web server and worker loop on a
fresh SQLite file, as the Makefile starts them; an order whose payment is never answered is
cancelled, and its stock released, about SAGA_STEP_TIMEOUT after it was placed with nothing
else run, and the server's /metrics counts that cancellation, which the worker loop recorded; a
paid order's email shows in the console; Web Push is on with the development key pair the
first start made; SIGINT (Ctrl+C) to honcho stops both processes.

These tests start real processes (marked `processes`) and stop every one of them, pass or fail.
They need only SQLite: the database is a file in the test's temporary folder."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.processes import (
    HOST,
    ROOT,
    Console,
    free_port,
    group_alive,
    http_request,
    manage,
    signal_group,
    token_for,
)

pytestmark = pytest.mark.processes

BIN = Path(sys.executable).parent  # the environment's scripts: python, honcho
STEP_TIMEOUT = 2  # SAGA_STEP_TIMEOUT for the processes, in seconds
PRODUCT = "keyboard"  # seed_demo's catalogue
CUSTOMER = "alice"  # seed_demo's accounts
STAFF = "admin"  # who may read /metrics

START_TIMEOUT = 60  # until the server answers /api/health/
CANCEL_TIMEOUT = 60  # from placing the order until it is cancelled
STOP_TIMEOUT = 15  # from SIGINT until honcho and both processes are gone


def _environment(tmp_path: Path) -> dict[str, str]:
    """The processes' environment: the caller's, on a SQLite file of the test's own, with short
    saga timeouts. Not the test run's settings module: `manage.py` picks config.settings as it
    does under `make run`."""
    environment = dict(os.environ)
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    environment["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    environment["SAGA_STEP_TIMEOUT"] = str(STEP_TIMEOUT)
    environment["LOG_LEVEL"] = "INFO"  # the worker's log line that it expired the saga's step
    # No VAPID key, as on a fresh machine: the development key pair is made in this file.
    environment.pop("VAPID_PRIVATE_KEY", None)
    environment["VAPID_DEV_KEY_FILE"] = str(tmp_path / ".vapid-dev.pem")
    return environment


@contextmanager
def _make_run(tmp_path: Path) -> Iterator[tuple[Console, dict[str, str]]]:
    """What `make run` does, on a database of the test's own: migrate, seed_demo, then honcho
    with the project's Procfile, started as the Makefile starts it (a fresh metrics directory,
    WEB_ADDRESS, the scripts' folder first on PATH, no .env file). Yields the running processes
    and their environment; stops every process afterwards, pass or fail."""
    environment = _environment(tmp_path)
    manage(environment, "migrate", "--noinput")
    manage(environment, "seed_demo")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    port = free_port()
    console_path = tmp_path / "console.log"
    with open(console_path, "wb") as console:
        honcho = subprocess.Popen(
            [str(BIN / "honcho"), "start", "--env", os.devnull],
            cwd=ROOT,
            env={
                **environment,
                "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                "WEB_ADDRESS": f"{HOST}:{port}",
                "PATH": f"{BIN}{os.pathsep}{environment.get('PATH', os.defpath)}",
            },
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            # A group of its own, as the foreground job a terminal's Ctrl+C signals.
            start_new_session=True,
        )
    running = Console(honcho, console_path, port)
    try:
        running.wait_until_serving(START_TIMEOUT)
        yield running, environment
    finally:
        running.stop()


def public_key_of(key_file: Path) -> str:
    """The VAPID public key of the private key in a PEM file, as the API serves it."""
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode()


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
            assert running.process.poll() is None, running.console()
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
        # The server's /metrics counts it too: the two processes share the metrics directory.
        scrape = http_request(
            running.port, "GET", "/metrics", token=token_for(environment, STAFF), timeout=10
        )
        assert scrape.status == 200, scrape.body
        assert 'orders_total{outcome="cancelled",reason="payment_timeout"} 1.0' in scrape.body

        # Web Push works with no set-up: the key pair made at the first start is the one served.
        key_file = tmp_path / ".vapid-dev.pem"
        assert running.get("/api/notifications/push-subscriptions/public-key/", token) == {
            "public_key": public_key_of(key_file)
        }

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
        signal_group(running.process.pid, signal.SIGINT)  # Ctrl+C in make run's terminal
        running.process.wait(STOP_TIMEOUT)

        console = running.console()
        assert re.search(r"^.*worker\S* +\| Stopped\.$", console, re.MULTILINE), console
        for name in children:
            assert re.search(rf"\| {name}(\.\d+)? stopped", console), console
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(group_alive(pgid) for pgid in children.values()):
            assert time.monotonic() < deadline, (children, console)
            time.sleep(0.1)
