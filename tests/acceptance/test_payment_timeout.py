"""Scenario: the gateway never answers the charge; once the step is overdue the saga gives up,
releases the stock and cancels the order; the charge is withdrawn, never asked again; a payment
that succeeds after all is refunded."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from eventstore.follower import effects
from eventstore.follower.subscriptions import get_subscribers
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
def gateway(settings):
    """The gateway, writing down every call it is asked to make (tests/gateways.py)."""
    settings.PAYMENTS_GATEWAY = "tests.gateways.AskedGateway"
    get_gateway.cache_clear()
    return get_gateway()


@pytest.fixture
def placed(shop, customer_client, gateway):
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


def charge_effect() -> Effect:
    """The call payments owes for the order's charge request."""
    return Effect.objects.get(subscriber="payments.requests", event_type="PaymentRequested")


def test_the_given_up_charge_is_withdrawn_and_the_gateway_never_asked_to_charge_again(
    shop, timed_out, customer_client, gateway
):
    """The first call went unanswered, so the gateway is asked what became of it (nothing),
    never asked to charge again: not by the worker, not by retry_effects."""
    key = f"charge:{timed_out['order_id']}"
    withdrawn = charge_effect()
    assert (withdrawn.status, withdrawn.due_at) == ("withdrawn", None)
    assert withdrawn.withdrawn_reason == "SagaStepFailed: payment_timeout"
    assert gateway.asked == [("charge", key), ("find_charge", key)]

    call_command("process_events", verbosity=0)
    call_command("retry_effects", verbosity=0)

    assert charge_effect().status == "withdrawn"
    assert gateway.asked == [("charge", key), ("find_charge", key)]
    assert gateway.charges == gateway.refunds == {}
    assert shop.payments() == []
    order = shop.order(customer_client, timed_out["order_id"])
    assert (order["status"], order["cancel_reason"]) == ("cancelled", "payment_timeout")


def test_retry_effects_does_not_offer_a_charge_parked_before_the_saga_gave_up(
    shop, placed, gateway, settings
):
    settings.EVENTSTORE_EFFECT_ATTEMPTS = 2
    Effect.objects.update(due_at=timezone.now())  # the first call's backoff is over
    effects.run_due(get_subscribers(["payments.requests"])[0])
    assert charge_effect().status == "parked"  # the second call went unanswered too
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    call_command("expire_sagas", verbosity=0)
    out = io.StringIO()

    call_command("retry_effects", "--dry-run", stdout=out)
    call_command("retry_effects", stdout=out)

    assert "0 parked call(s) would be retried." in out.getvalue()
    assert "0 parked call(s) are pending again." in out.getvalue()
    assert charge_effect().status == "withdrawn"
    assert gateway.charges_asked() == 2
    assert shop.payments() == []


def test_a_charge_made_though_its_answer_was_lost_is_found_and_refunded(
    shop, customer_client, gateway, settings
):
    """The gateway charged and the answer was lost: the saga gives up all the same; the
    reconciliation finds the charge, records it, and the saga refunds it, once."""
    gateway.lose_answers = True
    shop.add_product("sku-widget", price="9.99", stock=10)
    shop.add_product("sku-gadget", price="24.50", stock=4)
    placed = shop.place_order(customer_client, ITEMS, payment_token="tok_timeout")
    order_id = placed["order_id"]
    assert shop.payments() == []  # the gateway charged; the project cannot tell yet
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0

    call_command("expire_sagas", verbosity=0)
    Effect.objects.update(due_at=timezone.now())
    call_command("process_events", verbosity=0)

    key = f"charge:{order_id}"
    assert gateway.asked == [
        ("charge", key),
        ("find_charge", key),
        ("refund", f"refund:{order_id}"),
    ]
    [payment] = shop.payments()
    assert (payment["payment_id"], payment["status"]) == (order_id, "refunded")
    assert charge_effect().status == "withdrawn"
    order = shop.order(customer_client, order_id)
    assert (order["status"], order["cancel_reason"]) == ("cancelled", "payment_timeout")
    history = causal_chain(shop.events(customer_client, order_id), order_id)
    assert ("PaymentProcessed", "PaymentRequested") in history
    assert ("PaymentRefunded", "PaymentRefundRequested") in history


def test_a_charge_in_flight_when_the_saga_gives_up_is_fenced_off_and_its_late_success_refunded(
    shop, placed, customer_client, gateway, settings, monkeypatch
):
    """The race: a worker holds the claim and is charging when the saga gives up and the
    call is withdrawn. The gateway approves; the payment is recorded (the worker's outcome
    event) and refunded by the saga, but the worker cannot mark the call done; once its lease
    is over the call is settled without another charge or a second refund."""
    order_id = placed["order_id"]
    Effect.objects.update(due_at=timezone.now())  # the first call's backoff is over
    [in_flight] = effects.claim_due("payments.requests")
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    call_command("expire_sagas", verbosity=0)
    assert (charge_effect().status, charge_effect().claim) == ("withdrawn", None)
    real_charge = gateway.charge
    monkeypatch.setattr(  # the gateway answers this call
        gateway,
        "charge",
        lambda **kwargs: real_charge(**{**kwargs, "payment_token": "tok_visa_success"}),
    )

    effects.perform_claimed(get_subscribers(["payments.requests"])[0], in_flight)

    assert charge_effect().status == "withdrawn"  # the worker's finish was fenced off
    assert charge_effect().due_at is not None  # reconciled once the worker's lease is over
    Effect.objects.update(due_at=timezone.now())
    call_command("process_events", verbosity=0)
    call_command("retry_effects", verbosity=0)
    assert (charge_effect().status, charge_effect().due_at) == ("withdrawn", None)
    assert gateway.charges_asked() == 2  # the unanswered call, and the one in flight
    assert list(gateway.charges) == [f"charge:{order_id}"]
    assert list(gateway.refunds) == [f"refund:{order_id}"]
    assert [p["status"] for p in shop.payments()] == ["refunded"]
    order = shop.order(customer_client, order_id)
    assert (order["status"], order["cancel_reason"]) == ("cancelled", "payment_timeout")
