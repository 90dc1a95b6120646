"""Scenario: every read model is rebuilt, and then checked, while customers keep placing orders
over the API on threads of their own. Orders go through all along; the API answers from the live
read models until their projection's switch and from the rebuilt ones after it, never from empty
or half-built ones; the result equals a rebuild from scratch at rest, and nothing outside is
done again."""

import threading
import time
from decimal import Decimal

import pytest
from django.core import mail
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from eventstore.models import Effect
from eventstore.projections import get_projections
from eventstore.recorders import recorder
from eventstore.replay import rebuild_online, verify, verify_online
from orders.models import OrderSummary
from tests.factories import UserFactory
from tests.threads import run_threads

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMERS = 3
PRODUCTS = {"sku-a": "2.50", "sku-b": "7.00"}


class Traffic:
    """Customers placing orders and a reader listing them, on threads, until `stop()`."""

    def __init__(self, shop, staff_token: str):
        self.stop_event = threading.Event()
        self.answers: list[tuple[float, int]] = []  # (when, status) of every order placed
        self.listed: list[int] = []  # how many orders each staff list showed, in order
        self.missing: list[tuple[str, int]] = []  # an order known before it was not found
        self.keys = [
            Token.objects.get_or_create(user=UserFactory())[0].key for _ in range(CUSTOMERS)
        ]
        self.staff_token = staff_token
        self.known = [summary.order_id for summary in OrderSummary.objects.all()]
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.run_all)

    def run_all(self) -> None:
        try:
            run_threads(self.run, CUSTOMERS + 1)
        except BaseException as error:  # reported by __exit__
            self.errors.append(error)

    def run(self, index: int) -> None:
        if index == CUSTOMERS:
            return self.read()
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {self.keys[index]}")
        number = 0
        while not self.stop_event.is_set():
            number += 1
            body = {
                "items": [{"product_id": "sku-a" if number % 2 else "sku-b", "quantity": 1}],
                "payment_token": "tok_decline" if number % 5 == 0 else "tok_visa_success",
            }
            response = client.post("/api/orders/", body, format="json")
            self.answers.append((time.monotonic(), response.status_code))
        return None

    def read(self) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {self.staff_token}")
        while not self.stop_event.is_set():
            page = client.get("/api/orders/")
            self.listed.append(page.json()["count"] if page.status_code == 200 else -1)
            for order_id in self.known[:3]:
                found = client.get(f"/api/orders/{order_id}/")
                if found.status_code != 200:
                    self.missing.append((order_id, found.status_code))

    def __enter__(self) -> "Traffic":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive()
        assert not self.errors, self.errors


@pytest.fixture
def stocked_shop(shop, customer_client, settings):
    settings.EVENTSTORE_COMMAND_RETRIES = 8
    for product_id, price in PRODUCTS.items():
        shop.add_product(product_id, price=price, stock=100_000)
    for number in range(6):
        shop.place_order(customer_client, {"sku-a": 1 + number % 2})
    return shop


def everything() -> dict:
    """Every read model's rows, as a check compares them."""
    from eventstore.replay import _capture

    return {
        (projection.name, model._meta.label): _capture(projection, model)
        for projection in get_projections()
        for model in projection.models
    }


def test_a_rebuild_while_orders_go_on_ends_equal_to_a_rebuild_at_rest(
    stocked_shop, staff_client, staff_user
):
    staff_token = Token.objects.get(user=staff_user).key
    with Traffic(stocked_shop, staff_token) as traffic:
        while len(traffic.answers) < 3:  # the customers are under way
            time.sleep(0.01)
        started = time.monotonic()
        result = rebuild_online(get_projections(), batch_size=7)
        ended = time.monotonic()
        while not any(when > ended for when, _ in traffic.answers):
            time.sleep(0.01)

    during = [status for when, status in traffic.answers if started <= when <= ended]
    assert during, "no order was answered while the rebuild ran"
    assert {status for _, status in traffic.answers} == {201}
    assert result.events > 0 and result.switch_attempts >= 1
    # The staff list never lost an order and never showed a half-built read model.
    assert traffic.listed and traffic.listed[0] >= 6
    assert all(b >= a for a, b in zip(traffic.listed, traffic.listed[1:], strict=False))
    assert traffic.missing == []

    # At rest: the read models equal what a rebuild from scratch gives.
    rebuilt_online = everything()
    differences, _ = verify(get_projections())
    assert differences == []
    assert everything() == rebuilt_online
    # The orders placed meanwhile are all in the rebuilt read model.
    assert OrderSummary.objects.count() == 6 + len(traffic.answers)
    # Only projections are replayed: a rebuild at rest sends no email and owes no call again.
    outbox, effects = len(mail.outbox), Effect.objects.count()
    assert outbox > 0 and effects > 0
    rebuild_online(get_projections())
    assert (len(mail.outbox), Effect.objects.count()) == (outbox, effects)


def test_verify_names_a_tampered_row_while_orders_go_on(stocked_shop, staff_user):
    tampered = OrderSummary.objects.order_by("created_at").first()
    OrderSummary.objects.filter(pk=tampered.pk).update(total_amount=Decimal("999.99"))
    staff_token = Token.objects.get(user=staff_user).key
    with Traffic(stocked_shop, staff_token) as traffic:
        while len(traffic.answers) < 3:
            time.sleep(0.01)
        differences, result = verify_online(get_projections(), batch_size=5)
        answered = len(traffic.answers)
        while len(traffic.answers) == answered:  # appends were never held
            time.sleep(0.01)

    assert [(d.model, d.key, d.fields) for d in differences] == [
        ("orders.OrderSummary", {"order_id": tampered.order_id}, ["total_amount"])
    ]
    assert "total_amount: live Decimal('999.99') != rebuilt" in differences[0].describe()
    assert result.events > 0
    assert {status for _, status in traffic.answers} == {201}
    # The check changed nothing: the drifted row is still there.
    assert OrderSummary.objects.get(pk=tampered.pk).total_amount == Decimal("999.99")


def test_orders_placed_between_the_switches_reach_rebuilt_and_unswitched_read_models(
    stocked_shop, customer_client, monkeypatch
):
    switched: list[str] = []
    switch_shadow = type(recorder()).switch_shadow

    def switch(self, table: str, index_names: dict[str, str]) -> None:
        switch_shadow(self, table, index_names)
        switched.append(table)

    monkeypatch.setattr(type(recorder()), "switch_shadow", switch)
    placed: list[tuple[int, str]] = []  # (switches done, order id)

    def place_after_each_switch(behind: int) -> None:
        """Called while the copies follow the log: one order after each new switch."""
        if switched and (not placed or placed[-1][0] < len(switched)):
            order = stocked_shop.place_order(customer_client, {"sku-b": 1})
            placed.append((len(switched), order["order_id"]))

    result = rebuild_online(get_projections(), batch_size=4, lag=place_after_each_switch)
    last = stocked_shop.place_order(customer_client, {"sku-a": 2})

    # An order went in after every switch but the last: into the read models switched in
    # already (kept by the inline projections) and into the copies still building (followed).
    assert result.switches == len(get_projections()) == len(switched)
    assert [done for done, _ in placed] == list(range(1, len(switched)))
    totals = dict(OrderSummary.objects.values_list("order_id", "total_amount"))
    assert [totals.get(order_id) for _, order_id in placed] == [Decimal("7.00")] * len(placed)
    assert totals.get(last["order_id"]) == Decimal("5.00")
    assert customer_client.get(f"/api/orders/{placed[0][1]}/").status_code == 200
    differences, _ = verify(get_projections())
    assert differences == []
