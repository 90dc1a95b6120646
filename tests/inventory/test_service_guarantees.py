"""What every inventory command guarantees: retried when a stream moved on, metadata on each
event, and snapshots that load the state replaying gives."""

import pytest

from eventstore.models import Event
from eventstore.store import ConcurrencyError, event_store
from inventory import events, services
from inventory.aggregates import Reservation
from inventory.services import stock_add, stock_commit, stock_release, stock_reserve
from tests.inventory.streams import line, product_types, reservation_types

pytestmark = pytest.mark.django_db


# --- concurrency retries -------------------------------------------------------------------------


def test_a_reservation_decided_on_a_stale_product_is_retried_on_the_fresh_one(
    make_product, monkeypatch, stock_of
):
    make_product("p1", stock=10)
    stale = services.products.load("p1")
    # Another writer restocks after this command loaded the product, before it saved.
    stock_add(product_id="p1", quantity=5)
    real_load_together = services.load_together
    loads = []

    def load_together(*wanted, **kwargs):
        loads.append([aggregate_id for _, aggregate_id in wanted])
        loaded = real_load_together(*wanted, **kwargs)
        if len(loads) == 1:
            loaded[1] = stale  # the product as this command first read it
        return loaded

    monkeypatch.setattr(services, "load_together", load_together)

    reservation = stock_reserve(reservation_id="r1", items=[line("p1", 3)])

    assert loads == [["r1", "p1"], ["r1", "p1"]]
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
