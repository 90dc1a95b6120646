"""Partitioned subscribers: events split by key, one checkpoint per partition, log order per key,
fenced checkpoint moves, and changes of the partition count that neither skip nor repeat."""

import zlib
from collections import Counter

import pytest
from django.db import connection, transaction

from eventstore import recorders
from eventstore.follower.subscriptions import Subscriber, catch_up, catch_up_partition, lags
from eventstore.models import Checkpoint, Event
from eventstore.store import NewEvent, partition_hash

pytestmark = pytest.mark.django_db


class Recorder(Subscriber):
    """Notes every event it handles, in the order it handles them."""

    name = "tests.recorder"
    event_types = frozenset({"Step"})

    def __init__(self):
        self.handled = []

    def handle(self, event):
        self.handled.append(event.position)


def place(store, orders=6, steps=3):
    """`steps` Step events for each of `orders` orders, interleaved in the log the way concurrent
    sagas write them; each carries its order id as correlation id. {order: [positions]}."""
    positions = {f"order-{n}": [] for n in range(orders)}
    for step in range(steps):
        for order in positions:
            [event] = store.append_to_stream(
                "saga",
                order,
                [NewEvent("Step", {"step": step}, metadata={"correlation_id": order})],
            )
            positions[order].append(event.position)
    return positions


def checkpoints(name="tests.recorder"):
    return {
        (row.partition, row.partitions): row.position
        for row in Checkpoint.objects.filter(subscriber=name)
    }


def test_the_partition_key_is_the_correlation_id_else_the_aggregate_id(store):
    [correlated] = store.append_to_stream(
        "payment", "p1", [NewEvent("Step", {}, metadata={"correlation_id": "order-1"})]
    )
    [alone] = store.append_to_stream("product", "sku-1", [NewEvent("Created", {})])

    stored = dict(Event.objects.values_list("position", "partition_hash"))
    assert stored[correlated.position] == zlib.crc32(b"order-1") & 0x7FFFFFFF
    assert stored[alone.position] == zlib.crc32(b"sku-1") & 0x7FFFFFFF
    assert partition_hash({"correlation_id": "order-1"}, "p1") == stored[correlated.position]
    assert correlated.partition(16) == stored[correlated.position] % 16


def test_each_partition_reads_only_its_own_events_in_log_order(store, settings):
    settings.EVENTSTORE_PARTITIONS = 4
    positions = place(store, orders=12)

    seen = {}
    for partition in range(4):
        page = store.read_page(partition=(partition, 4))
        assert [event.position for event in page] == sorted(event.position for event in page)
        assert {event.partition(4) for event in page} <= {partition}
        seen.update({event.position: partition for event in page})

    assert sorted(seen) == sorted(p for order in positions.values() for p in order)
    # every event of one order in one partition
    assert all(len({seen[p] for p in order}) == 1 for order in positions.values())
    assert len(set(seen.values())) > 1, "12 orders should spread over more than one partition"


def test_a_partitioned_subscriber_handles_every_event_once_and_each_order_in_log_order(
    store, settings
):
    settings.EVENTSTORE_PARTITIONS = 4
    positions = place(store)
    recorder = Recorder()

    result = catch_up(recorder)
    again = catch_up(recorder)

    assert sorted(recorder.handled) == sorted(p for order in positions.values() for p in order)
    for order in positions.values():
        assert [p for p in recorder.handled if p in order] == order
    assert result.handled == 18 and again.handled == 0
    assert set(checkpoints()) == {(partition, 4) for partition in range(4)}


def test_one_partition_is_caught_up_alone(store, settings):
    settings.EVENTSTORE_PARTITIONS = 4
    place(store)
    recorder = Recorder()
    partition = store.read_page()[0].partition(4)

    result = catch_up_partition(recorder, partition, partitions=4)

    assert recorder.handled
    by_position = {event.position: event.partition(4) for event in store.read_page()}
    assert {by_position[p] for p in recorder.handled} == {partition}
    assert len(recorder.handled) == sum(1 for p in by_position.values() if p == partition)
    assert result.partition == partition
    assert result.position == max(recorder.handled)


def test_the_single_checkpoint_of_an_older_database_starts_every_partition(store, settings):
    before = place(store, steps=1)
    recorder = Recorder()
    catch_up(recorder)  # one partition, as before partitions existed
    handled_once = list(recorder.handled)
    after = place(store, steps=1)

    settings.EVENTSTORE_PARTITIONS = 4
    catch_up(recorder)

    new = [p for order in after.values() for p in order]
    assert sorted(recorder.handled) == sorted(handled_once + new)
    assert handled_once == sorted(p for order in before.values() for p in order)
    rows = Checkpoint.objects.filter(subscriber=recorder.name)
    assert {row.partitions for row in rows} == {4}, "the old checkpoint is replaced"
    assert all(row.handled_before is None for row in rows)


