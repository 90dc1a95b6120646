"""Named subscribers with checkpoints: after-commit reactions that take effect exactly once.

A subscriber handles events in the order followers read the log (`LogPoint`: position
order on SQLite; on PostgreSQL, where appends run concurrently, (transaction id, position) up
to the oldest transaction still running). Each batch runs in one transaction that first
locks the subscriber's checkpoint row, then handles every event (each in a savepoint) and moves
the checkpoint past it, so an event's effects and the checkpoint commit together: a redelivered
event finds the checkpoint already past it, and a crash before commit leaves both undone.

The `events_committed` signal only wakes subscribers; they always read the log from their own
checkpoint, so events whose callbacks were lost in a crash are delivered by the next wake-up or
by `manage.py process_events`. A commit wakes only the subscribers that read one of the event
types it committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from eventstore import metrics, tracing
from eventstore.logs import event_log_context
from eventstore.recorders import recorder
from eventstore.records import LogPoint
from eventstore.registry import Registry
from eventstore.store import RecordedEvent, event_store

logger = logging.getLogger(__name__)


class Subscriber:
    """A reaction to events. Set a unique `name` and the `event_types` it handles (None: all)."""

    name: ClassVar[str]
    event_types: ClassVar[frozenset[str] | None] = None

    def handle(self, event: RecordedEvent) -> None:
        """React to one event; runs inside the transaction that advances the checkpoint."""
        raise NotImplementedError

    def after_catch_up(self) -> int:
        """Work done with no transaction open after each catch-up (effect subscribers call
        the outside world here); how many calls it made."""
        return 0

    def wants(self, event_types: Iterable[str] | None) -> bool:
        """Whether any of these event types is one this subscriber reads (None: any type)."""
        if event_types is None or self.event_types is None:
            return True
        return not self.event_types.isdisjoint(event_types)


class SubscriberError(Exception):
    """A subscriber is registered twice, or an unknown subscriber was asked for."""


registry: Registry[Subscriber] = Registry("subscriber", SubscriberError)


def register_subscriber(subscriber: Subscriber) -> Subscriber:
    """Add a subscriber to the registry (call from an AppConfig.ready())."""
    return registry.add(subscriber)


def unregister_subscriber(name: str) -> None:
    """Remove a subscriber from the registry (its checkpoint row stays)."""
    registry.remove(name)


def get_subscribers(names: Iterable[str] | None = None) -> list[Subscriber]:
    """Registered subscribers, all or the named ones, in registration order."""
    return registry.get(names)


@dataclass
class CatchUpResult:
    """What one catch-up of one subscriber (or of one of its partitions) did."""

    name: str
    handled: int
    position: int
    error: str = ""
    calls: int = 0
    partition: int | None = None
    # Another worker held the partition: it looks for new events again after its commit.
    busy: bool = False


def partitions() -> int:
    """How many partitions each subscriber's work is split into (EVENTSTORE_PARTITIONS)."""
    return int(settings.EVENTSTORE_PARTITIONS)


def catch_up(
    subscriber: Subscriber,
    *,
    batch_size: int | None = None,
    look_first: bool = True,
    only: Iterable[int] | None = None,
) -> CatchUpResult:
    """Catch every partition of the subscriber (or `only` these) up, one after the other, then,
    with no transaction open, do the subscriber's work after a catch-up (calls out).

    `look_first=False` skips the lock-free look for new events (the caller knows of some).
    """
    count = partitions()
    results = [
        catch_up_partition(subscriber, partition, batch_size=batch_size, look_first=look_first)
        for partition in (range(count) if only is None else sorted(set(only)))
    ]
    failed = [result for result in results if result.error]
    result = CatchUpResult(
        subscriber.name,
        handled=sum(result.handled for result in results),
        position=failed[0].position if failed else max(r.position for r in results),
    )
    if failed:
        first = failed[0]
        where = f"partition {first.partition}/{count}: " if count > 1 else ""
        result.error = f"{where}{first.error}"
    result.calls = subscriber.after_catch_up()
    return result


