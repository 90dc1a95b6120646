"""Inline projections: same transaction as the append, rebuild equals live, verify finds drift."""

import pytest
from django.db import transaction

from eventstore.models import Checkpoint, Event, Snapshot, Stream
from eventstore.projections import (
    Projection,
    ProjectionError,
    get_projections,
    register_projection,
    unregister_projection,
)
from eventstore.replay import rebuild, verify
from eventstore.store import NewEvent, StreamAppend
from tests.factories import NewEventFactory

pytestmark = pytest.mark.django_db


def populate(store):
    for index in range(12):
        store.append(
            StreamAppend("thing", f"t{index % 4}", NewEventFactory.build_batch(1 + index % 3)),
            StreamAppend("other", f"o{index % 5}", [NewEvent(f"Type{index % 2}", {})]),
        )


class Exploding(Projection):
    name = "tests.exploding"
    event_types = frozenset({"Boom"})

    def apply(self, event):
        raise RuntimeError("projection failed")


@pytest.fixture
def exploding():
    projection = register_projection(Exploding())
    yield projection
    unregister_projection(projection.name)


def test_the_stream_read_model_follows_every_append(store):
    store.append_to_stream("thing", "t1", [NewEvent("A", {})])
    last = store.append_to_stream("thing", "t1", [NewEvent("B", {}), NewEvent("C", {})])[-1]

    row = Stream.objects.get(aggregate_type="thing", aggregate_id="t1")

    assert (row.version, row.last_event_type, row.last_position) == (3, "C", last.position)
    assert row.first_recorded_at <= row.last_recorded_at


def test_a_failing_projection_rolls_the_append_back(store, exploding):
    # The append's transaction (here the caller's block) cannot commit its events.
    with pytest.raises(RuntimeError, match="projection failed"), transaction.atomic():
        store.append_to_stream("thing", "t1", [NewEvent("Boom", {})])

    assert not Event.objects.exists()
    assert not Stream.objects.exists()


def test_rebuild_equals_the_live_read_model(store, stream_projection, stream_rows):
    populate(store)
    live = stream_rows()

    result = rebuild([stream_projection], batch_size=5)

    assert stream_rows() == live
    assert result.events == Event.objects.count()
    assert result.events_per_second > 0


def test_rebuild_of_an_empty_log_empties_the_read_model(store, stream_projection):
    Stream.objects.create(
        aggregate_type="ghost",
        aggregate_id="g1",
        version=1,
        last_event_type="Boo",
        last_position=1,
        first_recorded_at="2026-01-01T00:00:00Z",
        last_recorded_at="2026-01-01T00:00:00Z",
    )

    result = rebuild([stream_projection])

    assert result.events == 0
    assert not Stream.objects.exists()


def test_verify_finds_no_drift_in_a_consistent_read_model(store, stream_projection):
    populate(store)

    differences, result = verify([stream_projection], batch_size=7)

    assert differences == []
    assert result.events == Event.objects.count()


def test_verify_lists_a_tampered_row_and_leaves_the_live_model_untouched(store, stream_projection):
    populate(store)
    Stream.objects.filter(aggregate_type="thing", aggregate_id="t2").update(version=99)

    differences, _ = verify([stream_projection])

    assert len(differences) == 1
    difference = differences[0]
    assert difference.kind == "changed"
    assert difference.key == {"aggregate_type": "thing", "aggregate_id": "t2"}
    assert difference.fields == ["version"]
    assert "version: live 99 != rebuilt" in difference.describe()
    assert Stream.objects.get(aggregate_type="thing", aggregate_id="t2").version == 99


def test_verify_with_keep_lists_the_drift_and_keeps_the_rebuilt_rows(store, stream_projection):
    populate(store)
    Stream.objects.filter(aggregate_type="thing", aggregate_id="t2").update(version=99)

    differences, _ = verify([stream_projection], keep=True)

    assert [d.fields for d in differences] == [["version"]]
    assert Stream.objects.get(aggregate_type="thing", aggregate_id="t2").version != 99
    assert not verify([stream_projection])[0]


def test_verify_lists_missing_and_unexpected_rows(store, stream_projection):
    populate(store)
    row = Stream.objects.get(aggregate_type="other", aggregate_id="o1")
    Stream.objects.filter(pk=row.pk).update(aggregate_id="o1-renamed")

    differences = sorted(verify([stream_projection])[0], key=lambda d: d.kind)

    assert [(d.kind, d.key["aggregate_id"]) for d in differences] == [
        ("missing", "o1"),
        ("unexpected", "o1-renamed"),
    ]
    assert "missing from the live read model" in differences[0].describe()
    assert "not derived from any event" in differences[1].describe()


def test_rows_are_matched_by_natural_key():
    projection = Projection()

    assert projection.row_key(Checkpoint) == ("name",)
    assert projection.row_key(Snapshot) == ("aggregate_type", "aggregate_id")
    assert "id" not in projection.compared_fields(Stream)


def test_a_second_projection_with_the_same_name_is_refused(exploding):
    with pytest.raises(ProjectionError, match="already registered"):
        register_projection(Exploding())


def test_asking_for_an_unknown_projection_names_it():
    with pytest.raises(ProjectionError, match=r"Unknown projection.*nope"):
        get_projections(["nope"])


class Collecting(Projection):
    name = "tests.collecting"
    event_types = frozenset({"Seen"})

    def __init__(self):
        self.applied = []

    def apply(self, event):
        self.applied.append((event.aggregate_type, event.aggregate_id))


class OnThings(Collecting):
    name = "tests.on_things"
    aggregate_type = "thing"


class OnThingsAndOthers(Collecting):
    name = "tests.on_things_and_others"
    aggregate_type = frozenset({"thing", "other"})


@pytest.mark.parametrize(
    ("projection_class", "applied"),
    [
        (Collecting, [("thing", "t1"), ("other", "o1"), ("thingamajig", "j1")]),
        (OnThings, [("thing", "t1")]),
        (OnThingsAndOthers, [("thing", "t1"), ("other", "o1")]),
    ],
)
def test_a_projection_reads_its_event_types_on_the_streams_its_aggregate_type_names(
    store, projection_class, applied
):
    projection = register_projection(projection_class())
    try:
        store.append(
            StreamAppend("thing", "t1", [NewEvent("Seen", {}), NewEvent("Unseen", {})]),
            StreamAppend("other", "o1", [NewEvent("Seen", {})]),
            StreamAppend("thingamajig", "j1", [NewEvent("Seen", {})]),
        )
    finally:
        unregister_projection(projection.name)

    assert projection.applied == applied
