"""Upcasters upgrade old payloads on read; history is never rewritten."""

import pytest

from eventstore.aggregates import Aggregate, Repository, applies
from eventstore.models import Event
from eventstore.store import NewEvent
from eventstore.upcasting import (
    UpcasterError,
    current_schema_version,
    register_upcaster,
    unregister_upcaster,
    upcast,
    upcaster,
)


@pytest.fixture
def renamed_field():
    """ItemAdded v1 had `qty`; v2 calls it `quantity`; v3 adds `unit`."""

    @upcaster("ItemAdded", 1)
    def rename_qty(payload):
        payload["quantity"] = payload.pop("qty")
        return payload

    @upcaster("ItemAdded", 2)
    def add_unit(payload):
        return {**payload, "unit": "each"}

    yield rename_qty
    unregister_upcaster("ItemAdded", 1)
    unregister_upcaster("ItemAdded", 2)


class Basket(Aggregate):
    aggregate_type = "basket"

    def __init__(self, aggregate_id):
        super().__init__(aggregate_id)
        self.items = 0

    @applies("ItemAdded")
    def _added(self, payload):
        self.items += payload["quantity"]


def test_upcast_runs_the_whole_chain(renamed_field):
    assert upcast("ItemAdded", 1, {"qty": 2}) == (3, {"quantity": 2, "unit": "each"})
    assert upcast("ItemAdded", 3, {"quantity": 2, "unit": "box"}) == (
        3,
        {"quantity": 2, "unit": "box"},
    )
    assert current_schema_version("ItemAdded") == 3
    assert current_schema_version("Unversioned") == 1


@pytest.mark.django_db
def test_an_old_event_reaches_aggregates_and_readers_upgraded(store, renamed_field):
    store.append_to_stream("basket", "b1", [NewEvent("ItemAdded", {"qty": 2}, schema_version=1)])
    store.append_to_stream("basket", "b1", [NewEvent("ItemAdded", {"quantity": 3, "unit": "box"})])

    events = store.read_stream("basket", "b1")

    assert [(e.schema_version, e.payload) for e in events] == [
        (3, {"quantity": 2, "unit": "each"}),
        (3, {"quantity": 3, "unit": "box"}),
    ]
    assert Repository(Basket, snapshot_every=0).load("b1").items == 5
    # The stored row keeps its original form.
    stored = Event.objects.order_by("position").values_list("schema_version", "payload")
    assert stored.first() == (1, {"qty": 2})


def test_registering_two_upcasters_for_one_version_is_refused(renamed_field):
    with pytest.raises(UpcasterError, match="already registered"):
        register_upcaster("ItemAdded", 1, lambda payload: payload)


def test_registering_the_same_upcaster_again_changes_nothing(renamed_field):
    register_upcaster("ItemAdded", 1, renamed_field)

    assert upcast("ItemAdded", 1, {"qty": 2}) == (3, {"quantity": 2, "unit": "each"})


def test_schema_versions_start_at_one():
    with pytest.raises(UpcasterError, match="start at 1"):
        register_upcaster("ItemAdded", 0, lambda payload: payload)
