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
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from eventstore.aggregates import joining_units
from eventstore.models import Checkpoint
from eventstore.observability import metrics, tracing
from eventstore.observability.logs import event_log_context
from eventstore.recorders import CheckpointMove, recorder
from eventstore.records import START, LogPoint, RecordedEvent
from eventstore.registry import Registry

logger = logging.getLogger(__name__)


class Subscriber:
    """A reaction to events. Set a unique `name` and the `event_types` it handles (None: all)."""

    name: ClassVar[str]
    event_types: ClassVar[frozenset[str] | None] = None
    # Whether a commit of events it reads wakes it (False: only the worker follows it).
    wakes_on_commit: ClassVar[bool] = True

    def handle(self, event: RecordedEvent) -> None:
        """React to one event; runs inside the transaction that advances the checkpoint."""
        raise NotImplementedError

    def handle_batch(self, events: list[RecordedEvent]) -> None:
        """React to a batch's events, in order, in one go (override to do it for less than one
        `handle` each; a batch handled event by event is not handed over whole)."""
        for event in events:
            self.handle(event)

    def after_catch_up(self, handled: int) -> int:
        """Work done with no transaction open after each catch-up that `handled` this many
        events (effect subscribers call the outside world here); how many calls it made."""
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
    # Where the partition's checkpoint stood when the catch-up ended (one partition's).
    point: LogPoint = START


