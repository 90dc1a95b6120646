"""The EventStore API: appends, version checks, idempotency, append-only rows, reads."""

import tracemalloc
import uuid
from decimal import Decimal
from unittest import mock

import pytest
from django.db import IntegrityError, OperationalError, transaction

from eventstore.models import AppendOnlyError, Event, Stream
from eventstore.recorders import recorder
from eventstore.records import START
from eventstore.store import (
    AppendTimeout,
    ConcurrencyError,
    NewEvent,
    StreamAppend,
    install_append_timeouts,
    raise_append_timeouts,
)
from tests.factories import NewEventFactory, StreamAppendFactory

pytestmark = pytest.mark.django_db


def test_append_numbers_versions_and_positions_in_order(store):
    recorded = store.append_to_stream(
        "thing", "t1", NewEventFactory.build_batch(3), expected_version=0
    )

    assert [event.version for event in recorded] == [1, 2, 3]
    positions = [event.position for event in recorded]
    assert positions == sorted(positions) and len(set(positions)) == 3
    assert store.stream_version("thing", "t1") == 3


def test_version_conflict_raises_with_expected_and_actual_and_writes_nothing(store):
    store.append_to_stream("thing", "t1", NewEventFactory.build_batch(2), expected_version=0)
    before = Event.objects.count()

    with pytest.raises(ConcurrencyError) as caught:
        store.append_to_stream("thing", "t1", [NewEventFactory()], expected_version=1)

    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert "expected version 1" in str(caught.value) and "actual version 2" in str(caught.value)
    assert Event.objects.count() == before


def test_expected_version_ahead_of_the_stream_is_a_conflict(store):
    with pytest.raises(ConcurrencyError) as caught:
        store.append_to_stream("thing", "new", [NewEventFactory()], expected_version=3)

    assert (caught.value.expected, caught.value.actual) == (3, 0)
    assert not Event.objects.exists()


def test_append_without_expected_version_goes_to_the_end_of_the_stream(store):
    store.append_to_stream("thing", "t1", [NewEventFactory()], expected_version=0)

    recorded = store.append_to_stream("thing", "t1", [NewEventFactory()])

    assert recorded[0].version == 2


def test_multi_stream_append_is_all_or_nothing(store):
    store.append_to_stream("product", "p2", [NewEventFactory()], expected_version=0)

    with pytest.raises(ConcurrencyError) as caught:
        store.append(
            StreamAppendFactory(aggregate_type="reservation", aggregate_id="r1"),
            StreamAppend("product", "p1", [NewEventFactory()], expected_version=0),
            StreamAppend("product", "p2", [NewEventFactory()], expected_version=0),
        )

    assert (caught.value.aggregate_type, caught.value.aggregate_id) == ("product", "p2")
    assert not Event.objects.filter(aggregate_type="reservation").exists()
    assert store.stream_version("product", "p1") == 0
    assert store.stream_version("product", "p2") == 1


def test_multi_stream_append_writes_every_stream(store):
    recorded = store.append(
        StreamAppend("reservation", "r1", [NewEventFactory()], expected_version=0),
        StreamAppend("product", "p1", NewEventFactory.build_batch(2), expected_version=0),
    )

    assert [(e.aggregate_id, e.version) for e in recorded] == [("r1", 1), ("p1", 1), ("p1", 2)]
    assert Stream.objects.get(aggregate_type="product", aggregate_id="p1").version == 2


def test_appending_a_stored_event_id_again_is_a_no_op(store):
    event = NewEventFactory()
    first = store.append_to_stream("thing", "t1", [event], expected_version=0)

    again = store.append_to_stream("thing", "t1", [event], expected_version=0)

    assert again == first
    assert Event.objects.count() == 1


