"""Inventory read models: they match the aggregates, and a rebuild from the log equals them."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from eventstore.models import Event
from eventstore.projections import get_projections
from eventstore.replay import rebuild, verify
from inventory import events
from inventory.models import ProductStock, ReservationSummary
from inventory.services import (
    product_discontinue,
    product_restore,
    product_update,
    products,
    reservations,
    stock_add,
    stock_adjust,
    stock_commit,
    stock_release,
    stock_reserve,
)

pytestmark = pytest.mark.django_db

PRODUCT_IDS = ("apple", "banana", "cherry")
RESERVATION_IDS = ("r-commit", "r-release", "r-held", "r-short", "r-unknown", "r-late")


@pytest.fixture
def inventory_projections():
    return get_projections(["inventory.products", "inventory.reservations"])


def line(product_id, quantity):
    return {"product_id": product_id, "quantity": quantity}


@pytest.fixture
def mixed_history(make_product):
    """Products and reservations in every state, all made through the services."""
    make_product("apple", stock=10, price="0.50")
    make_product("banana", stock=3, price="0.25")
    make_product("cherry", stock=0, price="7.00")
    stock_add(product_id="cherry", quantity=4, idempotency_key="delivery-1")
    stock_add(product_id="cherry", quantity=4, idempotency_key="delivery-1")
    stock_adjust(product_id="cherry", quantity=2, reason="found")
    stock_adjust(product_id="apple", quantity=-1, reason="damaged", note="crushed")
    stock_reserve(reservation_id="r-commit", items=[line("apple", 2), line("banana", 1)])
    stock_commit(reservation_id="r-commit")
    stock_reserve(reservation_id="r-release", items=[line("apple", 3)])
    stock_release(reservation_id="r-release")
    stock_reserve(reservation_id="r-held", items=[line("cherry", 4), line("apple", 1)])
    stock_reserve(reservation_id="r-short", items=[line("apple", 1), line("banana", 5)])
    stock_reserve(reservation_id="r-unknown", items=[line("durian", 1)])
    stock_release(reservation_id="r-late", missing_ok=True)
    product_update(product_id="apple", price=Decimal("0.60"), name="Green apple", reason="season")
    product_discontinue(product_id="banana")
    product_discontinue(product_id="cherry")
    product_restore(product_id="cherry")


def product_rows():
    return list(ProductStock.objects.order_by("product_id").values())


def reservation_rows():
    return list(ReservationSummary.objects.order_by("reservation_id").values())


def test_product_stock_rows_match_the_product_aggregates(mixed_history):
    assert set(ProductStock.objects.values_list("product_id", flat=True)) == set(PRODUCT_IDS)
    for product_id in PRODUCT_IDS:
        product = products.load(product_id)
        row = ProductStock.objects.get(pk=product_id)
        assert (row.name, row.price, row.version, row.status == "discontinued") == (
            product.name,
            Decimal(product.price),
            product.version,
            product.discontinued,
        )
        assert (
            row.available_stock,
            row.reserved_stock,
            row.sold_stock,
            row.received_stock,
            row.adjusted_stock,
        ) == (product.available, product.reserved, product.sold, product.received, product.adjusted)


def test_product_stock_rows_hold_the_expected_counters(mixed_history):
    counters = {
        row["product_id"]: (
            row["available_stock"],
            row["reserved_stock"],
            row["sold_stock"],
            row["received_stock"],
            row["adjusted_stock"],
        )
        for row in product_rows()
    }

    assert counters == {
        "apple": (6, 1, 2, 10, -1),
        "banana": (2, 0, 1, 3, 0),
        "cherry": (2, 4, 0, 4, 2),
    }


def test_product_stock_rows_follow_price_name_and_status_changes(mixed_history):
    rows = {row["product_id"]: row for row in product_rows()}

    assert (rows["apple"]["name"], rows["apple"]["price"]) == ("Green apple", Decimal("0.60"))
    assert {product_id: row["status"] for product_id, row in rows.items()} == {
        "apple": "active",
        "banana": "discontinued",
        "cherry": "active",
    }
    # Reservations made before the price change keep the price they were made at.
    assert ReservationSummary.objects.get(pk="r-held").lines[0]["unit_price"] == "0.50"


def test_reservation_summary_rows_match_the_reservation_aggregates(mixed_history):
    assert set(ReservationSummary.objects.values_list("reservation_id", flat=True)) == set(
        RESERVATION_IDS
    )
    for reservation_id in RESERVATION_IDS:
        reservation = reservations.load(reservation_id)
        row = ReservationSummary.objects.get(pk=reservation_id)
        assert row.status == reservation.status
        assert row.lines == reservation.lines
        assert row.reason == reservation.reason
        assert row.details == reservation.details
        if reservation.lines:
            assert row.total_amount == Decimal(reservation.total_amount)
        else:
            assert row.total_amount is None


def test_reservation_summary_keeps_lines_and_failure_details(mixed_history):
    held = ReservationSummary.objects.get(pk="r-held")
    short = ReservationSummary.objects.get(pk="r-short")
    late = ReservationSummary.objects.get(pk="r-late")

    assert held.status == ReservationSummary.Status.RESERVED
    assert held.lines == [
        {"product_id": "apple", "quantity": 1, "unit_price": "0.50"},
        {"product_id": "cherry", "quantity": 4, "unit_price": "7.00"},
    ]
    assert held.total_amount == Decimal("28.50")
    assert (short.status, short.reason) == (ReservationSummary.Status.FAILED, "insufficient_stock")
    assert short.details == [{"product_id": "banana", "requested": 5, "available": 2}]
    assert (late.status, late.lines, late.total_amount) == ("released", [], None)
    assert late.created_at == late.updated_at


def test_a_reservation_summary_keeps_its_creation_time_across_later_events(mixed_history):
    reserved, committed = Event.objects.filter(
        aggregate_type=events.RESERVATION, aggregate_id="r-commit"
    ).order_by("version")
    row = ReservationSummary.objects.get(pk="r-commit")

    assert (row.created_at, row.updated_at) == (reserved.recorded_at, committed.recorded_at)


def test_verify_finds_no_difference_between_a_rebuild_and_the_live_read_model(
    mixed_history, inventory_projections
):
    differences, result = verify(inventory_projections)

    assert differences == []
    assert (
        result.events == Event.objects.filter(aggregate_type__in=["product", "reservation"]).count()
    )


def test_rebuild_from_the_log_equals_the_live_read_model(mixed_history, inventory_projections):
    live_products, live_reservations = product_rows(), reservation_rows()

    rebuild(inventory_projections, batch_size=4)

    assert product_rows() == live_products
    assert reservation_rows() == live_reservations


def test_rebuild_drops_rows_no_event_derives(mixed_history, inventory_projections):
    now = timezone.now()
    ProductStock.objects.create(
        product_id="ghost", name="Ghost", price="1.00", version=1, created_at=now, updated_at=now
    )
    ReservationSummary.objects.create(
        reservation_id="ghost", status="reserved", created_at=now, updated_at=now
    )

    rebuild(inventory_projections)

    assert not ProductStock.objects.filter(pk="ghost").exists()
    assert not ReservationSummary.objects.filter(pk="ghost").exists()


def test_verify_reports_a_drifted_stock_counter(mixed_history, inventory_projections):
    ProductStock.objects.filter(pk="apple").update(
        available_stock=F("available_stock") - 1, sold_stock=F("sold_stock") + 1
    )

    differences, _ = verify(inventory_projections)

    [difference] = differences
    assert difference.key == {"product_id": "apple"}
    assert difference.fields == ["available_stock", "sold_stock"]


def test_the_units_balance_constraint_rejects_an_unbalanced_update(make_product):
    make_product("p1", stock=5)

    with pytest.raises(IntegrityError), transaction.atomic():
        ProductStock.objects.filter(pk="p1").update(available_stock=F("available_stock") + 1)

    row = ProductStock.objects.get(pk="p1")
    assert (row.available_stock, row.received_stock) == (5, 5)


def test_the_units_balance_constraint_counts_adjustments(make_product):
    make_product("p1", stock=5)

    ProductStock.objects.filter(pk="p1").update(
        available_stock=F("available_stock") - 2, adjusted_stock=-2
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        ProductStock.objects.filter(pk="p1").update(adjusted_stock=-1)

    row = ProductStock.objects.get(pk="p1")
    assert (row.available_stock, row.received_stock, row.adjusted_stock) == (3, 5, -2)


def test_the_units_balance_constraint_rejects_an_unbalanced_row(db):
    now = timezone.now()

    with pytest.raises(IntegrityError), transaction.atomic():
        ProductStock.objects.create(
            product_id="p1",
            name="Unbalanced",
            price="1.00",
            available_stock=3,
            reserved_stock=1,
            sold_stock=1,
            received_stock=4,
            version=1,
            created_at=now,
            updated_at=now,
        )

    assert not ProductStock.objects.exists()
