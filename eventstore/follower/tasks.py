"""The Celery tasks of celery mode (EVENTSTORE_DISPATCH=celery). The broker carries wake-ups,
never events: every task reads the log from a checkpoint, so a lost, repeated or late task
costs time, never an event.

- `catch_up_partition(name, partition)` (queue "events") catches one partition of one
  subscriber up. Each batch holds the partition's checkpoint row, so one task per partition
  runs at a time: a task that finds its partition held leaves at once, and the holder looks for
  new events again after its commit.
- `make_calls(name)` (queue "effects") makes one call to the outside world that an effect
  subscriber owes and that is due. One call per task spreads the calls over every worker
  process and lets a worker take reactions between them, so slow providers never hold up the
  reactions.
- `sweep()` (celery beat, every EVENTSTORE_SWEEP_INTERVAL seconds) wakes every partition with
  a backlog older than one interval (wake-ups lost to a broker outage or a crash), asks for
  the calls that have been due as long (retries after their backoff) and runs the worker-pass
  housekeeping (overdue saga steps).

After a commit, `wake` sends a `catch_up_partition` for each partition the commit touched of
each subscriber that reads one of its events. A broker that does not answer is logged and the
request goes on: the events are committed, and the next sweep after the broker is back wakes
their partitions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from eventstore.follower.effects import EffectSubscriber, claim_next, due_calls, perform_claimed
from eventstore.follower.subscriptions import (
    catch_up_partition as catch_up_one,
)
from eventstore.follower.subscriptions import get_subscribers, touched_partitions
from eventstore.recorders import recorder
from eventstore.records import RecordedEvent
from eventstore.signals import run_worker_pass

logger = logging.getLogger(__name__)

# Calls a sweep asks for per effect subscriber at most; the next sweep asks for more.
SWEEP_CALLS = 100


# After a failure to reach the broker, this process stops trying for this many seconds: each
# attempt can cost a request seconds of waiting, and the sweep wakes what is not sent.
BROKER_PAUSE = 2.0
_broker_paused_until = 0.0


def _send(task, *args) -> bool:
    """Enqueue a task without retrying a broker that does not answer; whether it was sent.

    After a failure, sends in this process are skipped for BROKER_PAUSE seconds (logged once),
    so a broker outage costs one request a connection timeout, not every request.
    """
    global _broker_paused_until
    if time.monotonic() < _broker_paused_until:
        return False
    try:
        task.apply_async(args, retry=False)
    except Exception as error:  # kombu's OperationalError and the socket errors under it
        _broker_paused_until = time.monotonic() + BROKER_PAUSE
        logger.warning(
            "Could not enqueue %s%r (%s); wake-ups are left to beat's sweep, and this process "
            "tries the broker again in %.0f s",
            task.name,
            args,
            error,
            BROKER_PAUSE,
        )
        return False
    return True


def _partitions() -> int:
    """How many partitions each subscriber's work is split into (EVENTSTORE_PARTITIONS): read
    once by each task and passed on."""
    return int(settings.EVENTSTORE_PARTITIONS)


# Inside a catch-up task: the events its own commits wake, kept for the task to follow up.
_local = threading.local()


def wake(events: Iterable[RecordedEvent] | None) -> int:
    """Enqueue a catch-up of each partition that holds one of `events` (None: every partition)
    for each subscriber that reads it; how many were sent. Stops at the first failure to send:
    the sweep wakes what is left. Inside a catch-up task, the events are kept for that task to
    follow up instead (see `catch_up_partition`)."""
    following = getattr(_local, "following", None)
    if following is not None and events is not None:
        following.extend(events)
        return 0
    events = None if events is None else list(events)
    count = _partitions()
    sent = 0
    for subscriber in get_subscribers():
        if events is not None and not subscriber.wakes_on_commit:
            asked = _ask_for_calls(subscriber, events)
            if asked is None:
                return sent
            sent += asked
            continue
        touched = touched_partitions(subscriber, events, count)
        for partition in sorted(range(count) if touched is None else touched):
            if not _send(catch_up_partition, subscriber.name, partition):
                return sent
            sent += 1
    return sent


def _ask_for_calls(subscriber: Any, events: list[RecordedEvent]) -> int | None:
    """Send one `make_calls` for each of `events` an effect subscriber owes a call for (its
    appends owed them); how many were sent, None when the broker did not take one."""
    sent = 0
    if isinstance(subscriber, EffectSubscriber):
        for _ in range(sum(1 for event in events if subscriber.owes(event))):
            if not _send(make_calls, subscriber.name):
                return None
            sent += 1
    return sent


@shared_task(name="eventstore.tasks.catch_up_partition")
def catch_up_partition(name: str, partition: int) -> dict:
    """Catch one partition of one subscriber up, then follow up what its commits woke.

    The events a catch-up appends belong to the same keys as the events it handled (a saga's
    request carries its order's correlation id), so they wake the same partition of other
    subscribers: this task catches those up itself, in this process, instead of sending each
    to the broker as a task of its own, and so on until nothing it woke is left. A partition
    another worker holds is left to that worker, which looks again after its commit. Calls to
    the outside world are still sent to their own queue, one `make_calls` per call owed.
    """
    [subscriber] = get_subscribers([name])
    count = _partitions()
    if partition >= count:  # sent before the partition count was lowered
        return {"handled": 0, "busy": False}
    _local.following = woken = []
    try:
        result = _catch_up_and_ask_for_calls(subscriber, partition, count)
        while woken:
            events = list(woken)
            woken.clear()
            for other in get_subscribers():
                if not other.wakes_on_commit:
                    _ask_for_calls(other, events)
                    continue
                for touched in sorted(touched_partitions(other, events, count)):
                    try:
                        _catch_up_and_ask_for_calls(other, touched, count)
                    except Exception:
                        logger.exception("Following up %s partition %d failed", other.name, touched)
                        _send(catch_up_partition, other.name, touched)
    finally:
        _local.following = None
        if woken:  # left behind by an error: the broker takes them
            wake(woken)
    return {"handled": result.handled, "busy": result.busy}


def _catch_up_and_ask_for_calls(subscriber, partition: int, partitions: int):
    """Catch one of the subscriber's `partitions` partitions up, skipping it when another
    worker holds it. (An effect subscriber's catch-up, its safety net, owes only what no
    append did: the sweep asks for those calls once they have been due an interval.)"""
    result = catch_up_one(subscriber, partition, partitions=partitions, skip_locked=True)
    if result.error:
        logger.error(
            "%s partition %d stopped before the event after position %d: %s",
            subscriber.name,
            partition,
            result.position,
            result.error,
        )
    return result


@shared_task(name="eventstore.tasks.make_calls")
def make_calls(name: str) -> int:
    """Make one due call to the outside world that an effect subscriber owes (none when every
    due call is taken); how many (0 or 1)."""
    [subscriber] = get_subscribers([name])
    claim = claim_next(name)
    if claim is None:
        return 0
    perform_claimed(subscriber, claim)
    return 1


@shared_task(name="eventstore.tasks.sweep")
def sweep() -> int:
    """Wake every partition with a backlog and ask for every call that is due, then run the
    worker-pass housekeeping; how many tasks were sent.

    Only what has waited a sweep interval counts: newer events and calls have wake-ups of
    their own on the way, and waking them again would only add tasks that find nothing to do.
    """
    sent = 0
    count = _partitions()
    stale = timezone.now() - timedelta(seconds=float(settings.EVENTSTORE_SWEEP_INTERVAL))
    for subscriber in get_subscribers():
        waiting = recorder().partitions_with_backlog(
            subscriber.name, count, subscriber.event_types, recorded_before=stale
        )
        for partition in waiting:
            sent += _send(catch_up_partition, subscriber.name, partition)
        if isinstance(subscriber, EffectSubscriber):
            for _ in range(due_calls(subscriber.name, stale, limit=SWEEP_CALLS)):
                if not _send(make_calls, subscriber.name):
                    break
                sent += 1
    run_worker_pass(sender=sweep)
    return sent