def test_retried_batch_with_some_events_stored_does_not_duplicate_them(store):
    stored = NewEventFactory()
    store.append_to_stream("thing", "t1", [stored], expected_version=0)

    with pytest.raises(ConcurrencyError):
        store.append_to_stream("thing", "t1", [stored, NewEventFactory()], expected_version=0)

    assert Event.objects.filter(event_id=stored.event_id).count() == 1
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    ("streams", "message"),
    [
        ((), "at least one stream"),
        ((StreamAppend("thing", "t1", []),), "no events"),
        ((StreamAppend("", "t1", [NewEvent("E", {})]),), "must not be empty"),
        ((StreamAppend("thing", "t1", [NewEvent("", {})]),), "event_type"),
        ((StreamAppend("thing", "t1", [NewEvent("E", {})], expected_version=-1),), ">= 0"),
    ],
)
def test_malformed_appends_are_refused(store, streams, message):
    with pytest.raises(ValueError, match=message):
        store.append(*streams)
    assert not Event.objects.exists()


def test_the_same_stream_twice_in_one_append_is_refused(store):
    with pytest.raises(ValueError, match="appears twice"):
        store.append(
            StreamAppend("thing", "t1", [NewEventFactory()]),
            StreamAppend("thing", "t1", [NewEventFactory()]),
        )


def test_the_same_event_id_twice_in_one_append_is_refused(store):
    event = NewEventFactory()
    with pytest.raises(ValueError, match="appears twice"):
        store.append_to_stream("thing", "t1", [event, event])


def test_a_payload_that_is_not_a_dict_is_refused(store):
    with pytest.raises(TypeError, match="must be a dict"):
        store.append_to_stream("thing", "t1", [NewEvent("E", ["not", "a", "dict"])])
    assert not Event.objects.exists()


def test_recorded_payload_reads_back_exactly_as_stored(store):
    recorded = store.append_to_stream(
        "thing", "t1", [NewEvent("Priced", {"price": Decimal("9.50")})]
    )

    assert recorded[0].payload == {"price": "9.50"}
    assert store.read_stream("thing", "t1")[0].payload == recorded[0].payload


def test_saving_a_stored_event_again_is_refused(store):
    store.append_to_stream("thing", "t1", [NewEventFactory()])
    event = Event.objects.get()
    event.payload = {"tampered": True}

    with pytest.raises(AppendOnlyError):
        event.save()
    assert Event.objects.get().payload != {"tampered": True}


def test_deleting_an_event_is_refused(store):
    store.append_to_stream("thing", "t1", [NewEventFactory()])

    with pytest.raises(AppendOnlyError):
        Event.objects.get().delete()
    with pytest.raises(AppendOnlyError):
        Event.objects.all().delete()
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda qs: qs.update(payload={}),
        lambda qs: qs.bulk_update(list(qs), ["payload"]),
        lambda qs: qs.update_or_create(event_type="E", defaults={"payload": {}}),
        lambda qs: Event.objects.filter(event_type="E").update(version=9),
    ],
)
def test_queryset_updates_are_refused(store, change):
    store.append_to_stream("thing", "t1", [NewEvent("E", {"n": 1})])

    with pytest.raises(AppendOnlyError):
        change(Event.objects.all())
    assert Event.objects.get().payload == {"n": 1}


def test_read_stream_returns_one_stream_in_version_order_from_a_version(store):
    store.append_to_stream("thing", "a", NewEventFactory.build_batch(3))
    store.append_to_stream("thing", "b", NewEventFactory.build_batch(2))
    store.append_to_stream("thing", "a", NewEventFactory.build_batch(1))

    assert [e.version for e in store.read_stream("thing", "a")] == [1, 2, 3, 4]
    assert [e.version for e in store.read_stream("thing", "a", after_version=2)] == [3, 4]
    assert store.read_stream("thing", "missing") == []


def test_read_all_yields_every_event_after_a_position_across_batches(store):
    recorded = []
    for index in range(7):
        recorded += store.append_to_stream("thing", f"t{index % 3}", [NewEventFactory()])

    everything = list(store.read_all(batch_size=2))
    later = list(store.read_all(after_position=recorded[3].position, batch_size=3))

    assert [e.event_id for e in everything] == [e.event_id for e in recorded]
    assert [e.event_id for e in later] == [e.event_id for e in recorded[4:]]
    assert store.count(after_position=recorded[3].position) == 3
    assert store.last_position() == recorded[-1].position


