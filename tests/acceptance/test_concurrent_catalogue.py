"""Scenario: staff change the catalogue while customers order from it, each request on its own
thread and database connection, as concurrent HTTP requests would. An order pays one price,
the one its stock was reserved at; an order for a product discontinued under it is reserved
whole or refused whole; the read models stay what the log says."""

import random
from collections import Counter
from decimal import Decimal

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from eventstore.models import Event
from eventstore.projections import get_projections
from eventstore.replay import verify
from inventory import events
from tests.acceptance.shop import FINAL_STATUSES
from tests.factories import StaffUserFactory, UserFactory
from tests.threads import run_threads

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMERS = 4
ORDERS_PER_CUSTOMER = 3
PRICES = ["10.00", "11.00", "12.50", "13.00", "9.00", "14.25"]


def client_with_token(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def place_orders(keys, index, lines, answers):
    """Customer `index` places ORDERS_PER_CUSTOMER orders of `lines(rng)`; answers by order."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {keys[index]}")
    rng = random.Random(index)
    for number in range(ORDERS_PER_CUSTOMER):
        body = {"items": lines(rng)}
        response = client.post("/api/orders/", body, format="json")
        answers[(index, number)] = (response.status_code, response.json(), body)


def one_hot_line(rng):
    return [{"product_id": "hot", "quantity": rng.randint(1, 3)}]


def kept_and_ending_lines(rng):
    return [
        {"product_id": "kept", "quantity": rng.randint(1, 3)},
        {"product_id": "ending", "quantity": rng.randint(1, 3)},
    ]


def final_orders(shop, answers):
    """Each placed order as it stands once every request has returned, with its body."""
    assert {status for status, _, _ in answers.values()} == {201}, answers
    orders = {
        order["order_id"]: (shop.staff.get(f"/api/orders/{order['order_id']}/").json(), body)
        for _, order, body in answers.values()
    }
    assert len(orders) == CUSTOMERS * ORDERS_PER_CUSTOMER
    assert {order["status"] for order, _ in orders.values()} <= set(FINAL_STATUSES)
    return orders


def product_stream(product_id):
    return list(
        Event.objects.filter(aggregate_type=events.PRODUCT, aggregate_id=product_id).order_by(
            "version"
        )
    )


def test_a_price_changed_while_orders_are_placed_gives_each_order_one_price(shop, settings):
    settings.EVENTSTORE_COMMAND_RETRIES = 8
    shop.add_product("hot", price=PRICES[0], stock=1000)
    staff = StaffUserFactory()
    keys = [Token.objects.get_or_create(user=UserFactory())[0].key for _ in range(CUSTOMERS)]
    answers = {}
    repriced = []

    def actor(index):
        if index < CUSTOMERS:
            place_orders(keys, index, one_hot_line, answers)
            return
        client = client_with_token(staff)
        for price in PRICES[1:]:
            response = client.patch("/api/inventory/hot/", {"price": price}, format="json")
            repriced.append(response.status_code)

    run_threads(actor, CUSTOMERS + 1)

    assert repriced == [200] * (len(PRICES) - 1)
    orders = final_orders(shop, answers)
    assert {order["status"] for order, _ in orders.values()} == {"completed"}
    # The price in force when each reservation took its stock, read from the product's stream.
    price_at_reservation = {}
    price = None
    for event in product_stream("hot"):
        if event.event_type in (events.PRODUCT_CREATED, events.PRODUCT_PRICE_CHANGED):
            price = event.payload["price"]
        elif event.event_type == events.STOCK_RESERVED:
            price_at_reservation[event.payload["reservation_id"]] = price
    assert shop.product("hot")["price"] == PRICES[-1]
    charged = dict(
        Event.objects.filter(event_type="PaymentProcessed").values_list(
            "aggregate_id", "payload__amount"
        )
    )
    for order_id, (order, _) in orders.items():
        [item] = order["items"]
        # The order, its reservation and its charge all name the one price.
        assert item["unit_price"] == price_at_reservation[order_id], order
        total = Decimal(item["unit_price"]) * item["quantity"]
        assert Decimal(order["total_amount"]) == total
        assert Decimal(charged[order_id]) == total
    differences, _ = verify(get_projections())
    assert differences == []


def test_a_product_discontinued_while_orders_are_in_flight_is_reserved_whole_or_refused(
    shop, settings
):
    settings.EVENTSTORE_COMMAND_RETRIES = 8
    shop.add_product("kept", price="2.00", stock=100)
    shop.add_product("ending", price="3.00", stock=100)
    staff = StaffUserFactory()
    keys = [Token.objects.get_or_create(user=UserFactory())[0].key for _ in range(CUSTOMERS)]
    answers = {}
    discontinued = []

    def actor(index):
        if index < CUSTOMERS:
            place_orders(keys, index, kept_and_ending_lines, answers)
            return
        discontinued.append(client_with_token(staff).delete("/api/inventory/ending/").status_code)

    run_threads(actor, CUSTOMERS + 1)

    assert discontinued == [200]
    orders = final_orders(shop, answers)
    reserved_on = {
        product_id: {
            event.payload["reservation_id"]: event.version
            for event in product_stream(product_id)
            if event.event_type == events.STOCK_RESERVED
        }
        for product_id in ("kept", "ending")
    }
    [ended_at] = [
        event.version
        for event in product_stream("ending")
        if event.event_type == events.PRODUCT_DISCONTINUED
    ]
    sold = Counter()
    for order_id, (order, body) in orders.items():
        held = {product_id for product_id in reserved_on if order_id in reserved_on[product_id]}
        if order["status"] == "completed":
            # Reserved before the product was discontinued, both lines, and then sold.
            assert held == {"kept", "ending"}, order
            assert reserved_on["ending"][order_id] < ended_at
            for item in body["items"]:
                sold[item["product_id"]] += item["quantity"]
        else:
            # Refused whole, as a shortage naming the discontinued product.
            assert held == set(), order
            assert order["cancel_reason"] == "insufficient_stock", order
            [failed] = Event.objects.filter(
                aggregate_id=order_id, event_type=events.INVENTORY_RESERVATION_FAILED
            )
            assert [line["product_id"] for line in failed.payload["details"]] == ["ending"]
            assert failed.payload["details"][0]["available"] == 0
    for product_id in ("kept", "ending"):
        product = shop.product(product_id)
        assert (product["reserved_stock"], product["sold_stock"]) == (0, sold[product_id])
        assert product["available_stock"] == 100 - sold[product_id]
    assert shop.product("ending")["status"] == "discontinued"
    # An order placed now is refused.
    late = APIClient()
    late.credentials(HTTP_AUTHORIZATION=f"Token {keys[0]}")
    body = {"items": [{"product_id": "ending", "quantity": 1}]}
    refused = late.post("/api/orders/", body, format="json").json()
    assert (refused["status"], refused["cancel_reason"]) == ("cancelled", "insufficient_stock")
    differences, _ = verify(get_projections())
    assert differences == []
