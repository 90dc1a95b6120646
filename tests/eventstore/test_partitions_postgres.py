"""Two workers given the same partition at the same moment, on PostgreSQL, each on its own
thread and connection, as two Celery workers woken for one partition would be.

Each batch of `catch_up_partition` holds the partition's checkpoint row (SELECT ... FOR UPDATE)
and moves it only from where it read it, so the two never both commit one event's effects.
Without skip_locked the second waits for the first's batch and carries on from the checkpoint
the first committed; with skip_locked (as the Celery task runs it) it leaves a partition the
other holds to it (`busy`). Either way each event's effect is committed exactly once, and the
checkpoint ends at the partition's last event. The race is run on a partition whose checkpoint
rows already exist and on one whose rows the two workers create at once (its first catch-up),
several rounds each, with a subscriber slow enough that the workers' batches overlap.
"""

import time
from collections import Counter

import pytest

from eventstore.follower.subscriptions import catch_up_partition
from eventstore.models import Checkpoint, Event
from eventstore.store import NewEvent, event_store
from tests.eventstore.test_subscriptions import Noter
from tests.threads import run_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PARTITIONS = 4
BATCH = 3  # events per batch: each catch-up takes several, so the workers' turns interleave
ORDERS = 8  # correlation ids, spread over the partitions
ROUNDS = 3  # races per test, each after more events were appended
CREATION_RACES = 60  # subscribers whose checkpoint rows several workers create at once


class SlowNoter(Noter):
    """Noter (one Noted event appended per ThingHappened handled, in the checkpoint's
    transaction) taking a moment per event, so that two workers' batches overlap in time."""

    def handle(self, event):
        time.sleep(0.002)
        super().handle(event)


def happen(count: int) -> dict[int, list[int]]:
    """`count` ThingHappened events per order, interleaved as concurrent orders write them, each
    correlated with its order; {partition: [positions]}."""
    positions: dict[int, list[int]] = {}
    for step in range(count):
        for order in range(ORDERS):
            [event] = event_store.append_to_stream(
                "thing",
                f"thing-{order}",
                [NewEvent("ThingHappened", {"n": step}, metadata={"correlation_id": f"o{order}"})],
            )
            positions.setdefault(event.partition(PARTITIONS), []).append(event.position)
    return positions


def noted() -> Counter:
    """How many times each event's effect (its Noted event) was committed, by position."""
    return Counter(
        Event.objects.filter(event_type="Noted").values_list("payload__position", flat=True)
    )


@pytest.mark.parametrize("skip_locked", [False, True], ids=["waiting", "skip-locked"])
@pytest.mark.parametrize("first", [False, True], ids=["resumed", "first-catch-up"])
def test_two_workers_on_one_partition_commit_each_events_effect_once(
    subscribe, settings, skip_locked, first
):
    settings.EVENTSTORE_PARTITIONS = PARTITIONS
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False  # only the workers below handle events
    noter = subscribe(SlowNoter())
    placed = happen(4)
    target = max(sorted(placed), key=lambda partition: len(placed[partition]))
    other = min(set(placed) - {target})
    assert len(placed[target]) >= 2 * BATCH, placed
    before = []  # events handled before the race, in another partition
    if not first:
        # Another partition is caught up first, which creates every checkpoint row.
        before = list(placed[other])
        catch_up_partition(noter, other, partitions=PARTITIONS)
    handled = 0
    met = []  # rounds in which the two workers met on the partition

    def worker(index, results):
        results[index] = catch_up_partition(
            noter, target, partitions=PARTITIONS, batch_size=BATCH, skip_locked=skip_locked
        )

    for round_ in range(ROUNDS):
        if round_:
            for partition, positions in happen(2).items():
                placed[partition].extend(positions)
        results = [None, None]
        run_threads(worker, 2, results)

        # Each event's effect was committed once, and the two handled each new event once.
        assert noted() == Counter(placed[target] + before), f"round {round_}"
        assert sum(result.handled for result in results) == len(placed[target]) - handled
        handled = len(placed[target])
        checkpoint = Checkpoint.objects.get(
            subscriber=noter.name, partition=target, partitions=PARTITIONS
        )
        assert (checkpoint.position, checkpoint.last_error) == (max(placed[target]), "")
        # A worker that was not turned away saw the partition through to its last event.
        assert [r.position for r in results if not r.busy] in (
            [max(placed[target])] * 2,
            [max(placed[target])],
        ), results
        assert not any(result.error for result in results), results
        if (
            any(result.busy for result in results)
            if skip_locked
            else all(result.handled for result in results)
        ):
            met.append(round_)

    # The race was real: one worker was turned away, or both took turns at the partition.
    assert met, "the two workers never met on the partition"

    # The subscriber has its four checkpoints, and the race moved only the target's.
    positions = dict(
        Checkpoint.objects.filter(subscriber=noter.name, partitions=PARTITIONS).values_list(
            "partition", "position"
        )
    )
    assert positions == {
        partition: max(placed[target])
        if partition == target
        else (max(before) if before and partition == other else 0)
        for partition in range(PARTITIONS)
    }


def test_workers_creating_a_subscribers_checkpoints_at_once_all_carry_on(settings):
    """A subscriber's first catch-ups, on several workers at once, each for its own partition
    (as the first commits of a fresh deployment wake them): every worker creates the missing
    checkpoint rows, and none may fail because another created them at the same moment."""
    settings.EVENTSTORE_PARTITIONS = PARTITIONS
    names = [f"tests.first-{attempt}" for attempt in range(CREATION_RACES)]

    def first_catch_up(index, name):
        subscriber = Noter()
        subscriber.name = name
        catch_up_partition(subscriber, index % PARTITIONS, partitions=PARTITIONS, look_first=False)

    for name in names:
        run_threads(first_catch_up, PARTITIONS, name)

    rows = Counter(
        Checkpoint.objects.filter(subscriber__in=names, partitions=PARTITIONS).values_list(
            "subscriber", flat=True
        )
    )
    assert rows == Counter(dict.fromkeys(names, PARTITIONS))
