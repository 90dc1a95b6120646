"""Scenario: the process dies mid-saga, right after one service committed its reply and before
anyone reacted to it; `process_events` picks the saga up from the log and finishes it, charging
exactly once and leaking no stock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from django.core.management import call_command

from eventstore.follower.dispatch import dispatch_committed
from eventstore.models import Event
from eventstore.signals import events_committed
from payments.gateway import get_gateway
from tests.acceptance import chains
from tests.acceptance.shop import (
    FINAL_STATUSES,
    STEP_NAMES,
    causal_chain,
    compensation_statuses,
    event_types,
    step_statuses,
)

pytestmark = pytest.mark.django_db(transaction=True)

DISPATCH_UID = "eventstore.dispatch.dispatch_committed"
STAND_IN_UID = "tests.acceptance.crashing_dispatch"
QUANTITY = 3
RECEIVED = 10
TOTAL = "29.97"


class SimulatedCrash(BaseException):
    """The process died. A BaseException, so that no `except Exception` on the way (the robust
    on-commit hook, the dispatcher's per-subscriber guard) lets the dead process carry on."""


@dataclass
class CrashingDispatch:
    """Stands in for the after-commit wake-up: delivers as usual until an event of type
    `crash_after` commits, then the process "dies" and every later wake-up is lost."""

    crash_after: str = "InventoryReserved"
    crashed: bool = False
    dropped: list[list[str]] = field(default_factory=list)
    _depth: int = 0

    def __call__(self, sender=None, events=(), **kwargs) -> None:
        if self.crashed:
            self.dropped.append([event.event_type for event in events])
            return
        self._depth += 1
        try:
            if any(event.event_type == self.crash_after for event in events):
                self.crashed = True
                raise SimulatedCrash
            dispatch_committed(sender=sender, events=events, **kwargs)
        except SimulatedCrash:
            # Unwind the dead process's whole delivery chain up to the request that started
            # it: that request's own transaction committed, so it still answers.
            if self._depth > 1:
                raise
        finally:
            self._depth -= 1

    @staticmethod
    def restart() -> None:
        """A new process: the real wake-up receiver is connected again."""
        events_committed.disconnect(dispatch_uid=STAND_IN_UID)
        events_committed.connect(dispatch_committed, dispatch_uid=DISPATCH_UID)


@pytest.fixture
def crashing_dispatch() -> Iterator[CrashingDispatch]:
    """Swap the real wake-up receiver for a CrashingDispatch; always put the real one back."""
    stand_in = CrashingDispatch()
    assert events_committed.disconnect(dispatch_uid=DISPATCH_UID)
    events_committed.connect(stand_in, weak=False, dispatch_uid=STAND_IN_UID)
    try:
        yield stand_in
    finally:
        stand_in.restart()


@pytest.fixture
def place_and_crash(shop, customer_client, crashing_dispatch):
    """Place an order whose process dies right after `crash_after` commits; the 201 answer."""

    def place(crash_after: str = "InventoryReserved"):
        crashing_dispatch.crash_after = crash_after
        shop.add_product("sku-widget", price="9.99", stock=RECEIVED)
        placed = shop.place_order(customer_client, {"sku-widget": QUANTITY})
        assert crashing_dispatch.crashed, f"no {crash_after} was committed"
        return placed

    return place


def assert_completed_once_without_stock_leaks(shop, client, order_id: str) -> None:
    order = shop.order(client, order_id)
    assert order["status"] == "completed"
    history = shop.events(client, order_id)
    assert causal_chain(history, order_id) == chains.completed(lines=1)
    charges = get_gateway().charges
    assert list(charges) == [f"charge:{order_id}"]
    assert charges[f"charge:{order_id}"].approved
    payments = shop.payments()
    assert [(p["payment_id"], p["status"], p["amount"]) for p in payments] == [
        (order_id, "processed", TOTAL)
    ]
    available, reserved, sold = shop.stock("sku-widget")
    assert (reserved, sold) == (0, QUANTITY)
    assert available + reserved + sold == RECEIVED
    saga = shop.saga(client, order_id)
    assert saga["state"] == "completed"
    assert step_statuses(saga) == dict.fromkeys(STEP_NAMES, "succeeded")
    assert compensation_statuses(saga) == {}
    assert [n["type"] for n in shop.notifications(client)] == [
        "order_completed",
        "order_confirmed",
    ]


def test_crash_after_reservation_leaves_the_order_unfinished_with_stock_held(
    shop, place_and_crash, customer_client
):
    placed = place_and_crash("InventoryReserved")
    order_id = placed["order_id"]

    assert placed["status"] not in FINAL_STATUSES
    assert placed["status"] == "pending"  # the reservation's reply was never handled
    assert shop.stock("sku-widget") == (RECEIVED - QUANTITY, QUANTITY, 0)
    saga = shop.saga(customer_client, order_id)
    assert (saga["state"], saga["waiting_for"]) == ("running", "reserve_inventory")
    assert event_types(shop.events(customer_client, order_id))[-2:] == [
        "InventoryReserved",
        "StockReserved",
    ]
    assert shop.payments() == []
    assert get_gateway().charges == {}
    assert shop.notifications(customer_client) == []


def test_crash_after_the_charge_leaves_the_order_unpaid_in_its_own_view(
    shop, place_and_crash, customer_client
):
    placed = place_and_crash("PaymentProcessed")

    assert placed["status"] == "inventory_reserved"
    assert shop.stock("sku-widget") == (RECEIVED - QUANTITY, QUANTITY, 0)
    assert [p["status"] for p in shop.payments()] == ["processed"]
    saga = shop.saga(customer_client, placed["order_id"])
    assert (saga["state"], saga["waiting_for"]) == ("running", "process_payment")


@pytest.mark.parametrize(
    "crash_after",
    [
        "OrderCreated",  # the request's own commit: not even the saga started
        "InventoryReservationRequested",
        "InventoryReserved",
        "PaymentRequested",
        "PaymentProcessed",  # charged, and nobody knows yet
        "OrderCompleted",  # final for the customer, but stock still held and nobody told
    ],
)
def test_process_events_after_a_restart_completes_the_saga_charging_once(
    shop, place_and_crash, customer_client, crashing_dispatch, crash_after
):
    order_id = place_and_crash(crash_after)["order_id"]
    crashing_dispatch.restart()

    call_command("process_events", verbosity=0)

    assert_completed_once_without_stock_leaks(shop, customer_client, order_id)


def test_process_events_again_after_recovery_changes_nothing(
    shop, place_and_crash, customer_client, crashing_dispatch
):
    order_id = place_and_crash("InventoryReserved")["order_id"]
    crashing_dispatch.restart()
    call_command("process_events", verbosity=0)

    def answers():
        return (
            shop.order(customer_client, order_id),
            shop.events(customer_client, order_id),
            shop.saga(customer_client, order_id),
            shop.payments(),
            shop.product("sku-widget"),
            shop.notifications(customer_client),
        )

    events_before, answers_before = Event.objects.count(), answers()

    call_command("process_events", verbosity=0)

    assert Event.objects.count() == events_before
    assert answers() == answers_before
    assert len(get_gateway().charges) == 1


def test_worker_passes_alone_finish_the_saga_while_wake_ups_stay_lost(
    shop, place_and_crash, customer_client, crashing_dispatch
):
    order_id = place_and_crash("InventoryReserved")["order_id"]

    # No restart: only `process_events` passes (what `--follow` loops over) move things on.
    for _ in range(5):
        events_before = Event.objects.count()
        call_command("process_events", verbosity=0)
        if Event.objects.count() == events_before:
            break
    else:
        pytest.fail("process_events kept appending events after 5 passes")

    assert crashing_dispatch.dropped, "wake-ups were delivered: the test would prove nothing"
    assert_completed_once_without_stock_leaks(shop, customer_client, order_id)


# --- the cancellation saga -------------------------------------------------------------------


@pytest.mark.parametrize(
    "crash_after",
    [
        "OrderCancellationRequested",  # the request's own commit: the saga did not start
        "PaymentRefundRequested",
        "PaymentRefunded",  # refunded, and nobody knows yet
        "InventoryReturnRequested",
        "InventoryReturned",
        "OrderRefunded",  # final for the customer, but nobody told
    ],
)
def test_process_events_after_a_restart_finishes_a_cancellation_refunding_once(
    shop, customer_client, crashing_dispatch, crash_after
):
    crashing_dispatch.crash_after = "no such event"
    shop.add_product("sku-widget", price="9.99", stock=RECEIVED)
    order_id = shop.place_order(customer_client, {"sku-widget": QUANTITY})["order_id"]
    crashing_dispatch.crash_after = crash_after

    response = customer_client.post(f"/api/orders/{order_id}/cancel/", {}, format="json")
    assert response.status_code == 200
    assert crashing_dispatch.crashed, f"no {crash_after} was committed"
    crashing_dispatch.restart()
    call_command("process_events", verbosity=0)
    call_command("process_events", verbosity=0)

    assert shop.order(customer_client, order_id)["status"] == "refunded"
    assert list(get_gateway().refunds) == [f"refund:{order_id}"]
    assert [p["status"] for p in shop.payments()] == ["refunded"]
    assert shop.stock("sku-widget") == (RECEIVED, 0, 0)
    saga = shop.saga(customer_client, order_id)["cancellation"]
    assert saga["state"] == "completed"
    assert {step["name"]: step["status"] for step in saga["steps"]} == {
        "refund_payment": "succeeded",
        "return_stock": "succeeded",
        "refund_order": "succeeded",
    }
    types = [n["type"] for n in shop.notifications(customer_client)]
    assert sorted(types) == ["order_completed", "order_confirmed", "order_refunded"]
    refunds = [
        e for e in shop.events(customer_client, order_id) if e["event_type"] == "PaymentRefunded"
    ]
    assert len(refunds) == 1