def test_read_by_type_returns_only_those_types_in_position_order(store):
    store.append_to_stream("thing", "t1", [NewEvent("A", {"i": 1}), NewEvent("B", {"i": 2})])
    store.append_to_stream("thing", "t2", [NewEvent("C", {"i": 3}), NewEvent("A", {"i": 4})])

    found = list(store.read_by_type("A", "C", batch_size=1))

    assert [(e.event_type, e.payload["i"]) for e in found] == [("A", 1), ("C", 3), ("A", 4)]
    assert store.read_page(event_types=[]) == []  # no types asked for: nothing, not everything
    assert store.count(event_types=["A", "C"]) == 3
    assert store.count(after_position=found[0].position, event_types=["A"]) == 1
    assert store.count(event_types=[]) == 0


def test_metadata_and_correlation_id_are_stored(store):
    order_id = str(uuid.uuid4())
    store.append_to_stream(
        "order", order_id, [NewEvent("E", {}, {"correlation_id": order_id, "actor": "staff"})]
    )

    event = store.read_stream("order", order_id)[0]

    assert event.correlation_id == order_id
    assert event.metadata["actor"] == "staff"


def test_read_correlated_gives_every_stream_of_one_order_in_position_order(store):
    order_id, other_id = str(uuid.uuid4()), str(uuid.uuid4())
    mine = {"correlation_id": order_id}
    store.append_to_stream("order", order_id, [NewEvent("Placed", {}, mine)])
    theirs = {"correlation_id": other_id}
    store.append_to_stream("order", other_id, [NewEvent("Placed", {}, theirs)])
    store.append(
        StreamAppend("payment", order_id, [NewEvent("Charged", {}, mine)]),
        StreamAppend("saga", order_id, [NewEvent("Stepped", {}, mine)]),
    )
    store.append_to_stream("audit", "x", [NewEvent("Uncorrelated", {}, {})])

    found = store.read_correlated(order_id)

    assert [(e.aggregate_type, e.event_type) for e in found] == [
        ("order", "Placed"),
        ("payment", "Charged"),
        ("saga", "Stepped"),
    ]
    assert [e.position for e in found] == sorted(e.position for e in found)


def test_the_correlation_id_column_copies_the_metadata_and_is_empty_without_one(store):
    order_id = str(uuid.uuid4())
    store.append_to_stream("order", order_id, [NewEvent("E", {}, {"correlation_id": order_id})])
    store.append_to_stream("audit", "x", [NewEvent("E", {}, {"actor": "staff"})])

    columns = dict(Event.objects.values_list("aggregate_type", "correlation_id"))

    assert columns == {"order": order_id, "audit": ""}


def test_read_all_memory_stays_flat_as_the_log_grows(store):
    def peak_while_reading() -> int:
        tracemalloc.start()
        try:
            for _ in store.read_all(batch_size=100):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def grow(count: int) -> None:
        for start in range(0, count, 500):
            store.append(
                *[
                    StreamAppend("thing", f"t{start + i}", [NewEvent("E", {"blob": "x" * 200})])
                    for i in range(min(500, count - start))
                ]
            )

    grow(1_000)
    small = peak_while_reading()
    grow(9_000)
    large = peak_while_reading()

    # Ten times the events, but one batch in memory at a time: the peak may not follow.
    assert large < small * 2


def _short_of(row_index: int):
    """The recorder's append, made to report one row missing from what it inserted, as when
    another writer's insert took that row's place after the statement's checks."""
    real = recorder().append

    def append(streams, **kwargs):
        outcome = real(streams, **kwargs)
        skipped = [row.event_id for stream in streams for row in stream.rows][row_index]
        return outcome._replace(
            points={key: point for key, point in outcome.points.items() if key != skipped}
        )

    return mock.patch.object(recorder(), "append", append)


def test_a_refused_append_writes_nothing_and_the_transaction_stays_usable(store):
    store.append_to_stream("thing", "t1", [NewEventFactory()])
    with transaction.atomic():
        with pytest.raises(ConcurrencyError):
            store.append_to_stream("thing", "t1", [NewEventFactory()], expected_version=0)
        assert not transaction.get_rollback()
        store.append_to_stream("thing", "t1", [NewEventFactory()], expected_version=1)

    assert store.stream_version("thing", "t1") == 2


