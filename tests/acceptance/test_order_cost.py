"""What one order costs the engine, in statements: an order placed through the API and run to
completion (reserved, paid, confirmed, completed, both emails delivered) stays within a budget
of statements on each database, with no savepoint; Web Push costs a customer without a push
subscription at most one statement more per order. The budget is a count, not a time; `make
bench` (the order-cost workload) prints the same count by kind, with the CPU and time it takes.
"""

from collections import Counter

import pytest
from django.db import connection

from eventstore.follower.admission import admit
from notifications.services import forget_push_answers
from tests.bench.workloads.order_cost import kind_of, transaction_control

pytestmark = pytest.mark.django_db(transaction=True)

# Statements per order, as Django's execute wrapper sees them (psycopg's BEGIN and COMMIT are not
# statements there; SQLite's BEGIN IMMEDIATE is left out to match), the request's token and the
# order read back for the answer included (59 through the service layer, `make bench`).
# PostgreSQL appends (the stream index and the calls owed with it), locks checkpoints and reads
# their batches, moves several checkpoints and claims calls in one statement each, where SQLite
# takes two or three. Web Push (a VAPID key is set here) adds nothing for a customer without a
# push subscription who ordered a moment ago: whether they have one is remembered for a minute
# (at most one statement per order otherwise, see the last test). Webhooks cost none: an append
# owes them nothing, the worker's follower finds what endpoints want.
BUDGET = {"postgresql": 62, "sqlite": 86}

ITEMS = {"sku-widget": 2, "sku-gadget": 1}


@pytest.fixture
def stocked(shop):
    shop.add_product("sku-widget", price="9.99", stock=100)
    shop.add_product("sku-gadget", price="24.50", stock=100)


def place_counted(shop, client) -> tuple[dict, Counter]:
    """Place one order through the API; its answer and its statements by kind."""
    kinds: Counter = Counter()

    def count(execute, sql, params, many, context):
        if not transaction_control(sql):
            kinds[kind_of(sql)] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        placed = shop.place_order(client, ITEMS)
    return placed, kinds


def test_an_order_runs_to_completion_within_its_statement_budget(shop, stocked, customer_client):
    shop.place_order(customer_client, ITEMS)  # the first order of a process warms caches up
    admit()  # the backlog is checked once a second, not per order: not counted here

    placed, kinds = place_counted(shop, customer_client)

    assert placed["status"] == "completed"
    sent = [n for n in shop.notifications(customer_client) if n["order_id"] == placed["order_id"]]
    assert sorted(n["type"] for n in sent) == ["order_completed", "order_confirmed"]
    assert {n["delivery_status"] for n in sent} == {"delivered"}
    statements = sum(kinds.values())
    assert statements <= BUDGET[connection.vendor], (statements, dict(kinds))
    assert kinds["savepoint"] == 0, dict(kinds)


def test_push_costs_a_customer_without_subscription_at_most_one_statement_per_order(
    shop, stocked, customer_client, settings
):
    shop.place_order(customer_client, ITEMS)
    admit()

    def statements() -> int:
        forget_push_answers()  # as for a customer whose answer is not remembered
        placed, kinds = place_counted(shop, customer_client)
        assert placed["status"] == "completed"
        return sum(kinds.values())

    # The least of three: a statement that runs now and then (a periodic check) is not push's.
    with_push = min(statements() for _ in range(3))
    settings.VAPID_PRIVATE_KEY = ""
    without_push = min(statements() for _ in range(3))

    assert without_push <= with_push <= without_push + 1
