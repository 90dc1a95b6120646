"""Scenario: the worker running a cancellation is killed with SIGKILL while the payment provider
is refunding the order. Started again, it finishes the cancellation: the refund is answered
once, the stock returned once, the customer told once, and the order ends `refunded`.

Marked `processes`: `manage.py process_events --follow` runs as a process of its own, on a
SQLite database file of the test's own (nothing else is needed); the provider is
tests.gateways.RecordingGateway, which writes down each call it answers, in a file shared by
every process. Every process started here is stopped, pass or fail.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateways import recorded_calls
from tests.processes import Service, manage

pytestmark = pytest.mark.processes

TIMEOUT = 60  # seconds any one stage may take
LATENCY_MS = 4000  # the provider's round trip while the worker is killed: long enough to hit
QUANTITY = 3
RECEIVED = 10

SETUP = """
from decimal import Decimal
from eventstore.follower.subscriptions import catch_up_all
from inventory.services import product_create
from orders.services import order_cancel, order_place
product_create(
    product_id="sku-kill", name="Kill", price=Decimal("5.00"), initial_stock=%(received)d
)
order = order_place(customer_id="c-1", items=[{"product_id": "sku-kill", "quantity": %(q)d}])
for _ in range(50):
    if not any(r.handled or r.calls for r in catch_up_all()):
        break
order_cancel(order_id=order.order.id, reason="changed my mind")
print("ORDER", order.order.id)
"""


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """The processes' settings: a database file and a recorded provider of the test's own;
    celery dispatch with no wake-up, so only the `process_events` worker moves sagas on."""
    return {
        **{key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "EVENTSTORE_DISPATCH": "celery",
        "EVENTSTORE_DISPATCH_ON_COMMIT": "0",
        "PAYMENTS_GATEWAY": "tests.gateways.RecordingGateway",
        "RECORDING_GATEWAY_FILE": str(tmp_path / "gateway.jsonl"),
        # A call whose worker died is taken over once its lease runs out.
        "EVENTSTORE_EFFECT_LEASE": "2",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }


@pytest.fixture
def worker(environment: dict[str, str], tmp_path: Path) -> Iterator[Service]:
    service = Service(
        "process_events",
        [sys.executable, "manage.py", "process_events", "--follow", "--interval", "0.2"],
        {**environment, "PAYMENTS_GATEWAY_LATENCY_MS": str(LATENCY_MS)},
        tmp_path,
    )
    try:
        yield service
    finally:
        service.stop()


def query(db: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as connection:
        return connection.execute(sql, args).fetchall()


def wait_for(what: str, check, service: Service) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert service.alive, f"{service.name} died waiting for {what}:\n{service.log()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} in {TIMEOUT} s:\n{service.log()[-3000:]}"
        time.sleep(0.1)


def test_a_worker_killed_mid_refund_finishes_the_cancellation_once_restarted(
    environment, worker, tmp_path
):
    db = tmp_path / "db.sqlite3"
    manage(environment, "migrate", "--verbosity=0")
    output = manage(environment, "shell", "-c", SETUP % {"received": RECEIVED, "q": QUANTITY})
    order_id = output.split("ORDER ")[1].split()[0]
    assert query(db, "SELECT status FROM orders_ordersummary") == [("cancelling",)]

    worker.start()

    def refund_call_started():
        return query(
            db,
            "SELECT 1 FROM eventstore_effect WHERE event_type = 'PaymentRefundRequested'"
            " AND started_at IS NOT NULL",
        )

    wait_for("refund call", refund_call_started, worker)
    time.sleep(LATENCY_MS / 4000)  # well inside the provider's round trip
    worker.kill()

    refunds = [c for c in recorded_calls(tmp_path / "gateway.jsonl") if c["call"] == "refund"]
    assert refunds == [], "the provider answered before the kill: the test would prove nothing"
    assert query(db, "SELECT status FROM orders_ordersummary") == [("cancelling",)]

    worker.env = {**worker.env, "PAYMENTS_GATEWAY_LATENCY_MS": "0"}
    worker.start()
    wait_for(
        "refunded order",
        lambda: query(db, "SELECT status FROM orders_ordersummary") == [("refunded",)],
        worker,
    )
    # Let the worker tell the customer, then stop it.
    wait_for(
        "refund notification",
        lambda: query(
            db,
            "SELECT 1 FROM eventstore_event WHERE event_type = 'NotificationSent'"
            " AND payload LIKE '%order_refunded%'",
        ),
        worker,
    )
    worker.stop()

    calls = recorded_calls(tmp_path / "gateway.jsonl")
    assert [c["key"] for c in calls if c["call"] == "refund"] == [f"refund:{order_id}"]

    def count(event_type: str) -> int:
        [(n,)] = query(db, "SELECT count(*) FROM eventstore_event WHERE event_type = ?", event_type)
        return n

    assert {
        event_type: count(event_type)
        for event_type in (
            "OrderCancellationRequested",
            "PaymentRefunded",
            "StockReturned",
            "InventoryReturned",
            "OrderRefunded",
        )
    } == dict.fromkeys(
        (
            "OrderCancellationRequested",
            "PaymentRefunded",
            "StockReturned",
            "InventoryReturned",
            "OrderRefunded",
        ),
        1,
    )
    sent = [
        json.loads(payload)["type"]
        for (payload,) in query(
            db, "SELECT payload FROM eventstore_event WHERE event_type = 'NotificationSent'"
        )
    ]
    assert sorted(sent) == ["order_completed", "order_confirmed", "order_refunded"]
    assert query(
        db, "SELECT available_stock, reserved_stock, sold_stock FROM inventory_productstock"
    ) == [(RECEIVED, 0, 0)]
