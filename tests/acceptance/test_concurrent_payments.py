"""Scenario: a slow payment provider holds nothing. While two charges wait on the provider at the
same moment, another order's stock reservation commits; released, both orders complete. Runs on
SQLite and, in CI, on PostgreSQL: no row, table or transaction lock may wait on a provider."""

import threading
from decimal import Decimal

import pytest
from django.db import connections
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from payments import services
from payments.gateway import SimulatedGateway
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20.0  # seconds any one step may take before the test gives up on it


class BlockingGateway(SimulatedGateway):
    """Holds every charge until the test releases it, counting the charges in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.changed = threading.Condition()

    def charge(self, **kwargs):
        with self.changed:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.changed.notify_all()
        try:
            self.release.wait(WAIT)
            return super().charge(**kwargs)
        finally:
            with self.changed:
                self.in_flight -= 1
                self.changed.notify_all()

    def wait_for_in_flight(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.in_flight >= count, timeout=WAIT)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def in_thread(target, results, key):
    """Start `target` on a thread of its own (own connection); its result lands in `results`."""

    def body():
        try:
            results[key] = target()
        except Exception as error:  # pragma: no cover - asserted on below
            results[key] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_two_charges_wait_on_the_provider_at_once_while_a_reservation_commits(
    shop, staff_client, monkeypatch
):
    gateway = BlockingGateway()
    monkeypatch.setattr(services, "get_gateway", lambda: gateway)
    shop.add_product("slow-1", price="4.00", stock=10)
    shop.add_product("slow-2", price="6.00", stock=10)
    customers = [client_for(UserFactory()) for _ in range(2)]
    results = {}

    def place(client):
        body = {"items": [{"product_id": "slow-1", "quantity": 1}]}
        return client.post("/api/orders/", body, format="json")

    threads = []
    try:
        threads = [in_thread(lambda c=c: place(c), results, n) for n, c in enumerate(customers)]
        both_waiting = gateway.wait_for_in_flight(2)

        reserve = in_thread(
            lambda: staff_client.post(
                "/api/inventory/reserve/",
                {"reservation_id": "meanwhile", "items": [{"product_id": "slow-2", "quantity": 3}]},
                format="json",
            ),
            results,
            "reserve",
        )
        reserve.join(WAIT)
        reserved_while_waiting = not reserve.is_alive() and gateway.in_flight == 2
    finally:
        gateway.release.set()
        for thread in threads:
            thread.join(WAIT)

    assert both_waiting, f"only {gateway.most_in_flight} charge(s) reached the provider at once"
    assert reserved_while_waiting, "the reservation waited for the provider"
    assert results["reserve"].status_code == 200
    assert gateway.most_in_flight == 2
    for n in range(2):
        assert results[n].status_code == 201, results[n]
        order = shop.staff.get(f"/api/orders/{results[n].json()['order_id']}/").json()
        assert (order["status"], Decimal(order["total_amount"])) == ("completed", Decimal("4.00"))
    assert len(gateway.charges) == 2
    assert shop.stock("slow-2") == (7, 3, 0)