def catch_up(
    subscriber: Subscriber,
    *,
    partitions: int | None = None,
    batch_size: int | None = None,
    only: Iterable[int] | None = None,
    woken_by: list[RecordedEvent] | None = None,
) -> CatchUpResult:
    """Catch every one of the subscriber's `partitions` partitions (default:
    EVENTSTORE_PARTITIONS), or `only` these, up, one after the other, then, with no transaction
    open, do the subscriber's work after a catch-up (calls out).

    `woken_by`: the committed events that woke it. It then skips the lock-free check for new
    events, and catches a partition up again once those events can be followed when its
    checkpoint ended before one of them (`wait_until_followable`).
    """
    count = partitions or int(settings.EVENTSTORE_PARTITIONS)
    results = [
        _catch_up_woken(subscriber, partition, count, batch_size, woken_by)
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
    if woken_by is None or result.handled:
        result.calls = subscriber.after_catch_up(result.handled)
    return result


def _catch_up_woken(
    subscriber: Subscriber,
    partition: int,
    partitions: int,
    batch_size: int | None,
    woken_by: list[RecordedEvent] | None,
) -> CatchUpResult:
    """Catch one partition up; when `woken_by` events it reads and its checkpoint ended before
    one of them, wait until followers can read them and catch it up again."""
    result = catch_up_partition(
        subscriber,
        partition,
        partitions=partitions,
        batch_size=batch_size,
        look_first=woken_by is None,
    )
    if woken_by is None or result.error:
        return result
    behind = left_behind(subscriber, partition, partitions, woken_by, result.point)
    if not behind or not wait_until_followable(behind):
        return result
    again = catch_up_partition(
        subscriber, partition, partitions=partitions, batch_size=batch_size, look_first=False
    )
    again.handled += result.handled
    return again


def left_behind(
    subscriber: Subscriber,
    partition: int,
    partitions: int,
    events: Iterable[RecordedEvent],
    point: LogPoint,
) -> list[RecordedEvent]:
    """Those of `events` the subscriber reads in this partition that lie after `point` (where
    its checkpoint stands): a commit's events its catch-up could not read yet."""
    return [
        event
        for event in events
        if event.log_point > point
        and event.partition(partitions) == partition
        and subscriber.wants((event.event_type,))
    ]


def catch_up_partition(
    subscriber: Subscriber,
    partition: int,
    *,
    partitions: int,
    batch_size: int | None = None,
    look_first: bool = True,
    skip_locked: bool = False,
) -> CatchUpResult:
    """Handle every event of one of the subscriber's `partitions` partitions after its
    checkpoint, in log order, one transaction per batch; stop at the first failing event.
    Makes no call to the outside world.

    A batch is handled in one transaction with no savepoint: the commands the subscriber runs
    join it (`unit_of_work`). When an event fails, the batch is rolled back and handled again
    event by event, each in a savepoint, so that only the failing event's effects are undone:
    the checkpoint stays just before it, with the error recorded on the checkpoint, and the
    next catch-up tries it again.

    Each batch holds the partition's checkpoint row locked, and moves it only from where it
    read it (`Recorder.save_checkpoint` is fenced), so two workers never both commit one event's
    effects. With `skip_locked`, a partition another worker holds is left to it (`busy`): that
    worker looks for new events once more after its last commit, so no wake-up is lost.
    `look_first=False` skips the lock-free check for new events (the caller knows of some).
    """
    catch_up = _PartitionCatchUp(
        subscriber,
        partition,
        partitions,
        batch_size=batch_size or int(settings.EVENTSTORE_HANDLE_BATCH_SIZE),
        skip_locked=skip_locked,
    )
    if look_first and not catch_up.has_backlog():
        return catch_up.result
    return catch_up.run()


def catch_up_together(
    woken: list[tuple[Subscriber, int]], *, partitions: int, batch_size: int | None = None
) -> list[CatchUpResult] | None:
    """Catch several (subscriber, partition) pairs up in one transaction (one follow pass for
    every subscriber a commit woke): their checkpoints locked and their batches read in one
    statement, each batch handled together, every checkpoint moved in one statement. None
    when an event failed or left the transaction marked for rollback, or a checkpoint row
    is still to be created: nothing of it is kept, and the caller catches each pair up on its
    own. A pair with more to read than one batch is left there (its result's point says
    where)."""
    size = batch_size or int(settings.EVENTSTORE_HANDLE_BATCH_SIZE)
    catch_ups = [
        _PartitionCatchUp(subscriber, partition, partitions, batch_size=size, skip_locked=False)
        for subscriber, partition in woken
    ]
    wanted = [
        (subscriber.name, partition, partitions, subscriber.event_types)
        for subscriber, partition in woken
    ]
    try:
        with transaction.atomic():
            held = recorder().lock_and_read_many(wanted, size)
            if held is None:
                raise _HandleOneByOne()
            moves = [
                move
                for catch_up, batch in zip(catch_ups, held, strict=True)
                if (move := catch_up.handle_held(*batch)[1]) is not None
            ]
            recorder().save_checkpoints(moves, now=timezone.now())
    except _HandleOneByOne:
        return None
    return [catch_up.result for catch_up in catch_ups]


class _HandleOneByOne(Exception):
    """An event of a batch handled together failed: the batch is rolled back and handled
    again event by event."""


@dataclass
class _BatchDone:
    """How one batch ended: its size, the error that stopped it ("" for none), and whether it
    stopped before an event to handle it again in a new transaction (a transient failure)."""

    size: int
    error: str = ""
    again: bool = False


class _PartitionCatchUp:
    """One catch-up of one partition of one subscriber, batch after batch (see
    `catch_up_partition`)."""

    def __init__(
        self,
        subscriber: Subscriber,
        partition: int,
        partitions: int,
        *,
        batch_size: int,
        skip_locked: bool,
    ) -> None:
        self.subscriber = subscriber
        self.partition = partition
        self.partitions = partitions
        self.batch_size = batch_size
        self.skip_locked = skip_locked
        self.result = CatchUpResult(subscriber.name, handled=0, position=0, partition=partition)

    def has_backlog(self) -> bool:
        """A lock-free check for events after the checkpoint, so idle subscribers never queue
        for the write lock. A stale "no" is safe: an event committed after this read wakes
        subscribers after its commit."""
        point, waiting = recorder().checkpoint_and_backlog(
            self.subscriber.name, self.partition, self.partitions, self.subscriber.event_types
        )
        self._reached(point)
        return waiting

    def run(self) -> CatchUpResult:
        one_by_one, transient_retries = False, 0
        while True:
            try:
                done = self._batch(
                    one_by_one=one_by_one, retry_transient=transient_retries < TRANSIENT_RETRIES
                )
            except _HandleOneByOne as failure:
                cause = failure.__cause__
                logger.info(
                    "Subscriber %s handles its batch again event by event: %s",
                    self.subscriber.name,
                    cause or "a transaction marked for rollback",
                )
                one_by_one = True
                if cause is not None and _transient(cause):
                    transient_retries += 1  # that try counts as the event's first
                continue
            if done is None or done.error:
                return self.result
            if done.again:
                transient_retries += 1
                continue
            one_by_one, transient_retries = False, 0
            if done.size < self.batch_size and not self._look_again():
                return self.result

    def _look_again(self) -> bool:
        """After a short batch: whether to read on. A wake-up meanwhile waits for the lock and
        handles its own events; a worker that skips held partitions looks once more, since a
        wake-up that found this partition busy left its events to it."""
        return self.skip_locked and self.has_backlog()

    def _reached(self, point: LogPoint) -> None:
        self.result.point = point
        self.result.position = point.position

    def _batch(self, *, one_by_one: bool, retry_transient: bool) -> _BatchDone | None:
        """Lock the checkpoint, read and handle the next batch, move the checkpoint: one
        transaction. None when another worker holds the partition or nothing is left."""
        with transaction.atomic():
            # Locking the row gives this transaction its id before anything it appends: the
            # store raises an appended event's transaction id to its stream's previous one's, so
            # events appended here still follow their streams' order
            # (`PostgresRecorder._build_append_sql`).
            held = recorder().lock_and_read(
                self.subscriber.name,
                self.partition,
                self.partitions,
                self.subscriber.event_types,
                self.batch_size,
                skip_locked=self.skip_locked,
            )
            if held is None:
                self.result.busy = True
                return None
            done, move = self.handle_held(
                *held, one_by_one=one_by_one, retry_transient=retry_transient
            )
            if move is not None:
                recorder().save_checkpoints([move], now=timezone.now())
        return done

    def handle_held(
        self,
        read_at: LogPoint,
        handled_before: list[LogPoint] | None,
        batch: list[RecordedEvent],
        *,
        one_by_one: bool = False,
        retry_transient: bool = False,
    ) -> tuple[_BatchDone | None, CheckpointMove | None]:
        """Handle a batch read at the locked checkpoint `read_at`: how it ended, and the
        checkpoint's move (None for both when the batch is empty)."""
        self._reached(read_at)
        if not batch:
            return None, None
        with tracing.span(
            "eventstore.subscriber_batch",
            {
                "eventstore.subscriber": self.subscriber.name,
                "eventstore.partition": self.partition,
                "eventstore.events": len(batch),
            },
        ) as span:
            done = _BatchDone(len(batch))
            if one_by_one:
                point, done.error, failed_position, done.again = _handle_batch(
                    self.subscriber,
                    batch,
                    self.result,
                    read_at,
                    handled_before,
                    retry_transient=retry_transient,
                )
            else:
                point, failed_position = self._handle_together(batch, read_at, handled_before)
            self._reached(point)
            tracing.set_attributes(span, **{"eventstore.error": done.error or None})
        if handled_before and point >= max(handled_before):
            handled_before = None  # past every point the previous partitions reached
        if done.error:
            self.result.error = done.error
        name = Checkpoint.name_for(self.subscriber.name, self.partition, self.partitions)
        move = CheckpointMove(name, read_at, point, handled_before, done.error, failed_position)
        return done, move

    def _handle_together(
        self, batch: list[RecordedEvent], read_at: LogPoint, handled_before: list[LogPoint] | None
    ) -> tuple[LogPoint, None]:
        """Handle the batch's events in order in the batch's transaction, with no savepoint
        (each command's `unit_of_work` joins it); the point reached (the last event). Raises
        _HandleOneByOne when an event fails or leaves the transaction marked for rollback, so
        that the batch's transaction is rolled back."""
        connection = transaction.get_connection()
        point, handled = read_at, 0
        if type(self.subscriber).handle_batch is not Subscriber.handle_batch:
            return self._hand_over(batch, read_at, handled_before)
        with joining_units():
            for event in batch:
                if not _handled_before(event, handled_before):
                    try:
                        with _handling(self.subscriber, event):
                            self.subscriber.handle(event)
                    except Exception as error:
                        raise _HandleOneByOne() from error
                    if connection.needs_rollback:
                        raise _HandleOneByOne()
                    handled += 1
                point = event.log_point
        self.result.handled += handled
        return point, None

    def _hand_over(
        self, batch: list[RecordedEvent], read_at: LogPoint, handled_before: list[LogPoint] | None
    ) -> tuple[LogPoint, None]:
        """Hand the batch's events to the subscriber's own `handle_batch` in one go (see
        `_handle_together`)."""
        events = [event for event in batch if not _handled_before(event, handled_before)]
        try:
            with joining_units():
                self.subscriber.handle_batch(events)
        except Exception as error:
            raise _HandleOneByOne() from error
        if transaction.get_connection().needs_rollback:
            raise _HandleOneByOne()
        self.result.handled += len(events)
        return (batch[-1].log_point if batch else read_at), None


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
        if not _handled_before(event, handled_before):
            try:
                with _handling(subscriber, event), transaction.atomic():
                    subscriber.handle(event)
            except Exception as error:
                # Each failed attempt counts, whether or not the batch's transaction commits.
                metrics.subscriber_errors.labels(subscriber=subscriber.name).inc()
                again = retry_transient and _transient(error)
                _report(subscriber, event, error, again=again)
                if again:
                    return point, "", None, True
                return point, f"{type(error).__name__}: {error}", event.position, False
            result.handled += 1
        point = event.log_point
        result.position = event.position
    return point, "", None, False


@contextmanager
def _handling(subscriber: Subscriber, event: RecordedEvent) -> Iterator[None]:
    """Around one event's handling: what the handler logs, and its failure, names the event and
    the subscriber; a span traces it in the event's trace."""
    with (
        event_log_context(subscriber.name, event),
        tracing.event_span(
            f"handle {event.event_type}", event, **{"eventstore.subscriber": subscriber.name}
        ),
    ):
        yield


def _report(subscriber: Subscriber, event: RecordedEvent, error: Exception, *, again: bool):
    """Log a handler's failure: a warning when the event is handled again at once (a transient
    failure), else the error with its traceback."""
    with event_log_context(subscriber.name, event):
        if again:
            logger.warning(
                "Subscriber %s met %s on event #%s (%s); it handles the event again in a new "
                "transaction",
                subscriber.name,
                type(error).__name__,
                event.position,
                event.event_type,
            )
            return
        logger.error(
            "Subscriber %s failed on event #%s (%s)",
            subscriber.name,
            event.position,
            event.event_type,
            exc_info=error,
        )


@dataclass(frozen=True)
class PartitionLag:
    """How far one partition of a subscriber is behind the log."""

    subscriber: str
    partition: int
    partitions: int
    events: int  # events it reads between its checkpoint and the followers' horizon
    last_error: str  # what stopped its last catch-up ("" for none)
    exact: bool = True  # False: `events` is an estimate, past `lags`' exact_up_to


def lags(
    names: Iterable[str] | None = None, *, exact_up_to: int | None = None
) -> list[PartitionLag]:
    """Every partition of every registered (or named) subscriber with its lag: one query per
    subscriber, no lock (for metrics, the health check and the admin). With `exact_up_to`, a
    lag past it is an estimate that costs no more to find (`partition_lags`)."""
    count = int(settings.EVENTSTORE_PARTITIONS)
    return [
        PartitionLag(subscriber.name, partition, count, events, error, exact)
        for subscriber in get_subscribers(names)
        for partition, (events, exact, error) in recorder()
        .partition_lags(subscriber.name, count, subscriber.event_types, exact_up_to=exact_up_to)
        .items()
    ]


def catch_up_all(names: Iterable[str] | None = None) -> list[CatchUpResult]:
    """Catch every registered (or every named) subscriber up with the log."""
    count = int(settings.EVENTSTORE_PARTITIONS)
    return [catch_up(subscriber, partitions=count) for subscriber in get_subscribers(names)]


def touched_partitions(
    subscriber: Subscriber, events: Iterable[RecordedEvent] | None, partitions: int
) -> set[int] | None:
    """Which of the subscriber's `partitions` partitions hold one of `events` it reads (None:
    every one)."""
    if events is None:
        return None
    return {
        event.partition(partitions) for event in events if subscriber.wants((event.event_type,))
    }


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