def test_a_row_another_writer_took_fails_the_append_and_none_of_it_commits(store):
    store.append_to_stream("thing", "t1", [NewEventFactory()])
    with pytest.raises(ConcurrencyError) as caught, transaction.atomic():
        try:
            with _short_of(1):
                store.append_to_stream(
                    "thing", "t1", NewEventFactory.build_batch(2), expected_version=1
                )
        finally:
            # The first row went in: the caller's transaction may not commit it.
            marked = transaction.get_rollback()

    assert marked
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert Event.objects.count() == 1


def test_an_event_id_another_writer_stored_fails_the_whole_append(store):
    with pytest.raises(IntegrityError, match="event id"), transaction.atomic(), _short_of(0):
        store.append(StreamAppend("other", "o1", NewEventFactory.build_batch(2)))

    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_one_append_to_hundreds_of_streams_checks_every_expected_version(store):
    streams = [f"s{n}" for n in range(250)]  # more than one version query holds on SQLite
    store.append(*(StreamAppend("thing", s, [NewEventFactory()], 0) for s in streams))
    moved = StreamAppend("thing", streams[-1], [NewEventFactory()], 0)  # it is at 1 now

    with pytest.raises(ConcurrencyError) as caught:
        store.append(
            *(StreamAppend("thing", s, [NewEventFactory()], 1) for s in streams[:-1]), moved
        )

    assert (caught.value.aggregate_id, caught.value.expected, caught.value.actual) == (
        streams[-1],
        0,
        1,
    )
    assert Event.objects.count() == 250
    store.append(*(StreamAppend("thing", s, [NewEventFactory()], 1) for s in streams))
    assert store.stream_version("thing", streams[123]) == 2


# --- lock timeouts -------------------------------------------------------------------------------


class _LockNotAvailable(Exception):
    sqlstate = "55P03"


def _failing_execute(error):
    def execute(sql, params, many, context):
        raise error

    return execute


def _postgres_lock_timeout():
    try:
        raise OperationalError("canceling statement due to lock timeout") from _LockNotAvailable()
    except OperationalError as error:
        return error


@pytest.mark.parametrize(
    ("vendor", "error"),
    [
        ("sqlite", OperationalError("database is locked")),
        ("postgresql", _postgres_lock_timeout()),
    ],
)
def test_the_databases_lock_timeout_raises_append_timeout(vendor, error):
    context = {"connection": mock.Mock(vendor=vendor)}

    with pytest.raises(AppendTimeout) as raised:
        raise_append_timeouts(_failing_execute(error), "BEGIN", None, False, context)

    assert raised.value.__cause__ is error


@pytest.mark.parametrize("vendor", ["sqlite", "postgresql"])
def test_other_database_errors_pass_through_unchanged(vendor):
    error = OperationalError("no such table: nowhere")
    context = {"connection": mock.Mock(vendor=vendor)}

    with pytest.raises(OperationalError) as raised:
        raise_append_timeouts(_failing_execute(error), "SELECT", None, False, context)

    assert raised.value is error


def test_each_connection_maps_lock_timeouts_once():
    connection = mock.Mock(execute_wrappers=[])

    install_append_timeouts(sender=None, connection=connection)
    install_append_timeouts(sender=None, connection=connection)

    assert connection.execute_wrappers == [raise_append_timeouts]


@pytest.mark.django_db
def test_a_payload_with_an_integer_beyond_64_bits_reads_back_whole(store):
    """Whatever parses the stored JSON must not turn such an integer into a float (orjson,
    for one, does)."""
    huge = 2**70 + 1
    store.append_to_stream("thing", "big", [NewEvent("Counted", {"n": huge, "small": 1})])

    [event] = store.read_stream("thing", "big")
    assert event.payload == {"n": huge, "small": 1}
    assert store.read_new(START)[-1].payload["n"] == huge
