"""Inventory's reservation commands: reserve all or nothing, release and commit, each safe to
repeat."""

import pytest

from eventstore.models import Event
from inventory import events
from inventory.aggregates import (
    InventoryError,
    Reservation,
    ReservationNotFound,
    ReservationStateError,
)
from inventory.services import stock_add, stock_commit, stock_release, stock_reserve
from tests.inventory.streams import line, product_types, reservation_types

pytestmark = pytest.mark.django_db


# --- stock_reserve -------------------------------------------------------------------------------


def test_reserve_holds_units_at_the_current_price(make_product, store, stock_of):
    make_product("p1", stock=10, price="12.50")
    make_product("p2", stock=5, price="0.99")

    reservation = stock_reserve(reservation_id="r1", items=[line("p2", 2), line("p1", 3)])

    assert reservation.status == Reservation.RESERVED
    # Lines come in product id order, each with the product's price when reserved.
    assert reservation.lines == [
        {"product_id": "p1", "quantity": 3, "unit_price": "12.50"},
        {"product_id": "p2", "quantity": 2, "unit_price": "0.99"},
    ]
    assert reservation.total_amount == "39.48"
    assert stock_of("p1") == (7, 3, 0, 10)
    assert stock_of("p2") == (3, 2, 0, 5)
    assert reservation_types(store) == [events.INVENTORY_RESERVED]
    assert store.read_stream(events.PRODUCT, "p1")[-1].payload == {
        "product_id": "p1",
        "reservation_id": "r1",
        "quantity": 3,
    }


def test_reserve_sums_repeated_lines_of_one_product(make_product, stock_of):
    make_product("p1", stock=10)

    reservation = stock_reserve(reservation_id="r1", items=[line("p1", 2), line("p1", 3)])

    assert reservation.held_lines == [line("p1", 5)]
    assert stock_of("p1") == (5, 5, 0, 10)


def test_reserve_is_all_or_nothing_when_one_line_is_short(make_product, store, stock_of):
    make_product("p1", stock=10)
    make_product("p2", stock=1)
    make_product("p3", stock=0)
    versions = {p: store.stream_version(events.PRODUCT, p) for p in ("p1", "p2", "p3")}

    reservation = stock_reserve(
        reservation_id="r1", items=[line("p1", 5), line("p2", 3), line("p3", 1)]
    )

    assert reservation.status == Reservation.FAILED
    assert reservation.reason == "insufficient_stock"
    # Only the short lines are listed, with what was asked and what there was.
    assert reservation.details == [
        {"product_id": "p2", "requested": 3, "available": 1},
        {"product_id": "p3", "requested": 1, "available": 0},
    ]
    assert {p: store.stream_version(events.PRODUCT, p) for p in versions} == versions
    assert stock_of("p1") == (10, 0, 0, 10)
    recorded = store.read_stream(events.RESERVATION, "r1")
    assert [event.event_type for event in recorded] == [events.INVENTORY_RESERVATION_FAILED]
    assert recorded[0].payload == {
        "reservation_id": "r1",
        "reason": "insufficient_stock",
        "details": reservation.details,
    }


def test_reserve_of_an_unknown_product_fails_with_reason_unknown_product(make_product, stock_of):
    make_product("p1", stock=10)
    make_product("p2", stock=0)

    reservation = stock_reserve(
        reservation_id="r1", items=[line("p1", 1), line("p2", 1), line("ghost", 2)]
    )

    assert reservation.status == Reservation.FAILED
    assert reservation.reason == "unknown_product"
    assert reservation.details == [{"product_id": "ghost", "requested": 2, "available": 0}]
    assert stock_of("p1") == (10, 0, 0, 10)
    # Looking the product up created no stream for it.
    assert not Event.objects.filter(aggregate_type=events.PRODUCT, aggregate_id="ghost").exists()


def test_a_repeated_successful_reservation_returns_the_first_decision_and_writes_nothing(
    make_product, stock_of
):
    make_product("p1", stock=10)
    first = stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    count = Event.objects.count()

    again = stock_reserve(reservation_id="r1", items=[line("p1", 5)])

    assert Event.objects.count() == count
    assert again.status == Reservation.RESERVED
    assert again.lines == first.lines
    assert stock_of("p1") == (7, 3, 0, 10)


def test_a_repeated_failed_reservation_returns_the_first_decision_even_after_a_restock(
    make_product, stock_of
):
    make_product("p1", stock=1)
    stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    stock_add(product_id="p1", quantity=10)
    count = Event.objects.count()

    again = stock_reserve(reservation_id="r1", items=[line("p1", 3)])

    assert Event.objects.count() == count
    assert (again.status, again.reason) == (Reservation.FAILED, "insufficient_stock")
    assert again.details == [{"product_id": "p1", "requested": 3, "available": 1}]
    assert stock_of("p1") == (11, 0, 0, 11)


def test_reservation_and_product_events_are_appended_in_one_append(make_product, store):
    make_product("p1", stock=10)
    make_product("p2", stock=10)

    stock_reserve(reservation_id="r1", items=[line("p1", 1), line("p2", 2)])

    reserved = store.read_stream(events.RESERVATION, "r1")
    moved = [store.read_stream(events.PRODUCT, p)[-1] for p in ("p1", "p2")]
    written = sorted([*reserved, *moved], key=lambda event: event.position)
    assert [event.event_type for event in written] == [
        events.INVENTORY_RESERVED,
        events.STOCK_RESERVED,
        events.STOCK_RESERVED,
    ]
    first = written[0].position
    assert [event.position for event in written] == [first, first + 1, first + 2]
    assert len({event.recorded_at for event in written}) == 1


