"""Inventory's product commands: what creating, changing, discontinuing and restoring a product,
adding stock and correcting it append, and idempotent restocks and corrections."""

from decimal import Decimal

import pytest

from eventstore.models import Event
from inventory import events
from inventory.aggregates import (
    AdjustmentPastZero,
    InventoryError,
    ProductAlreadyExists,
    ProductNotFound,
    Reservation,
)
from inventory.services import (
    IdempotencyKeyReused,
    product_create,
    product_discontinue,
    product_restore,
    product_update,
    products,
    stock_add,
    stock_adjust,
    stock_commit,
    stock_release,
    stock_reserve,
)
from tests.inventory.streams import line, product_types

pytestmark = pytest.mark.django_db


# --- product_create ------------------------------------------------------------------------------


def test_product_create_with_initial_stock_emits_product_created_and_stock_added(store, stock_of):
    product = product_create(
        product_id="p1", name="Blue widget", price=Decimal("12.5"), initial_stock=7
    )

    recorded = store.read_stream(events.PRODUCT, "p1")
    assert [event.event_type for event in recorded] == [events.PRODUCT_CREATED, events.STOCK_ADDED]
    assert recorded[0].payload == {"product_id": "p1", "name": "Blue widget", "price": "12.50"}
    assert recorded[1].payload == {"product_id": "p1", "quantity": 7, "idempotency_key": ""}
    assert product.version == 2
    assert stock_of("p1") == (7, 0, 0, 7)


def test_product_create_without_initial_stock_emits_only_product_created(store):
    product_create(product_id="p1", name="Widget", price=Decimal("1.00"))

    assert product_types(store) == [events.PRODUCT_CREATED]


def test_creating_an_existing_product_raises_and_writes_nothing(make_product):
    make_product("p1")
    count = Event.objects.count()

    with pytest.raises(ProductAlreadyExists, match="p1"):
        make_product("p1", stock=99, price="1.00")

    assert Event.objects.count() == count


@pytest.mark.parametrize(
    ("price", "initial_stock"), [("0.00", 5), ("-1.00", 5), ("1.00", -5)], ids=str
)
def test_product_create_with_a_bad_price_or_stock_writes_nothing(price, initial_stock):
    with pytest.raises(InventoryError):
        product_create(
            product_id="p1", name="Bad", price=Decimal(price), initial_stock=initial_stock
        )

    assert not Event.objects.exists()


# --- stock_add -----------------------------------------------------------------------------------


def test_stock_add_adds_received_units(make_product, store, stock_of):
    make_product("p1", stock=3)

    product = stock_add(product_id="p1", quantity=4)

    assert product.available == 7
    assert stock_of("p1") == (7, 0, 0, 7)
    assert store.read_stream(events.PRODUCT, "p1")[-1].payload == {
        "product_id": "p1",
        "quantity": 4,
        "idempotency_key": "",
    }


def test_stock_add_without_a_key_adds_every_time(make_product, stock_of):
    make_product("p1", stock=0)

    stock_add(product_id="p1", quantity=4)
    stock_add(product_id="p1", quantity=4)

    assert stock_of("p1") == (8, 0, 0, 8)


def test_stock_add_repeated_with_the_same_key_adds_nothing(make_product, stock_of):
    make_product("p1", stock=0)
    first = stock_add(product_id="p1", quantity=4, idempotency_key="delivery-1")
    count = Event.objects.count()

    again = stock_add(product_id="p1", quantity=4, idempotency_key="delivery-1")

    assert Event.objects.count() == count
    assert stock_of("p1") == (4, 0, 0, 4)
    assert (again.available, again.version) == (first.available, first.version)


def test_stock_add_with_a_reused_key_and_another_quantity_raises_and_writes_nothing(
    make_product, stock_of
):
    make_product("p1", stock=0)
    stock_add(product_id="p1", quantity=4, idempotency_key="delivery-1")
    count = Event.objects.count()

    with pytest.raises(IdempotencyKeyReused, match="delivery-1"):
        stock_add(product_id="p1", quantity=5, idempotency_key="delivery-1")

    assert Event.objects.count() == count
    assert stock_of("p1") == (4, 0, 0, 4)