def test_a_change_of_the_partition_count_neither_repeats_nor_skips(store, settings):
    settings.EVENTSTORE_PARTITIONS = 4
    place(store, orders=12, steps=2)
    recorder = Recorder()
    # Partitions caught up unevenly: two of four are behind.
    for partition in (0, 1):
        catch_up_partition(recorder, partition, partitions=4)
    first = list(recorder.handled)
    place(store, orders=12, steps=1)

    settings.EVENTSTORE_PARTITIONS = 3
    catch_up(recorder)

    everything = list(Event.objects.filter(event_type="Step").values_list("position", flat=True))
    assert sorted(recorder.handled) == everything, "each event handled exactly once"
    assert recorder.handled[: len(first)] == first
    rows = Checkpoint.objects.filter(subscriber=recorder.name)
    assert {(row.partitions, row.handled_before) for row in rows} == {(3, None)}


def test_the_count_cannot_change_again_before_the_previous_change_is_caught_up(store, settings):
    settings.EVENTSTORE_PARTITIONS = 2
    place(store, orders=8, steps=1)
    recorder = Recorder()
    catch_up_partition(recorder, 0, partitions=2)  # partition 1 stays behind
    settings.EVENTSTORE_PARTITIONS = 3
    with transaction.atomic():
        recorders.recorder().ensure_partitions(recorder.name, 3)
    assert any(row.handled_before for row in Checkpoint.objects.filter(subscriber=recorder.name))

    settings.EVENTSTORE_PARTITIONS = 5
    with pytest.raises(recorders.RepartitionPending, match="changed again"), transaction.atomic():
        recorders.recorder().ensure_partitions(recorder.name, 5)


def test_a_checkpoint_moved_by_another_worker_undoes_the_whole_batch(store, settings):
    place(store, orders=1, steps=2)

    class Interloper(Recorder):
        """Moves its own checkpoint while handling, as a second worker that got past the lock
        would; the fenced save must then refuse the batch."""

        def handle(self, event):
            super().handle(event)
            store.append_to_stream("side", f"s{event.position}", [NewEvent("Side", {})])
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE eventstore_checkpoint SET position = position + 1000 "
                    "WHERE subscriber = %s",
                    [self.name],
                )

    with transaction.atomic():
        recorders.recorder().ensure_partitions(Interloper.name, 1)

    with pytest.raises(recorders.CheckpointMoved, match="moved from position 0"):
        catch_up(Interloper())

    assert not Event.objects.filter(event_type="Side").exists()
    assert Checkpoint.objects.get(subscriber="tests.recorder").position == 0


def test_the_backlog_query_names_the_partitions_behind_and_those_never_started(store, settings):
    settings.EVENTSTORE_PARTITIONS = 4
    place(store, orders=8, steps=1)
    first = store.read_page()[0].recorded_at
    recorder = Recorder()
    catch_up_partition(recorder, 0, partitions=4)  # creates every partition's row, catches 0 up
    holding = {event.partition(4) for event in store.read_page()}

    behind = recorders.recorder().partitions_with_backlog(recorder.name, 4, recorder.event_types)

    assert behind == sorted(holding - {0})
    assert recorders.recorder().partitions_with_backlog(recorder.name, 4, {"Other"}) == []

    assert (
        recorders.recorder().partitions_with_backlog(recorder.name, 4, None, recorded_before=first)
        == []
    )
    never = recorders.recorder().partitions_with_backlog("tests.never", 4, recorder.event_types)
    assert never == sorted(holding), "a subscriber's missing checkpoints start at 0"
    assert Checkpoint.objects.filter(subscriber="tests.never").count() == 4


def test_lags_count_each_partitions_events_after_its_checkpoint_and_show_its_error(
    store, subscribe, settings
):
    settings.EVENTSTORE_PARTITIONS = 4
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False
    subscriber = subscribe(Recorder())
    appended = [
        store.append_to_stream(
            "thing", f"t{n}", [NewEvent("Step", {}, metadata={"correlation_id": f"o{n}"})]
        )[0]
        for n in range(12)
    ]
    store.append_to_stream("thing", "x", [NewEvent("Unread", {})])
    expected = Counter(event.partition(4) for event in appended)
    before = {lag.partition: lag.events for lag in lags([subscriber.name])}
    assert before == {partition: expected[partition] for partition in range(4)}

    catch_up_partition(subscriber, 1, partitions=4)
    after = {lag.partition: (lag.events, lag.last_error) for lag in lags([subscriber.name])}
    assert after[1] == (0, "")
    assert after[0] == (expected[0], "")


@pytest.mark.django_db
def test_lags_are_counted_up_to_a_bound_and_estimated_past_it(store, subscribe, settings):
    settings.EVENTSTORE_PARTITIONS = 4
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False
    subscriber = subscribe(Recorder())
    # One order's twelve events in one partition, three other orders' one each.
    correlations = ["big"] * 12 + ["o1", "o2", "o3"]
    appended = [
        store.append_to_stream(
            "thing", f"t{n}", [NewEvent("Step", {}, metadata={"correlation_id": correlation})]
        )[0]
        for n, correlation in enumerate(correlations)
    ]
    expected = Counter(event.partition(4) for event in appended)
    busiest = appended[0].partition(4)
    # The log's positions from the start, shared among the four partitions.
    estimate = max(4, appended[-1].position // 4)

    bounded = {
        lag.partition: (lag.events, lag.exact) for lag in lags([subscriber.name], exact_up_to=3)
    }

    assert bounded[busiest] == (estimate, False)
    for partition in set(range(4)) - {busiest}:
        assert bounded[partition] == (expected[partition], True)
