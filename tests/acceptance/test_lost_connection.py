"""Scenario: the server ends the API's database connection (pg_terminate_backend, as a restart
or a fail-over does) in the middle of a request. The request answers 503 with Retry-After, not
500, and the next one runs on a new connection; an order whose connection is lost after its
commit, while its saga is followed up (inline dispatch), still answers 201 and the worker loop
finishes it. Processes and many connections cut at once: celery_mode/test_lost_connections.py."""

import psycopg
import pytest
from django.core.management import call_command
from django.db import close_old_connections, connection

from eventstore.follower.subscriptions import Subscriber
from tests.processes import postgres_server

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ORDERS = "/api/orders/"


def terminate(pid: int) -> None:
    """End the backend `pid` of the test database, from a connection of its own."""
    with psycopg.connect(f"{postgres_server()}/{connection.settings_dict['NAME']}") as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


class EndsItsConnection(Subscriber):
    """Once, after catching up on an event of `event_type`, ends its own connection with no
    transaction open: after the order's commit, while its follow-up runs."""

    name = "tests.ends_its_connection"

    def __init__(self, event_type: str) -> None:
        self.event_types = frozenset({event_type})
        self.ended = False

    def handle(self, event) -> None:
        pass

    def after_catch_up(self, handled: int) -> int:
        if handled and not self.ended:
            self.ended = True
            terminate(connection.connection.info.backend_pid)
        return 0


def test_a_request_whose_connection_is_ended_answers_503_and_the_next_gets_a_new_one(
    customer_client,
):
    assert customer_client.get(ORDERS).status_code == 200
    terminate(connection.connection.info.backend_pid)

    lost = customer_client.get(ORDERS)

    assert lost.status_code == 503, lost.content
    assert lost["Retry-After"] == "1"
    assert "connection was lost" in lost.json()["detail"]
    # What Django does when a request ends (the test client leaves it out): the broken
    # connection is closed, and the next request opens a new one.
    close_old_connections()
    assert customer_client.get(ORDERS).status_code == 200


# Where the follow-up meets the lost connection: in the saga's first step (later statements
# of the follow-up run on a new connection), or at its very end (the answer's own read would).
@pytest.mark.parametrize("event_type", ["OrderCreated", "OrderCompleted"])
def test_an_order_whose_connection_is_lost_after_its_commit_answers_201_and_is_finished_later(
    shop, customer_client, subscribe, event_type
):
    shop.add_product("sku-widget", price="9.99", stock=10)
    ender = subscribe(EndsItsConnection(event_type))

    placed = customer_client.post(
        ORDERS,
        {"items": [{"product_id": "sku-widget", "quantity": 2}]},
        format="json",
        headers={"Idempotency-Key": "lost-after-commit"},
    )

    assert ender.ended
    assert placed.status_code == 201, placed.content
    call_command("process_events")  # the worker loop's pass picks up what was cut short
    order = shop.order(customer_client, placed.json()["order_id"])
    assert order["status"] == "completed"
    assert shop.stock("sku-widget") == (8, 0, 2)
    assert [payment["status"] for payment in shop.payments()] == ["processed"]