def test_the_same_key_on_another_product_is_another_restock(make_product, stock_of):
    make_product("p1", stock=0)
    make_product("p2", stock=0)

    stock_add(product_id="p1", quantity=4, idempotency_key="delivery-1")
    stock_add(product_id="p2", quantity=5, idempotency_key="delivery-1")

    assert stock_of("p1")[0] == 4
    assert stock_of("p2")[0] == 5


@pytest.mark.parametrize("key", [None, "delivery-1"])
def test_stock_add_to_an_unknown_product_raises_product_not_found(key):
    with pytest.raises(ProductNotFound, match="ghost"):
        stock_add(product_id="ghost", quantity=4, idempotency_key=key)

    assert not Event.objects.exists()


def test_stock_add_of_zero_units_raises_and_writes_nothing(make_product):
    make_product("p1")
    count = Event.objects.count()

    with pytest.raises(InventoryError, match="quantity"):
        stock_add(product_id="p1", quantity=0)

    assert Event.objects.count() == count


# --- product_update ------------------------------------------------------------------------------


def test_product_update_records_each_change_with_who_and_why(make_product, store):
    make_product("p1", price="12.50", name="Blue widgt")

    product_update(
        product_id="p1",
        price=Decimal("14"),
        name="Blue widget",
        reason="supplier price list",
        metadata={"actor": "user:7"},
    )

    price_changed, renamed = store.read_stream(events.PRODUCT, "p1")[-2:]
    assert (price_changed.event_type, renamed.event_type) == (
        events.PRODUCT_PRICE_CHANGED,
        events.PRODUCT_RENAMED,
    )
    assert price_changed.payload == {
        "product_id": "p1",
        "price": "14.00",
        "previous_price": "12.50",
        "reason": "supplier price list",
    }
    assert renamed.payload["previous_name"] == "Blue widgt"
    assert {price_changed.metadata["actor"], renamed.metadata["actor"]} == {"user:7"}


def test_product_update_with_a_bad_price_writes_nothing_not_even_the_name(make_product):
    make_product("p1")
    count = Event.objects.count()

    with pytest.raises(InventoryError, match="price"):
        product_update(product_id="p1", name="New name", price=Decimal("-1"))

    assert Event.objects.count() == count


def test_product_update_of_an_unknown_product_raises_product_not_found():
    with pytest.raises(ProductNotFound, match="ghost"):
        product_update(product_id="ghost", price=Decimal("1.00"))

    assert not Event.objects.exists()


def test_a_price_change_applies_to_reservations_made_after_it_only(make_product):
    make_product("p1", price="10.00")
    before = stock_reserve(reservation_id="r1", items=[line("p1", 1)])

    product_update(product_id="p1", price=Decimal("12.00"))
    after = stock_reserve(reservation_id="r2", items=[line("p1", 2)])
    stock_commit(reservation_id="r1")

    assert (before.lines[0]["unit_price"], before.total_amount) == ("10.00", "10.00")
    assert (after.lines[0]["unit_price"], after.total_amount) == ("12.00", "24.00")


# --- product_discontinue, product_restore --------------------------------------------------------


def test_a_discontinued_product_is_refused_as_short_with_nothing_available(make_product, stock_of):
    make_product("p1", stock=10)
    make_product("p2", stock=10)
    product_discontinue(product_id="p1", reason="end of line")

    reservation = stock_reserve(reservation_id="r1", items=[line("p1", 1), line("p2", 1)])

    assert (reservation.status, reservation.reason) == (Reservation.FAILED, "insufficient_stock")
    assert reservation.details == [{"product_id": "p1", "requested": 1, "available": 0}]
    assert stock_of("p1") == (10, 0, 0, 10)
    assert stock_of("p2") == (10, 0, 0, 10)


