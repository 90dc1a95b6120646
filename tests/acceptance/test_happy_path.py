"""Scenario: an order is reserved, paid, confirmed, completed and notified, all within the POST."""

from decimal import Decimal

import pytest
from django.core import mail

from payments.gateway import get_gateway
from tests.acceptance import chains
from tests.acceptance.shop import (
    STEP_NAMES,
    causal_chain,
    compensation_statuses,
    customer_id_of,
    expected_total,
    step_statuses,
)

pytestmark = pytest.mark.django_db(transaction=True)

ITEMS = {"sku-gadget": 1, "sku-widget": 3}


@pytest.fixture
def stocked(shop):
    shop.add_product("sku-widget", price="9.99", stock=10)
    shop.add_product("sku-gadget", price="24.50", stock=4)


def test_placed_order_completes_synchronously_with_inventory_prices(shop, stocked, customer_client):
    placed = shop.place_order(customer_client, ITEMS)
    total = expected_total(shop, ITEMS)  # 24.50 + 3 x 9.99

    assert placed["status"] == "completed"
    assert placed["customer_id"] == customer_id_of(customer_client)
    assert Decimal(placed["total_amount"]) == total == Decimal("54.47")
    order = shop.order(customer_client, placed["order_id"])
    assert order["status"] == "completed"
    assert order["cancel_reason"] == ""
    assert Decimal(order["total_amount"]) == total
    assert [(i["product_id"], i["quantity"], i["unit_price"]) for i in order["items"]] == [
        ("sku-gadget", 1, "24.50"),
        ("sku-widget", 3, "9.99"),
    ]


def test_completed_order_moves_stock_from_available_to_sold(shop, stocked, customer_client):
    shop.place_order(customer_client, ITEMS)

    assert shop.stock("sku-widget") == (7, 0, 3)
    assert shop.stock("sku-gadget") == (3, 0, 1)


def test_completed_order_is_charged_exactly_once_for_its_total(shop, stocked, customer_client):
    placed = shop.place_order(customer_client, ITEMS)
    order_id = placed["order_id"]

    payments = shop.payments()
    assert len(payments) == 1
    payment = payments[0]
    assert payment["payment_id"] == order_id
    assert payment["customer_id"] == customer_id_of(customer_client)
    assert payment["status"] == "processed"
    assert Decimal(payment["amount"]) == expected_total(shop, ITEMS)
    assert payment["transaction_id"].startswith("txn_")
    charges = get_gateway().charges
    assert list(charges) == [f"charge:{order_id}"]
    assert charges[f"charge:{order_id}"].transaction_id == payment["transaction_id"]


def test_customer_is_told_of_confirmation_and_completion_once_each(shop, stocked, customer_client):
    order_id = shop.place_order(customer_client, ITEMS)["order_id"]

    notifications = shop.notifications(customer_client)
    assert [(n["type"], n["order_id"]) for n in notifications] == [
        ("order_completed", order_id),  # newest first
        ("order_confirmed", order_id),
    ]
    assert "54.47" in notifications[1]["message"]
    assert all(n["channel"] == "email" for n in notifications)
    assert all(n["delivery_status"] == "delivered" for n in notifications)


def test_customer_gets_one_email_per_notice_naming_items_and_total(shop, stocked, customer_client):
    order_id = shop.place_order(customer_client, ITEMS)["order_id"]

    assert [(m.to, m.subject) for m in mail.outbox] == [
        ([customer_client.user.email], f"Your order {order_id} is confirmed"),
        ([customer_client.user.email], f"Your order {order_id} is complete"),
    ]
    confirmation = mail.outbox[0].body
    assert "1 x sku-gadget at 24.50" in confirmation
    assert "3 x sku-widget at 9.99" in confirmation
    assert "Total: 54.47" in confirmation


def test_completed_saga_log_shows_every_step_succeeded_and_nothing_compensated(
    shop, stocked, customer_client
):
    order_id = shop.place_order(customer_client, ITEMS)["order_id"]

    saga = shop.saga(customer_client, order_id)
    assert saga["order_id"] == order_id
    assert saga["state"] == "completed"
    assert step_statuses(saga) == dict.fromkeys(STEP_NAMES, "succeeded")
    assert all(step["finished_at"] and not step["error"] for step in saga["steps"])
    assert compensation_statuses(saga) == {}
    assert saga["waiting_for"] == ""
    assert saga["waiting_since"] is None


def test_completed_order_history_is_one_causal_chain_from_the_customer_request(
    shop, stocked, customer_client
):
    order_id = shop.place_order(customer_client, ITEMS)["order_id"]

    history = shop.events(customer_client, order_id)
    assert causal_chain(history, order_id) == chains.completed(lines=len(ITEMS))
    assert history[0]["metadata"]["actor"] == f"user:{customer_client.user.pk}"
    requested = next(e for e in history if e["event_type"] == "PaymentRequested")
    assert Decimal(requested["payload"]["amount"]) == expected_total(shop, ITEMS)


def test_another_customer_cannot_read_the_order_its_history_or_notifications(
    shop, stocked, customer_client, other_customer_client
):
    order_id = shop.place_order(customer_client, ITEMS)["order_id"]

    for path in ("", "events/", "saga/"):
        response = other_customer_client.get(f"/api/orders/{order_id}/{path}")
        assert response.status_code == 404, path
    assert other_customer_client.get("/api/orders/").json()["results"] == []
    notifications = f"/api/notifications/{customer_id_of(customer_client)}/"
    assert other_customer_client.get(notifications).status_code == 404
