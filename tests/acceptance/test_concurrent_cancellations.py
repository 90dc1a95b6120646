"""Scenario: the customer and staff cancel one completed order at the same moment. One request
is taken, the other answered 409; the payment is refunded once and the stock returned once.
Runs on SQLite and, in CI, on PostgreSQL."""

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from payments.gateway import get_gateway
from tests.threads import run_threads

pytestmark = pytest.mark.django_db(transaction=True)

RECEIVED = 10


def test_two_cancellations_racing_refund_the_order_once(shop, customer_client, staff_client):
    shop.add_product("sku-widget", price="9.99", stock=RECEIVED)
    order_id = shop.place_order(customer_client, {"sku-widget": 2})["order_id"]
    clients: list[APIClient] = [customer_client, staff_client]
    answers = {}

    def cancel(index):
        response = clients[index].post(f"/api/orders/{order_id}/cancel/", {}, format="json")
        answers[index] = response.status_code

    run_threads(cancel, 2)
    call_command("process_events", verbosity=0)

    assert sorted(answers.values()) == [200, 409]
    assert shop.order(customer_client, order_id)["status"] == "refunded"
    assert list(get_gateway().refunds) == [f"refund:{order_id}"]
    assert shop.stock("sku-widget") == (RECEIVED, 0, 0)
    history = shop.events(customer_client, order_id)
    requested = [e for e in history if e["event_type"] == "OrderCancellationRequested"]
    refunded = [e for e in history if e["event_type"] == "PaymentRefunded"]
    assert (len(requested), len(refunded)) == (1, 1)
    types = [n["type"] for n in shop.notifications(customer_client)]
    assert types.count("order_refunded") == 1
