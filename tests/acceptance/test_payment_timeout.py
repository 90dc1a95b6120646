"""Scenario: the gateway never answers the charge; once the step is overdue the saga gives up,
releases the stock and cancels the order; a payment that succeeds after all is refunded."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from eventstore.models import Effect
from payments.gateway import get_gateway
from tests.acceptance import chains
from tests.acceptance.shop import (
    causal_chain,
    compensation_statuses,
    customer_id_of,
    event_types,
    step_statuses,
)

pytestmark = pytest.mark.django_db(transaction=True)

ITEMS = {"sku-gadget": 1, "sku-widget": 3}
TOTAL = "54.47"


@pytest.fixture
def placed(shop, customer_client):
    shop.add_product("sku-widget", price="9.99", stock=10)
    shop.add_product("sku-gadget", price="24.50", stock=4)
    return shop.place_order(customer_client, ITEMS, payment_token="tok_timeout")


@pytest.fixture
def timed_out(placed, settings):
    """The order whose payment step was given up on by `expire_sagas`."""
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    call_command("expire_sagas", verbosity=0)
    return placed


def test_unanswered_payment_leaves_the_order_reserved_and_the_saga_waiting(
    shop, placed, customer_client
):
    order_id = placed["order_id"]

    assert placed["status"] == "inventory_reserved"
    assert Decimal(placed["total_amount"]) == Decimal(TOTAL)
    assert shop.stock("sku-widget") == (7, 3, 0)
    assert shop.stock("sku-gadget") == (3, 1, 0)
    saga = shop.saga(customer_client, order_id)
    assert saga["state"] == "running"
    assert saga["current_step"] == saga["waiting_for"] == "process_payment"
    assert saga["waiting_since"] is not None
    assert step_statuses(saga)["process_payment"] == "started"
    assert shop.payments() == []  # a timeout records nothing
    assert get_gateway().charges == {}
    assert shop.notifications(customer_client) == []
    history = shop.events(customer_client, order_id)
    assert causal_chain(history, order_id) == chains.waiting_for_payment(lines=len(ITEMS))


def test_expire_sagas_leaves_a_payment_step_that_is_not_overdue_alone(
    shop, placed, customer_client
):
    history_before = shop.events(customer_client, placed["order_id"])

    call_command("expire_sagas", verbosity=0)  # default timeout: 30 s

    assert shop.events(customer_client, placed["order_id"]) == history_before
    assert shop.order(customer_client, placed["order_id"])["status"] == "inventory_reserved"


@pytest.mark.parametrize("command", ["expire_sagas", "process_events"])
def test_overdue_payment_is_given_up_releasing_stock_and_cancelling_the_order(
    shop, placed, customer_client, settings, command
):
    order_id = placed["order_id"]
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0

    call_command(command, verbosity=0)

    order = shop.order(customer_client, order_id)
    assert order["status"] == "cancelled"
    assert order["cancel_reason"] == "payment_timeout"
    assert shop.stock("sku-widget") == (10, 0, 0)
    assert shop.stock("sku-gadget") == (4, 0, 0)
    notifications = shop.notifications(customer_client)
    assert [(n["type"], n["order_id"]) for n in notifications] == [("order_cancelled", order_id)]
    assert "payment timeout" in notifications[0]["message"]
    saga = shop.saga(customer_client, order_id)
    assert saga["state"] == "compensated"
    assert step_statuses(saga) == {
        "reserve_inventory": "succeeded",
        "process_payment": "failed",
        "confirm_order": "pending",
        "complete_order": "pending",
    }
    assert saga["steps"][1]["error"] == "no reply within 0 s of the call"
    assert compensation_statuses(saga) == {"release_inventory": ("succeeded", 1)}
    assert saga["waiting_for"] == ""
    history = shop.events(customer_client, order_id)
    assert causal_chain(history, order_id) == chains.payment_timed_out(lines=len(ITEMS))
    by_type = {event["event_type"]: event for event in history}
    assert by_type["OrderPaymentFailed"]["payload"]["reason"] == "payment_timeout"
    assert by_type["OrderCancelled"]["payload"]["reason"] == "payment_timeout"
    assert by_type["SagaStepFailed"]["metadata"]["actor"] == "service:orders"
    assert shop.payments() == []


def test_given_up_saga_is_not_expired_twice(shop, timed_out, customer_client):
    history_before = shop.events(customer_client, timed_out["order_id"])

    call_command("expire_sagas", verbosity=0)
    call_command("process_events", verbosity=0)

    assert shop.events(customer_client, timed_out["order_id"]) == history_before


def test_payment_succeeding_after_the_timeout_is_refunded_and_the_order_stays_cancelled(
    shop, timed_out, customer_client, staff_client
):
    order_id = timed_out["order_id"]
    stock_before = (shop.stock("sku-widget"), shop.stock("sku-gadget"))
    history_before = shop.events(customer_client, order_id)

    response = shop.charge(
        payment_id=order_id,
        customer_id=customer_id_of(customer_client),
        amount=TOTAL,
        payment_token="tok_visa_success",
    )

    assert response.status_code == 200, response.content
    transaction_id = response.json()["transaction_id"]
    assert [(p["payment_id"], p["status"], p["transaction_id"]) for p in shop.payments()] == [
        (order_id, "refunded", transaction_id)
    ]
    gateway = get_gateway()
    assert list(gateway.refunds.items()) == [(f"refund:{order_id}", transaction_id)]
    saga = shop.saga(customer_client, order_id)
    assert saga["state"] == "compensated"
    assert compensation_statuses(saga) == {
        "release_inventory": ("succeeded", 1),
        "refund_payment": ("succeeded", 1),
    }
    order = shop.order(customer_client, order_id)
    assert (order["status"], order["cancel_reason"]) == ("cancelled", "payment_timeout")
    assert (shop.stock("sku-widget"), shop.stock("sku-gadget")) == stock_before
    # Still the one cancellation notice: the refund tells the customer nothing new.
    assert [n["type"] for n in shop.notifications(customer_client)] == ["order_cancelled"]
    history = shop.events(customer_client, order_id)
    assert history[: len(history_before)] == history_before
    assert causal_chain(history, order_id)[len(history_before) :] == chains.LATE_PAYMENT_REFUNDED
    assert history[len(history_before)]["metadata"]["actor"] == f"user:{staff_client.user.pk}"
    assert "OrderPaymentProcessed" not in event_types(history)


def test_repeating_the_late_charge_charges_and_refunds_nothing_more(
    shop, timed_out, customer_client
):
    order_id = timed_out["order_id"]
    charge = {
        "payment_id": order_id,
        "customer_id": customer_id_of(customer_client),
        "amount": TOTAL,
        "payment_token": "tok_visa_success",
    }
    first = shop.charge(**charge)
    history = shop.events(customer_client, order_id)

    again = shop.charge(**charge)

    assert again.status_code == 200
    assert again.json() == first.json()
    assert shop.events(customer_client, order_id) == history
    assert len(get_gateway().refunds) == 1


def test_the_unanswered_charge_is_asked_again_later_and_a_late_success_is_refunded(
    shop, timed_out, customer_client, monkeypatch
):
    """The charge stays owed after the timeout; when the gateway answers a later call, the
    payment is recorded once, and the saga, which gave up already, refunds it."""
    order_id = timed_out["order_id"]
    [owed] = Effect.objects.filter(subscriber="payments.requests")
    assert (owed.status, owed.attempts) == ("pending", 1)
    gateway = get_gateway()
    real_charge = gateway.charge
    monkeypatch.setattr(
        gateway,
        "charge",
        lambda **kwargs: real_charge(**{**kwargs, "payment_token": "tok_visa_success"}),
    )
    Effect.objects.update(due_at=timezone.now())  # its backoff is over

    call_command("process_events", verbosity=0)

    owed.refresh_from_db()
    assert (owed.status, owed.attempts) == ("done", 2)
    assert [p["status"] for p in shop.payments()] == ["refunded"]
    assert list(gateway.charges) == [f"charge:{order_id}"]
    assert list(gateway.refunds) == [f"refund:{order_id}"]
    order = shop.order(customer_client, order_id)
    assert (order["status"], order["cancel_reason"]) == ("cancelled", "payment_timeout")
    history = causal_chain(shop.events(customer_client, order_id), order_id)
    assert ("PaymentProcessed", "PaymentRequested") in history
    assert ("PaymentRefunded", "PaymentRefundRequested") in history