@pytest.mark.parametrize(
    "items",
    [[], [line("p1", 0)], [line("p1", -1)], [line("p1", "2")], [line("p1", True)]],
    ids=["no lines", "zero", "negative", "string", "bool"],
)
def test_reserve_with_bad_items_raises_and_writes_nothing(make_product, items):
    make_product("p1", stock=10)
    count = Event.objects.count()

    with pytest.raises(InventoryError):
        stock_reserve(reservation_id="r1", items=items)

    assert Event.objects.count() == count


# --- stock_release -------------------------------------------------------------------------------


def test_release_returns_the_units_to_available(make_product, store, stock_of):
    make_product("p1", stock=10)
    make_product("p2", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 3), line("p2", 4)])

    reservation = stock_release(reservation_id="r1")

    assert reservation.status == Reservation.RELEASED
    assert stock_of("p1") == (10, 0, 0, 10)
    assert stock_of("p2") == (10, 0, 0, 10)
    released = store.read_stream(events.RESERVATION, "r1")[-1]
    assert released.event_type == events.INVENTORY_RELEASED
    assert released.payload == {"reservation_id": "r1", "lines": [line("p1", 3), line("p2", 4)]}
    assert store.read_stream(events.PRODUCT, "p2")[-1].payload == {
        "product_id": "p2",
        "reservation_id": "r1",
        "quantity": 4,
    }


def test_a_second_release_writes_nothing(make_product, stock_of):
    make_product("p1", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    stock_release(reservation_id="r1")
    count = Event.objects.count()

    again = stock_release(reservation_id="r1")

    assert again.status == Reservation.RELEASED
    assert Event.objects.count() == count
    assert stock_of("p1") == (10, 0, 0, 10)


def test_releasing_a_failed_reservation_writes_nothing(make_product):
    make_product("p1", stock=1)
    stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    count = Event.objects.count()

    reservation = stock_release(reservation_id="r1")

    assert reservation.status == Reservation.FAILED
    assert Event.objects.count() == count


def test_releasing_an_unknown_reservation_raises_and_writes_nothing():
    with pytest.raises(ReservationNotFound, match="ghost"):
        stock_release(reservation_id="ghost")

    assert not Event.objects.exists()


def test_releasing_an_unknown_reservation_with_missing_ok_records_it_released(store):
    reservation = stock_release(reservation_id="r1", missing_ok=True)

    assert reservation.status == Reservation.RELEASED
    recorded = store.read_stream(events.RESERVATION, "r1")
    assert [event.event_type for event in recorded] == [events.INVENTORY_RELEASED]
    assert recorded[0].payload == {"reservation_id": "r1", "lines": []}
    assert Event.objects.count() == 1


def test_a_reservation_requested_after_its_release_reserves_nothing(make_product, stock_of):
    make_product("p1", stock=10)
    stock_release(reservation_id="r1", missing_ok=True)
    count = Event.objects.count()

    reservation = stock_reserve(reservation_id="r1", items=[line("p1", 3)])

    assert reservation.status == Reservation.RELEASED
    assert reservation.lines == []
    assert Event.objects.count() == count
    assert stock_of("p1") == (10, 0, 0, 10)


@pytest.mark.parametrize(
    "others_hold_units", [True, False], ids=["others hold units", "nothing else reserved"]
)
def test_releasing_a_committed_reservation_raises_state_error_and_writes_nothing(
    make_product, stock_of, others_hold_units
):
    make_product("p1", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    stock_commit(reservation_id="r1")
    if others_hold_units:
        stock_reserve(reservation_id="r2", items=[line("p1", 5)])
    before = stock_of("p1")
    count = Event.objects.count()

    with pytest.raises(ReservationStateError):
        stock_release(reservation_id="r1")

    assert Event.objects.count() == count
    assert stock_of("p1") == before


# --- stock_commit --------------------------------------------------------------------------------


def test_commit_moves_reserved_units_to_sold(make_product, store, stock_of):
    make_product("p1", stock=10)
    make_product("p2", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 3), line("p2", 1)])

    reservation = stock_commit(reservation_id="r1")

    assert reservation.status == Reservation.COMMITTED
    assert stock_of("p1") == (7, 0, 3, 10)
    assert stock_of("p2") == (9, 0, 1, 10)
    committed = store.read_stream(events.RESERVATION, "r1")[-1]
    assert committed.event_type == events.INVENTORY_COMMITTED
    assert committed.payload == {"reservation_id": "r1", "lines": [line("p1", 3), line("p2", 1)]}
    assert product_types(store, "p1")[-1] == events.STOCK_SOLD


def test_a_repeated_commit_writes_nothing(make_product, stock_of):
    make_product("p1", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    stock_commit(reservation_id="r1")
    count = Event.objects.count()

    again = stock_commit(reservation_id="r1")

    assert again.status == Reservation.COMMITTED
    assert Event.objects.count() == count
    assert stock_of("p1") == (7, 0, 3, 10)


def test_committing_a_failed_reservation_raises_and_writes_nothing(make_product):
    make_product("p1", stock=1)
    stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    count = Event.objects.count()

    with pytest.raises(ReservationStateError, match="failed"):
        stock_commit(reservation_id="r1")

    assert Event.objects.count() == count


def test_committing_a_released_reservation_raises_and_writes_nothing(make_product, stock_of):
    make_product("p1", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    stock_release(reservation_id="r1")
    count = Event.objects.count()

    with pytest.raises(ReservationStateError, match="released"):
        stock_commit(reservation_id="r1")

    assert Event.objects.count() == count
    assert stock_of("p1") == (10, 0, 0, 10)


def test_committing_an_unknown_reservation_raises_reservation_not_found():
    with pytest.raises(ReservationNotFound, match="ghost"):
        stock_commit(reservation_id="ghost")

    assert not Event.objects.exists()