def catch_up_partition(
    subscriber: Subscriber,
    partition: int,
    *,
    batch_size: int | None = None,
    look_first: bool = True,
    skip_locked: bool = False,
) -> CatchUpResult:
    """Handle every event of one partition after its checkpoint, in log order, one transaction
    per batch; stop at the first failing event. Makes no call to the outside world.

    A failing event rolls back its own effects only; the checkpoint stays just before it, with
    the error recorded on the checkpoint, and the next catch-up tries it again.
    Each batch holds the partition's checkpoint row locked, and moves it only from where it
    read it (`Recorder.save_checkpoint` is fenced), so two workers never both commit one event's
    effects. With `skip_locked`, a partition another worker holds is left to it (`busy`): that
    worker looks for new events once more after its last commit, so no wake-up is lost.
    """
    count = partitions()
    batch_size = batch_size or int(settings.EVENTSTORE_BATCH_SIZE)
    name, types = subscriber.name, subscriber.event_types
    result = CatchUpResult(name, handled=0, position=0, partition=partition)
    if look_first:
        # A lock-free look first, so idle subscribers never queue for the write lock. A stale
        # "no" is safe: an event committed after this read wakes subscribers after its commit.
        point, waiting = recorder().checkpoint_and_backlog(name, partition, count, types)
        result.position = point.position
        if not waiting:
            return result
    transient_retries = 0
    while True:
        with transaction.atomic():
            # Locking the row gives this transaction its id before anything it appends: the
            # store raises an appended event's transaction id to its stream's previous one's, so
            # events appended here still follow their streams' order
            # (`PostgresRecorder._build_append_sql`).
            held = recorder().lock_checkpoint(name, partition, count, skip_locked=skip_locked)
            if held is None:
                result.busy = True
                return result
            read_at, handled_before = held
            result.position = read_at.position
            batch = event_store.read_new(
                read_at, limit=batch_size, event_types=types, partition=(partition, count)
            )
            if not batch:
                return result
            with tracing.span(
                "eventstore.subscriber_batch",
                {
                    "eventstore.subscriber": name,
                    "eventstore.partition": partition,
                    "eventstore.events": len(batch),
                },
            ) as span:
                point, error, failed_position, again = _handle_batch(
                    subscriber,
                    batch,
                    result,
                    read_at,
                    handled_before,
                    retry_transient=transient_retries < TRANSIENT_RETRIES,
                )
                if handled_before and point >= max(handled_before):
                    handled_before = None  # past every point the previous partitions reached
                recorder().save_checkpoint(
                    name,
                    partition,
                    count,
                    read_at=read_at,
                    point=point,
                    handled_before=handled_before,
                    error=error,
                    failed_position=failed_position,
                    now=timezone.now(),
                )
                tracing.set_attributes(span, **{"eventstore.error": error or None})
        if error:
            result.error = error
            return result
        if again:
            transient_retries += 1
            continue
        transient_retries = 0
        if len(batch) < batch_size:
            if not skip_locked:
                # A wake-up meanwhile waits for the lock and handles its own events.
                return result
            # Look once more after the commit: a wake-up that found this partition busy
            # meanwhile left its events to this worker.
            _, waiting = recorder().checkpoint_and_backlog(name, partition, count, types)
            if not waiting:
                return result


def _handled_before(event: RecordedEvent, handled_before: list[LogPoint] | None) -> bool:
    """Whether the subscriber handled `event` before its partition count changed (one point
    per previous partition)."""
    if not handled_before:
        return False
    return event.log_point <= handled_before[event.partition(len(handled_before))]


# PostgreSQL's deadlock and serialization failures. Appends run concurrently, so two batches
# that touch the same streams in different orders (each appending for several orders) can
# deadlock; the database aborts one. The other goes on, and the aborted one succeeds when it
# handles the event again in a new transaction.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
# Times in a row a catch-up starts a new transaction for an event that met one of them, before
# it records the error and stops as for any other.
TRANSIENT_RETRIES = 3


def _transient(error: Exception) -> bool:
    return getattr(error.__cause__, "sqlstate", None) in _TRANSIENT_SQLSTATES


def _handle_batch(
    subscriber: Subscriber,
    batch: list[RecordedEvent],
    result: CatchUpResult,
    read_at: LogPoint,
    handled_before: list[LogPoint] | None = None,
    *,
    retry_transient: bool = False,
) -> tuple[LogPoint, str, int | None, bool]:
    """Handle the events in order, each in a savepoint; return the point reached (the last
    event handled), the first error and its position, and whether the batch stopped before an
    event to handle it again in a new transaction (a transient failure, `retry_transient`)."""
    point = read_at
    for event in batch:
        if _handled_before(event, handled_before):
            point = event.log_point
            result.position = event.position
            continue
        # What the handler logs, and its failure, names the event and the subscriber.
        with event_log_context(subscriber.name, event):
            try:
                with (
                    tracing.event_span(
                        f"handle {event.event_type}",
                        event,
                        **{"eventstore.subscriber": subscriber.name},
                    ),
                    transaction.atomic(),
                ):
                    subscriber.handle(event)
            except Exception as exc:
                # Each failed attempt counts, whether or not the batch's transaction commits.
                metrics.subscriber_errors.labels(subscriber=subscriber.name).inc()
                if retry_transient and _transient(exc):
                    logger.warning(
                        "Subscriber %s met %s on event #%s (%s); it handles the event again in "
                        "a new transaction",
                        subscriber.name,
                        type(exc).__name__,
                        event.position,
                        event.event_type,
                    )
                    return point, "", None, True
                logger.exception(
                    "Subscriber %s failed on event #%s (%s)",
                    subscriber.name,
                    event.position,
                    event.event_type,
                )
                return point, f"{type(exc).__name__}: {exc}", event.position, False
        point = event.log_point
        result.position = event.position
        result.handled += 1
    return point, "", None, False


