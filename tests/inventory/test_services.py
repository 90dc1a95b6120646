"""Inventory services: what each command appends, idempotency, all-or-nothing and retries."""

from decimal import Decimal

import pytest

from eventstore.models import Event
from eventstore.store import ConcurrencyError, event_store
from inventory import events, services
from inventory.aggregates import (
    InventoryError,
    ProductAlreadyExists,
    ProductNotFound,
    Reservation,
    ReservationNotFound,
    ReservationStateError,
)
from inventory.services import (
    IdempotencyKeyReused,
    product_create,
    stock_add,
    stock_commit,
    stock_release,
    stock_reserve,
)

pytestmark = pytest.mark.django_db


def types_of(store, aggregate_type, aggregate_id):
    return [event.event_type for event in store.read_stream(aggregate_type, aggregate_id)]


def product_types(store, product_id="p1"):
    return types_of(store, events.PRODUCT, product_id)


def reservation_types(store, reservation_id="r1"):
    return types_of(store, events.RESERVATION, reservation_id)


def line(product_id, quantity):
    return {"product_id": product_id, "quantity": quantity}


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


# --- concurrency retries -------------------------------------------------------------------------


def test_a_reservation_decided_on_a_stale_product_is_retried_on_the_fresh_one(
    make_product, monkeypatch, stock_of
):
    make_product("p1", stock=10)
    stale = services.products.load("p1")
    # Another writer restocks after this command loaded the product, before it saved.
    stock_add(product_id="p1", quantity=5)
    real_load_or_new = services.products.load_or_new
    loads = []

    def load_or_new(product_id, **kwargs):
        loads.append(product_id)
        return stale if len(loads) == 1 else real_load_or_new(product_id, **kwargs)

    monkeypatch.setattr(services.products, "load_or_new", load_or_new)

    reservation = stock_reserve(reservation_id="r1", items=[line("p1", 3)])

    assert loads == ["p1", "p1"]
    assert reservation.status == Reservation.RESERVED
    assert stock_of("p1") == (12, 3, 0, 15)
    assert Event.objects.filter(aggregate_type=events.RESERVATION).count() == 1


def test_a_commit_that_meets_a_concurrency_error_once_is_retried_and_sells_once(
    make_product, monkeypatch, store, stock_of
):
    make_product("p1", stock=10)
    stock_reserve(reservation_id="r1", items=[line("p1", 3)])
    real_append = event_store.append
    calls = []

    def append_failing_once(*streams):
        calls.append(streams)
        if len(calls) == 1:
            raise ConcurrencyError(events.PRODUCT, "p1", 3, 4)
        return real_append(*streams)

    monkeypatch.setattr(event_store, "append", append_failing_once)

    reservation = stock_commit(reservation_id="r1")

    assert len(calls) == 2
    assert reservation.status == Reservation.COMMITTED
    assert stock_of("p1") == (7, 0, 3, 10)
    assert reservation_types(store).count(events.INVENTORY_COMMITTED) == 1
    assert product_types(store).count(events.STOCK_SOLD) == 1


def test_a_command_gives_up_after_the_configured_retries_and_writes_nothing(
    make_product, monkeypatch, settings
):
    settings.EVENTSTORE_COMMAND_RETRIES = 3
    make_product("p1", stock=10)
    count = Event.objects.count()
    calls = []

    def always_conflicting(*streams):
        calls.append(streams)
        raise ConcurrencyError(events.PRODUCT, "p1", 2, 3)

    monkeypatch.setattr(event_store, "append", always_conflicting)

    with pytest.raises(ConcurrencyError):
        stock_reserve(reservation_id="r1", items=[line("p1", 3)])

    assert len(calls) == 3
    assert Event.objects.count() == count


# --- metadata and snapshots ----------------------------------------------------------------------


def test_metadata_lands_on_every_event_of_every_command(make_product):
    metadata = {"correlation_id": "order-1", "actor": "user:7"}
    make_product("p1", stock=10, metadata=metadata)
    make_product("p2", stock=10, metadata=metadata)
    stock_add(product_id="p1", quantity=1, idempotency_key="k", metadata=metadata)
    stock_reserve(reservation_id="r1", items=[line("p1", 1), line("p2", 1)], metadata=metadata)
    stock_commit(reservation_id="r1", metadata=metadata)
    stock_reserve(reservation_id="r2", items=[line("p1", 1)], metadata=metadata)
    stock_release(reservation_id="r2", metadata=metadata)
    stock_reserve(reservation_id="r3", items=[line("p1", 100)], metadata=metadata)

    written = list(Event.objects.values_list("event_type", "metadata"))
    assert len(written) == 16
    for event_type, stored in written:
        assert stored == metadata, event_type


def test_loading_from_a_snapshot_gives_the_state_replaying_gives(make_product, settings):
    settings.EVENTSTORE_SNAPSHOT_EVERY = 3
    make_product("p1", stock=10)
    for index in range(4):
        stock_reserve(reservation_id=f"r{index}", items=[line("p1", 2)])
    stock_commit(reservation_id="r0")
    stock_release(reservation_id="r1")

    from_snapshot = services.products.load("p1")
    replayed = services.products.load("p1", use_snapshot=False)

    assert Event.objects.filter(aggregate_type=events.PRODUCT).count() == 8
    assert vars(from_snapshot) == vars(replayed)
    assert (replayed.available, replayed.reserved, replayed.sold) == (4, 4, 2)
