"""Concurrent reservations on threads with their own connections never oversell a product."""

import random
from collections import Counter

import pytest

from eventstore.models import Event
from eventstore.projections import get_projections
from eventstore.replay import verify
from inventory import events
from inventory.models import ProductStock
from inventory.services import products, stock_reserve
from tests.threads import run_threads

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 6
RESERVATIONS_PER_THREAD = 5
STOCK = 10
PRODUCT_IDS = ("hot-1", "hot-2")


def test_concurrent_reservations_never_oversell(make_product, settings):
    # Every thread contends for the same two streams; on PostgreSQL a command may lose the
    # version race several times in a row before it wins or finds the stock gone.
    settings.EVENTSTORE_COMMAND_RETRIES = 5
    for product_id in PRODUCT_IDS:
        make_product(product_id, stock=STOCK, price="1.00")
    outcomes = {}

    def customer(index):
        rng = random.Random(index)
        for number in range(RESERVATIONS_PER_THREAD):
            chosen = rng.sample(PRODUCT_IDS, rng.randint(1, 2))
            items = [{"product_id": p, "quantity": rng.randint(1, 3)} for p in chosen]
            reservation_id = f"t{index}-r{number}"
            outcomes[reservation_id] = stock_reserve(reservation_id=reservation_id, items=items)

    run_threads(customer, THREADS)

    assert len(outcomes) == THREADS * RESERVATIONS_PER_THREAD
    statuses = Counter(reservation.status for reservation in outcomes.values())
    assert set(statuses) == {"reserved", "failed"}, statuses
    held = Counter()
    for reservation in outcomes.values():
        if reservation.status == "reserved":
            for line in reservation.lines:
                held[line["product_id"]] += line["quantity"]
        else:
            assert reservation.reason == "insufficient_stock"
            assert all(d["requested"] > d["available"] for d in reservation.details)

    for product_id in PRODUCT_IDS:
        product = products.load(product_id, use_snapshot=False)
        counters = (product.available, product.reserved, product.sold, product.received)
        assert product.available + product.reserved + product.sold == product.received == STOCK
        assert min(counters) >= 0, counters
        assert product.reserved == held[product_id]
        row = ProductStock.objects.get(pk=product_id)
        assert (
            row.available_stock,
            row.reserved_stock,
            row.sold_stock,
            row.received_stock,
            row.version,
        ) == (*counters, product.version)

    # Each reservation was decided exactly once, and every stock move belongs to a success.
    decided = Counter(
        Event.objects.filter(aggregate_type=events.RESERVATION).values_list(
            "aggregate_id", flat=True
        )
    )
    assert decided == Counter(dict.fromkeys(outcomes, 1))
    moved = Counter(
        Event.objects.filter(event_type=events.STOCK_RESERVED).values_list(
            "payload__reservation_id", flat=True
        )
    )
    assert moved == Counter(
        {
            reservation.id: len(reservation.lines)
            for reservation in outcomes.values()
            if reservation.status == "reserved"
        }
    )
    differences, _ = verify(get_projections(["inventory.products", "inventory.reservations"]))
    assert differences == []