def test_discontinuing_keeps_held_stock_which_may_still_be_sold_or_released(make_product, stock_of):
    make_product("p1", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    stock_reserve(reservation_id="r2", items=[line("p1", 2)])

    product_discontinue(product_id="p1")
    stock_commit(reservation_id="r1")
    stock_release(reservation_id="r2")

    assert stock_of("p1") == (7, 0, 3, 10)


def test_discontinuing_twice_and_restoring_twice_write_one_event_each(make_product, store):
    make_product("p1", stock=0)

    product_discontinue(product_id="p1")
    product_discontinue(product_id="p1")
    product_restore(product_id="p1", reason="back")
    product_restore(product_id="p1")

    assert product_types(store) == [
        events.PRODUCT_CREATED,
        events.PRODUCT_DISCONTINUED,
        events.PRODUCT_RESTORED,
    ]


def test_a_restored_product_can_be_reserved_again(make_product):
    make_product("p1", stock=2)
    product_discontinue(product_id="p1")
    product_restore(product_id="p1")

    assert stock_reserve(reservation_id="r1", items=[line("p1", 2)]).status == "reserved"


@pytest.mark.parametrize("command", [product_discontinue, product_restore])
def test_discontinue_and_restore_of_an_unknown_product_raise_product_not_found(command):
    with pytest.raises(ProductNotFound, match="ghost"):
        command(product_id="ghost")

    assert not Event.objects.exists()


# --- stock_adjust --------------------------------------------------------------------------------


def test_stock_adjust_moves_available_units_and_keeps_the_identity(make_product, stock_of, store):
    make_product("p1", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 4)])

    product = stock_adjust(product_id="p1", quantity=-6, reason="lost", note="shelf 3")

    assert stock_of("p1") == (0, 4, 0, 10)
    assert product.adjusted == -6
    assert store.read_stream(events.PRODUCT, "p1")[-1].payload == {
        "product_id": "p1",
        "quantity": -6,
        "reason": "lost",
        "note": "shelf 3",
        "idempotency_key": "",
    }


def test_stock_adjust_past_zero_raises_and_writes_nothing(make_product, stock_of):
    make_product("p1", stock=5)
    stock_reserve(reservation_id="r1", items=[line("p1", 4)])
    count = Event.objects.count()

    with pytest.raises(AdjustmentPastZero, match="1 available"):
        stock_adjust(product_id="p1", quantity=-2, reason="damaged")

    assert Event.objects.count() == count
    assert stock_of("p1") == (1, 4, 0, 5)


def test_stock_adjust_repeated_with_the_same_key_adjusts_once(make_product, stock_of):
    make_product("p1", stock=5)

    stock_adjust(product_id="p1", quantity=-2, reason="damaged", idempotency_key="count-1")
    count = Event.objects.count()
    again = stock_adjust(product_id="p1", quantity=-2, reason="damaged", idempotency_key="count-1")

    assert Event.objects.count() == count
    assert again.available == 3
    assert stock_of("p1") == (3, 0, 0, 5)


def test_stock_adjust_with_a_reused_key_for_another_correction_raises(make_product):
    make_product("p1", stock=5)
    stock_adjust(product_id="p1", quantity=-2, reason="damaged", idempotency_key="count-1")
    count = Event.objects.count()

    with pytest.raises(IdempotencyKeyReused, match="count-1"):
        stock_adjust(product_id="p1", quantity=-2, reason="lost", idempotency_key="count-1")

    assert Event.objects.count() == count


def test_a_restock_key_and_an_adjustment_key_are_kept_apart(make_product, stock_of):
    make_product("p1", stock=0)

    stock_add(product_id="p1", quantity=4, idempotency_key="k")
    stock_adjust(product_id="p1", quantity=1, reason="found", idempotency_key="k")

    assert stock_of("p1") == (5, 0, 0, 4)


def test_stock_adjust_of_an_unknown_product_raises_product_not_found():
    with pytest.raises(ProductNotFound, match="ghost"):
        stock_adjust(product_id="ghost", quantity=1, reason="found")

    assert not Event.objects.exists()


def test_a_product_loaded_from_its_snapshot_keeps_its_status_and_corrections(
    make_product, settings
):
    settings.EVENTSTORE_SNAPSHOT_EVERY = 2
    make_product("p1", stock=10)
    stock_adjust(product_id="p1", quantity=-4, reason="stolen")
    product_update(product_id="p1", price=Decimal("3.00"))
    product_discontinue(product_id="p1")

    from_snapshot = products.load("p1")
    replayed = products.load("p1", use_snapshot=False)

    assert from_snapshot.snapshot() == replayed.snapshot()
    assert (from_snapshot.adjusted, from_snapshot.discontinued) == (-4, True)
