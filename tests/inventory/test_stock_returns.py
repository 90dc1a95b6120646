"""Returning a committed reservation's sold units to available stock (`stock_return`), as the
cancellation of a completed order asks: once, keeping available + reserved + sold == received."""

import pytest

from eventstore.models import Event
from inventory import events
from inventory.aggregates import Reservation, ReservationNotFound, ReservationStateError
from inventory.models import ProductStock, ReservationSummary
from inventory.services import stock_commit, stock_release, stock_reserve, stock_return
from tests.inventory.streams import line, product_types

pytestmark = pytest.mark.django_db


def test_return_moves_sold_units_back_to_available(make_product, store, stock_of):
    make_product("p1", stock=10)
    make_product("p2", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 3), line("p2", 1)])
    stock_commit(reservation_id="r1")
    stock_reserve(reservation_id="r2", items=[line("p1", 2)])  # another order's, held

    reservation = stock_return(reservation_id="r1")

    assert reservation.status == Reservation.RETURNED
    assert stock_of("p1") == (8, 2, 0, 10)
    assert stock_of("p2") == (10, 0, 0, 10)
    returned = store.read_stream(events.RESERVATION, "r1")[-1]
    assert returned.event_type == events.INVENTORY_RETURNED
    assert returned.payload == {"reservation_id": "r1", "lines": [line("p1", 3), line("p2", 1)]}
    assert product_types(store, "p1")[-1] == events.STOCK_RETURNED
    row = ProductStock.objects.get(pk="p1")
    assert (row.available_stock, row.reserved_stock, row.sold_stock) == (8, 2, 0)
    assert ReservationSummary.objects.get(pk="r1").status == "returned"


def test_a_repeated_return_writes_nothing(make_product, stock_of):
    make_product("p1", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    stock_commit(reservation_id="r1")
    stock_return(reservation_id="r1")
    count = Event.objects.count()

    again = stock_return(reservation_id="r1")

    assert again.status == Reservation.RETURNED
    assert Event.objects.count() == count
    assert stock_of("p1") == (10, 0, 0, 10)


@pytest.mark.parametrize("settle", ["held", "released"])
def test_only_a_committed_reservation_is_returned(make_product, stock_of, settle):
    make_product("p1", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    if settle == "released":
        stock_release(reservation_id="r1")
    before, count = stock_of("p1"), Event.objects.count()

    with pytest.raises(ReservationStateError):
        stock_return(reservation_id="r1")

    assert (stock_of("p1"), Event.objects.count()) == (before, count)


def test_returning_an_unknown_reservation_raises_reservation_not_found():
    with pytest.raises(ReservationNotFound):
        stock_return(reservation_id="nope")
