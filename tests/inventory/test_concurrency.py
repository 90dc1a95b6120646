"""Concurrent reservations and stock corrections on threads with their own connections never
oversell a product nor take its stock below zero."""

import random
from collections import Counter

import pytest

from eventstore.models import Event
from eventstore.projections import get_projections
from eventstore.replay import verify
from inventory import events
from inventory.aggregates import AdjustmentPastZero, Product
from inventory.models import ProductStock
from inventory.services import products, stock_adjust, stock_reserve
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


def test_stock_corrections_racing_reservations_never_go_below_zero(make_product, settings):
    settings.EVENTSTORE_COMMAND_RETRIES = 8
    make_product("hot", stock=STOCK * 3, price="1.00")
    reserved = {}
    adjusted = {}

    def reserver(index):
        rng = random.Random(index)
        for number in range(RESERVATIONS_PER_THREAD):
            reservation_id = f"t{index}-r{number}"
            items = [{"product_id": "hot", "quantity": rng.randint(1, 4)}]
            reserved[reservation_id] = stock_reserve(reservation_id=reservation_id, items=items)

    def adjuster(index):
        rng = random.Random(100 + index)
        for number in range(RESERVATIONS_PER_THREAD):
            # Mostly write-offs, now and then units found again.
            quantity = rng.randint(1, 5) * (1 if number % 4 == 3 else -1)
            try:
                stock_adjust(product_id="hot", quantity=quantity, reason="recount")
            except AdjustmentPastZero:
                quantity = 0
            adjusted[(index, number)] = quantity

    def actor(index):
        (reserver if index % 2 else adjuster)(index)

    run_threads(actor, THREADS)

    product = products.load("hot", use_snapshot=False)
    held = sum(
        reservation.lines[0]["quantity"]
        for reservation in reserved.values()
        if reservation.status == "reserved"
    )
    assert (product.reserved, product.adjusted) == (held, sum(adjusted.values()))
    assert product.available + product.reserved + product.sold == (
        product.received + product.adjusted
    )
    # Never below zero at any version of the stream, not only at the end.
    replayed = Product("hot")
    for event in Event.objects.filter(aggregate_type=events.PRODUCT, aggregate_id="hot").order_by(
        "version"
    ):
        replayed.replay_payload(event.version, event.event_type, event.payload)
        assert min(replayed.available, replayed.reserved) >= 0, event.version
    row = ProductStock.objects.get(pk="hot")
    assert (row.available_stock, row.reserved_stock, row.adjusted_stock, row.version) == (
        product.available,
        product.reserved,
        product.adjusted,
        product.version,
    )
    differences, _ = verify(get_projections(["inventory.products", "inventory.reservations"]))
    assert differences == []
