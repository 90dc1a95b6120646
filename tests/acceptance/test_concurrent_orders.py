"""Scenario: customers order the same scarce products at the same moment, each request on its
own thread and database connection, as concurrent HTTP requests would. No unit is sold twice,
no order is left half done, and every payment belongs to exactly one completed order."""

import random
from collections import Counter
from decimal import Decimal

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from eventstore.models import Event
from eventstore.projections import get_projections
from eventstore.replay import verify
from tests.acceptance.shop import FINAL_STATUSES
from tests.factories import UserFactory
from tests.threads import run_threads

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 6
ORDERS_PER_THREAD = 4
STOCK = {"hot-1": 8, "hot-2": 5}
PRICE = {"hot-1": Decimal("3.00"), "hot-2": Decimal("5.00")}


def test_concurrent_orders_never_oversell_and_each_ends_final(shop, settings):
    settings.EVENTSTORE_COMMAND_RETRIES = 8
    for product_id, stock in STOCK.items():
        shop.add_product(product_id, price=str(PRICE[product_id]), stock=stock)
    # Accounts and tokens exist before the threads start: only orders contend.
    keys = [Token.objects.get_or_create(user=UserFactory())[0].key for _ in range(THREADS)]
    answers = {}

    def customer(index):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {keys[index]}")
        rng = random.Random(index)
        for number in range(ORDERS_PER_THREAD):
            chosen = rng.sample(sorted(STOCK), rng.randint(1, 2))
            body = {
                "items": [{"product_id": p, "quantity": rng.randint(1, 3)} for p in chosen],
                # Every fourth order is declined, so compensations run amid the contention.
                "payment_token": "tok_decline" if number % 4 == 3 else "tok_visa_success",
            }
            response = client.post("/api/orders/", body, format="json")
            answers[(index, number)] = (response.status_code, response.json(), body)

    run_threads(customer, THREADS)

    assert len(answers) == THREADS * ORDERS_PER_THREAD
    assert {status for status, _, _ in answers.values()} == {201}
    # An answer shows the order as it stood when written: another request's thread may be
    # running its saga at that moment. Once every request has returned, all are final.
    placed = {order["order_id"]: body for _, order, body in answers.values()}
    assert len(placed) == THREADS * ORDERS_PER_THREAD
    orders = {
        order_id: (shop.staff.get(f"/api/orders/{order_id}/").json(), body)
        for order_id, body in placed.items()
    }
    statuses = Counter(order["status"] for order, _ in orders.values())
    assert set(statuses) <= set(FINAL_STATUSES), statuses
    assert statuses["completed"] > 0

    # What the completed orders bought is exactly what inventory sold, and nothing is held.
    sold = Counter()
    for order, body in orders.values():
        if order["status"] == "completed":
            for item in body["items"]:
                sold[item["product_id"]] += item["quantity"]
        else:
            assert order["cancel_reason"] in ("insufficient_stock", "card_declined"), order
    for product_id, stock in STOCK.items():
        product = shop.product(product_id)
        assert product["reserved_stock"] == 0
        assert product["sold_stock"] == sold[product_id] <= stock
        assert product["available_stock"] == stock - sold[product_id]

    # One charge per completed order, for its total; declined orders charged nothing.
    processed = Counter(
        Event.objects.filter(event_type="PaymentProcessed").values_list("aggregate_id", flat=True)
    )
    completed = {
        order_id for order_id, (order, _) in orders.items() if order["status"] == "completed"
    }
    assert processed == Counter(dict.fromkeys(completed, 1))
    for order_id in completed:
        order, body = orders[order_id]
        expected = sum(PRICE[i["product_id"]] * i["quantity"] for i in body["items"])
        assert Decimal(order["total_amount"]) == expected

    # Every saga finished, and the read models are exactly what the log says.
    for order_id in orders:
        saga = shop.staff.get(f"/api/orders/{order_id}/saga/").json()
        assert saga["state"] in ("completed", "compensated"), saga
    differences, _ = verify(get_projections())
    assert differences == []
