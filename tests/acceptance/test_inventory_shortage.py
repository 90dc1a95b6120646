"""Scenario: an order asks for more than is available; nothing is reserved or charged, the order
is cancelled and the customer told why."""

import pytest
from django.core import mail

from payments.gateway import get_gateway
from tests.acceptance import chains
from tests.acceptance.shop import (
    STEP_NAMES,
    causal_chain,
    compensation_statuses,
    event_types,
    step_statuses,
)

pytestmark = pytest.mark.django_db(transaction=True)

# One line can be served, the other cannot: reservations are all or nothing.
ITEMS = {"sku-gadget": 1, "sku-widget": 11}


@pytest.fixture
def placed(shop, customer_client):
    shop.add_product("sku-widget", price="9.99", stock=10)
    shop.add_product("sku-gadget", price="24.50", stock=4)
    return shop.place_order(customer_client, ITEMS)


def test_short_order_is_cancelled_for_insufficient_stock_in_the_post_answer(
    shop, placed, customer_client
):
    assert placed["status"] == "cancelled"
    order = shop.order(customer_client, placed["order_id"])
    assert order["status"] == "cancelled"
    assert order["cancel_reason"] == "insufficient_stock"
    assert order["total_amount"] is None
    assert [item["unit_price"] for item in order["items"]] == [None, None]


def test_short_order_leaves_every_product_stock_untouched(shop, placed):
    assert shop.stock("sku-widget") == (10, 0, 0)
    assert shop.stock("sku-gadget") == (4, 0, 0)


def test_short_order_never_asks_for_payment(shop, placed, customer_client):
    history = shop.events(customer_client, placed["order_id"])

    assert not [t for t in event_types(history) if "Payment" in t]
    assert shop.payments() == []
    assert get_gateway().charges == {}


def test_short_order_sends_one_cancellation_notice_naming_the_reason(shop, placed, customer_client):
    notifications = shop.notifications(customer_client)

    assert [(n["type"], n["order_id"]) for n in notifications] == [
        ("order_cancelled", placed["order_id"])
    ]
    assert "insufficient stock" in notifications[0]["message"]
    [email] = mail.outbox
    assert email.to == [customer_client.user.email]
    assert "was cancelled: insufficient stock" in email.body
    # Never priced, never charged: the stock was short before any payment was asked for.
    assert "  11 x sku-widget\n" in email.body
    assert "price" not in email.body and "Total" not in email.body
    assert "cancelled before any payment: you have not been charged." in email.body
    assert "refund" not in email.body


def test_short_order_saga_fails_reservation_and_compensates_nothing(shop, placed, customer_client):
    saga = shop.saga(customer_client, placed["order_id"])

    assert saga["state"] == "compensated"
    assert step_statuses(saga) == {
        "reserve_inventory": "failed",
        "process_payment": "pending",
        "confirm_order": "pending",
        "complete_order": "pending",
    }
    assert list(step_statuses(saga)) == STEP_NAMES
    assert saga["steps"][0]["error"] == "refused: insufficient_stock"
    assert compensation_statuses(saga) == {}
    assert saga["waiting_for"] == ""


def test_short_order_history_runs_from_request_to_refusal_to_notice(shop, placed, customer_client):
    order_id = placed["order_id"]
    history = shop.events(customer_client, order_id)

    assert causal_chain(history, order_id) == chains.STOCK_SHORTAGE
    refusal = history[3]["payload"]
    assert refusal["reason"] == "insufficient_stock"
    assert refusal["details"] == [{"product_id": "sku-widget", "requested": 11, "available": 10}]
    assert history[5]["payload"]["reason"] == "insufficient_stock"
