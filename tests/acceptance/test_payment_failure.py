"""Scenario: the card is declined after the stock is reserved; the reservation is released, the
order cancelled and the customer told."""

from decimal import Decimal

import pytest
from django.core import mail

from payments.gateway import get_gateway
from tests.acceptance import chains
from tests.acceptance.shop import causal_chain, compensation_statuses, step_statuses

pytestmark = pytest.mark.django_db(transaction=True)

ITEMS = {"sku-gadget": 1, "sku-widget": 3}


@pytest.fixture
def placed(shop, customer_client):
    shop.add_product("sku-widget", price="9.99", stock=10)
    shop.add_product("sku-gadget", price="24.50", stock=4)
    return shop.place_order(customer_client, ITEMS, payment_token="tok_decline")


def test_declined_order_is_cancelled_with_reason_card_declined(shop, placed, customer_client):
    assert placed["status"] == "cancelled"
    order = shop.order(customer_client, placed["order_id"])
    assert order["status"] == "cancelled"
    assert order["cancel_reason"] == "card_declined"
    # The reservation priced the order before the payment failed.
    assert Decimal(order["total_amount"]) == Decimal("54.47")


def test_declined_order_puts_reserved_stock_back_to_available(shop, placed):
    assert shop.stock("sku-widget") == (10, 0, 0)
    assert shop.stock("sku-gadget") == (4, 0, 0)


def test_declined_order_records_one_failed_payment_and_no_refund(shop, placed, customer_client):
    order_id = placed["order_id"]

    assert [
        (p["payment_id"], p["status"], p["reason"], p["transaction_id"]) for p in shop.payments()
    ] == [(order_id, "failed", "card_declined", None)]
    gateway = get_gateway()
    assert list(gateway.charges) == [f"charge:{order_id}"]
    assert not gateway.charges[f"charge:{order_id}"].approved
    assert gateway.refunds == {}


def test_declined_order_sends_one_cancellation_notice(shop, placed, customer_client):
    notifications = shop.notifications(customer_client)

    assert [(n["type"], n["order_id"]) for n in notifications] == [
        ("order_cancelled", placed["order_id"])
    ]
    assert "card declined" in notifications[0]["message"]
    assert notifications[0]["delivery_status"] == "delivered"
    [email] = mail.outbox
    assert email.to == [customer_client.user.email]
    assert "was cancelled: card declined" in email.body
    assert "Total: 54.47" in email.body


def test_declined_order_saga_fails_payment_and_releases_inventory(shop, placed, customer_client):
    saga = shop.saga(customer_client, placed["order_id"])

    assert saga["state"] == "compensated"
    assert step_statuses(saga) == {
        "reserve_inventory": "succeeded",
        "process_payment": "failed",
        "confirm_order": "pending",
        "complete_order": "pending",
    }
    assert saga["steps"][1]["error"] == "refused: card_declined"
    assert compensation_statuses(saga) == {"release_inventory": ("succeeded", 1)}
    assert saga["waiting_for"] == ""


def test_declined_order_history_runs_reserve_pay_fail_release_cancel_notify(
    shop, placed, customer_client
):
    order_id = placed["order_id"]
    history = shop.events(customer_client, order_id)

    assert causal_chain(history, order_id) == chains.payment_declined(lines=len(ITEMS))
    by_type = {event["event_type"]: event["payload"] for event in history}
    assert by_type["OrderPaymentFailed"]["reason"] == "card_declined"
    assert by_type["OrderCancelled"]["reason"] == "card_declined"
    assert by_type["SagaStepFailed"]["compensations"] == ["release_inventory"]