@dataclass(frozen=True)
class PartitionLag:
    """How far one partition of a subscriber is behind the log."""

    subscriber: str
    partition: int
    partitions: int
    events: int  # events it reads between its checkpoint and the followers' horizon
    last_error: str  # what stopped its last catch-up ("" for none)


def lags(names: Iterable[str] | None = None) -> list[PartitionLag]:
    """Every partition of every registered (or named) subscriber with its lag: one cheap query
    per subscriber, no lock (for metrics, the health check and the admin)."""
    count = partitions()
    return [
        PartitionLag(subscriber.name, partition, count, events, error)
        for subscriber in get_subscribers(names)
        for partition, (events, error) in recorder()
        .partition_lags(subscriber.name, count, subscriber.event_types)
        .items()
    ]


def catch_up_all(names: Iterable[str] | None = None) -> list[CatchUpResult]:
    """Catch every registered (or every named) subscriber up with the log."""
    return [catch_up(subscriber) for subscriber in get_subscribers(names)]


def touched_partitions(
    subscriber: Subscriber, events: Iterable[RecordedEvent] | None
) -> set[int] | None:
    """The partitions of the subscriber that hold one of `events` it reads (None: every one)."""
    if events is None:
        return None
    count = partitions()
    return {event.partition(count) for event in events if subscriber.wants((event.event_type,))}


def wait_until_followable(events: Iterable[RecordedEvent] | None) -> bool:
    """Wait until followers can read `events` (at most EVENTSTORE_FOLLOW_WAIT seconds);
    whether they can.

    On PostgreSQL a committed event is read only once every transaction older than its own has
    ended (`PostgresRecorder.follow_condition`). A subscriber woken by a commit while such a
    transaction still runs would find nothing and stop, and nobody would look again for it: so
    the commit's wake-up waits for them first (they are short: appends and batches). Past the
    wait, the wake-up goes ahead; the events are delivered by the next wake-up of their
    partitions, beat's sweep or `process_events`.
    """
    target = max((event.transaction_id for event in events or ()), default=0)
    if recorder().followable(target):
        return True
    deadline = time.monotonic() + float(settings.EVENTSTORE_FOLLOW_WAIT)
    pause = 0.001
    while time.monotonic() < deadline:
        time.sleep(pause)
        if recorder().followable(target):
            return True
        pause = min(pause * 2, 0.05)
    logger.warning(
        "Events of transaction %s are still behind an older running transaction after %s s; "
        "their subscribers are woken anyway and will read them later",
        target,
        settings.EVENTSTORE_FOLLOW_WAIT,
    )
    return False


_dispatch = threading.local()


def dispatch_committed(
    sender: Any = None, events: Iterable[RecordedEvent] | None = None, **kwargs: Any
) -> None:
    """`events_committed` receiver: after a commit, wake the partitions of every subscriber
    that hold one of the committed events it reads (every partition when `events` is None).

    In celery mode (EVENTSTORE_DISPATCH) each is woken by a task on the broker. Inline, they
    are caught up in this thread; subscribers that append events cause further commits, and
    those wake-ups are folded into the running loop instead of recursing.
    """
    if not registry:
        return
    events = None if events is None else list(events)
    if events is not None and not any(
        subscriber.wants(event.event_type for event in events) for subscriber in get_subscribers()
    ):
        return  # no subscriber reads any of them: nothing to wake, no call owed because of them
    if settings.EVENTSTORE_DISPATCH == "celery":
        from eventstore import tasks  # imports Celery: only in celery mode

        wait_until_followable(events)
        tasks.wake(events)
        return
    if getattr(_dispatch, "running", False):
        if events is None or _dispatch.woken is None:
            _dispatch.woken = None
        else:
            _dispatch.woken.extend(events)
        return
    _dispatch.running = True
    try:
        wait_until_followable(events)
        while True:
            _dispatch.woken = []
            for subscriber in get_subscribers():
                touched = touched_partitions(subscriber, events)
                if touched is not None and not touched:
                    continue
                try:
                    # Woken by a commit of events it reads: no need to look for new ones first.
                    catch_up(subscriber, look_first=events is None, only=touched)
                except Exception:
                    # The commit that woke us has happened; the log keeps the events and
                    # process_events (or the next wake-up) delivers them.
                    logger.exception("Catching up subscriber %s failed", subscriber.name)
            events = _dispatch.woken
            wait_until_followable(events)
            if events is not None and not events:
                # Nothing left to catch up. Work owed after a catch-up (calls to the outside
                # world) may have been recorded by another thread or process that handled this
                # commit's events first, and is busy with calls of its own: take it up here.
                _after_catch_up_all()
                events = _dispatch.woken
                if events is not None and not events:
                    return
    finally:
        _dispatch.running = False


def _after_catch_up_all() -> None:
    """Every subscriber's work after a catch-up (see `Subscriber.after_catch_up`), each failure
    logged and left to the next pass."""
    for subscriber in get_subscribers():
        try:
            subscriber.after_catch_up()
        except Exception:
            logger.exception("Work after catching up subscriber %s failed", subscriber.name)
