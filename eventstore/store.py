"""The EventStore API: append to one or several streams atomically, and read the log back.

Guarantees:
- A stream's versions run 1, 2, 3 ...; an append states the version it expects the stream to be
  at and fails with `ConcurrencyError` (nothing written) when another writer got there first.
- One `append` call is one transaction: every stream in it is written, or none.
- Appending an event whose `event_id` is already stored writes nothing (safe retries).
- Followers (`read_new`) read the log in `LogPoint` order, (transaction id, position), and
  never later find a committed event before a point they have passed: on PostgreSQL appends
  run concurrently and an event is read only once every transaction that could sort before it
  has ended (see `PostgresRecorder.follow_condition`); SQLite serialises writers with IMMEDIATE
  transactions, so there the order is the position's. A stream's events are read in version
  order. Positions may have gaps (a rolled-back insert), so never assume they are contiguous,
  and on PostgreSQL they are not commit order: follow by `LogPoint`, not by position.
- A writer that waits longer than the database allows (PostgreSQL's lock_timeout,
  EVENTSTORE_LOCK_TIMEOUT_MS: behind a replay holding the log, or another writer of the same
  stream version; SQLite's busy timeout) fails with `AppendTimeout`, nothing written.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from eventstore import signals
from eventstore.observability import metrics, tracing
from eventstore.recorders import Appended, NewRow, StreamRows, recorder
from eventstore.recorders.connections import on_commit_robust
from eventstore.records import LogPoint, RecordedEvent, partition_hash, stored_correlation_id
from eventstore.upcasting import current_schema_version, upcast

logger = logging.getLogger(__name__)


class AppendTimeout(OperationalError):
    """A writer waited for a lock longer than the database allows; nothing was written, and the
    same request may be made again."""


# How many writes this process has seen give up on the lock (a metric, once there are metrics).
_append_timeouts = itertools.count(1)


def raise_append_timeouts(execute, sql, params, many, context):
    """Execute wrapper: a statement the database gave up on after its lock timeout raises
    `AppendTimeout`. Both databases time out only where events are written (SQLite on its write
    lock; PostgreSQL's lock_timeout is set only in transactions that append)."""
    try:
        return execute(sql, params, many, context)
    except OperationalError as error:
        if isinstance(error, AppendTimeout) or not recorder(context["connection"]).is_lock_timeout(
            error
        ):
            raise
        logger.warning(
            "A write gave up waiting for the event log's lock (%d in this process): %s",
            next(_append_timeouts),
            error,
        )
        raise AppendTimeout(str(error)) from error


def install_append_timeouts(sender, connection, **kwargs) -> None:
    """connection_created receiver: wrap every statement of the new connection with
    `raise_append_timeouts` (first in the list: outside any wrapper a caller adds later)."""
    if raise_append_timeouts not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, raise_append_timeouts)


class ConcurrencyError(Exception):
    """A stream was not at the version the writer expected; nothing was written."""

    def __init__(self, aggregate_type: str, aggregate_id: str, expected: int, actual: int):
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{aggregate_type}/{aggregate_id}: expected version {expected}, actual version {actual}"
        )


@dataclass(frozen=True)
class NewEvent:
    """An event to append. `schema_version=None` writes the event type's newest schema version."""

    event_type: str
    payload: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    schema_version: int | None = None


@dataclass(frozen=True)
class StreamAppend:
    """The events to add to one stream. `expected_version=None` appends without a version check."""

    aggregate_type: str
    aggregate_id: str
    events: Sequence[NewEvent]
    expected_version: int | None = None


def as_json_data(value: dict[str, Any], what: str = "payload") -> dict[str, Any]:
    """Return `value` exactly as it will read back from the database (Decimal -> str, ...)."""
    return json.loads(_json_text(value, what))


def _json_text(value: dict[str, Any], what: str) -> str:
    """`value` as the JSON text stored for it."""
    if not isinstance(value, dict):
        raise TypeError(f"Event {what} must be a dict, got {type(value).__name__}")
    return json.dumps(value, cls=DjangoJSONEncoder)


# Events per append statement at most: a larger append is written in pieces of this many.
APPEND_CHUNK = 1000


class _Piece(NamedTuple):
    """A run of one stream's rows: the stream's place in the append, the run's first row's
    place in the stream's rows, and the rows."""

    stream: int
    start: int
    rows: StreamRows


def _row(
    aggregate_type: str,
    aggregate_id: str,
    event: NewEvent,
    trace_context: dict[str, str],
    now: datetime,
    stored_now: Any,
) -> tuple[NewRow, RecordedEvent]:
    """One event's row, and the event readers will see: payload and metadata exactly as they
    will read back, the metadata with `trace_context` (the appending span's, replacing one
    copied forward)."""
    payload_text = _json_text(event.payload, "payload")
    metadata = event.metadata
    if trace_context and isinstance(metadata, dict):
        metadata = {**metadata, **trace_context}
    metadata_text = _json_text(metadata, "metadata")
    metadata = json.loads(metadata_text)
    schema_version = event.schema_version or current_schema_version(event.event_type)
    row = NewRow(
        event_id=recorder().db_uuid(event.event_id),
        event_type=event.event_type,
        schema_version=schema_version,
        payload=payload_text,
        metadata=metadata_text,
        recorded_at=stored_now,
        correlation_id=stored_correlation_id(metadata),
        partition_hash=partition_hash(metadata, aggregate_id),
    )
    # What readers of the log will see: an event appended at an older schema version (an
    # import, a replayed export) reaches projections upcast.
    read_schema, payload = upcast(event.event_type, schema_version, json.loads(payload_text))
    seen = RecordedEvent(
        position=0,
        event_id=event.event_id,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        version=0,
        event_type=event.event_type,
        schema_version=read_schema,
        payload=payload,
        metadata=metadata,
        recorded_at=now,
    )
    return row, seen


def _chunks(pieces: list[_Piece]) -> Iterator[list[_Piece]]:
    """The pieces in runs of at most APPEND_CHUNK rows, a stream split where it must be."""
    chunk: list[_Piece] = []
    room = APPEND_CHUNK
    for piece in pieces:
        start = 0
        while start < len(piece.rows.rows):
            rows = piece.rows.rows[start : start + room]
            chunk.append(_Piece(piece.stream, start, piece.rows._replace(rows=rows)))
            start += len(rows)
            room -= len(rows)
            if not room:
                yield chunk
                chunk, room = [], APPEND_CHUNK
    if chunk:
        yield chunk


# For events about to be appended, the calls to the outside world they owe: (subscriber name,
# event id) each (`eventstore.follower.dispatch.calls_owed`, given when the app is ready).
CallsOwed = Callable[[Sequence[RecordedEvent]], list[tuple[str, uuid.UUID]]]


class EventStore:
    """Append to and read from the single event log table."""

    def __init__(self) -> None:
        self.calls_owed: CallsOwed | None = None

    # --- writing -------------------------------------------------------------------------------

    def append(self, *streams: StreamAppend) -> list[RecordedEvent]:
        """Append to every stream in one transaction, checking each expected version.

        Returns the recorded events in position order. Events whose ids are already stored are
        not written again; when that leaves nothing to write, the stored events are returned.
        While a span is active (tracing on), each event's metadata carries its trace context.
        """
        self._validate(streams)
        if not tracing.enabled():
            return self._append(streams, {})
        attributes = {
            "eventstore.streams": [f"{s.aggregate_type}/{s.aggregate_id}" for s in streams],
            "eventstore.event_count": sum(len(stream.events) for stream in streams),
        }
        with tracing.span("eventstore.append", attributes):
            return self._append(streams, tracing.trace_context())

    def _append(
        self, streams: Sequence[StreamAppend], trace_context: dict[str, str]
    ) -> list[RecordedEvent]:
        # Inside a caller's transaction the append takes no savepoint: a refused append writes
        # nothing, and once anything was written, a failure marks the caller's transaction for
        # rollback (`_write`), so none of it can commit.
        if transaction.get_connection().in_atomic_block:
            return self._append_in_transaction(streams, trace_context)
        with transaction.atomic():
            return self._append_in_transaction(streams, trace_context)

    def _append_in_transaction(
        self, streams: Sequence[StreamAppend], trace_context: dict[str, str]
    ) -> list[RecordedEvent]:
        if settings.EVENTSTORE_APPEND_LOCK:
            self.lock_appends()
        recorded, written = self._write(streams, trace_context)
        if not written:  # every event was stored already: nothing new to tell anyone
            return recorded
        try:
            signals.events_recorded.send(sender=EventStore, events=recorded)
        except BaseException:
            # A projection failed: the events it was given must not commit without it.
            transaction.set_rollback(True)
            raise
        # Counted once committed: a rolled-back append (and its retry) counts once.
        on_commit_robust(metrics.count_appended, recorded)
        if settings.EVENTSTORE_DISPATCH_ON_COMMIT:
            on_commit_robust(signals.events_committed.send, sender=EventStore, events=recorded)
        return recorded

    def append_to_stream(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | None = None,
    ) -> list[RecordedEvent]:
        """Append `events` to one stream (see `append`)."""
        return self.append(StreamAppend(aggregate_type, aggregate_id, events, expected_version))

    @staticmethod
    def hold_appends() -> None:
        """Inside a transaction, keep every appender waiting until it ends (for consistent replays).

        SQLite's IMMEDIATE transactions already hold the write lock; PostgreSQL takes a SHARE
        lock on the log, which readers pass and appenders wait for.
        """
        recorder().hold_appends()

    @staticmethod
    def _validate(streams: Sequence[StreamAppend]) -> None:
        if not streams:
            raise ValueError("append needs at least one stream")
        seen_streams = set()
        seen_ids = set()
        for stream in streams:
            key = (stream.aggregate_type, stream.aggregate_id)
            if not stream.aggregate_type or not stream.aggregate_id:
                raise ValueError("aggregate_type and aggregate_id must not be empty")
            if key in seen_streams:
                raise ValueError(f"stream {key[0]}/{key[1]} appears twice in one append")
            seen_streams.add(key)
            if not stream.events:
                raise ValueError(f"stream {key[0]}/{key[1]} has no events to append")
            if stream.expected_version is not None and stream.expected_version < 0:
                raise ValueError("expected_version must be >= 0")
            for event in stream.events:
                if not event.event_type:
                    raise ValueError("event_type must not be empty")
                if event.event_id in seen_ids:
                    raise ValueError(f"event_id {event.event_id} appears twice in one append")
                seen_ids.add(event.event_id)

    @staticmethod
    def lock_appends() -> None:
        """Inside a transaction, make every other appender wait until it ends.

        A command retried after a ConcurrencyError takes it before loading, to decide and
        append with no writer in between (`retry_on_conflict`). Appends run concurrently
        otherwise; with EVENTSTORE_APPEND_LOCK each takes it too (the design before concurrent
        appends, kept for the benchmark's comparison). On PostgreSQL it is the log table's
        EXCLUSIVE lock, which readers pass; SQLite's IMMEDIATE transactions hold the write lock
        from their start already.
        """
        recorder().lock_appends(int(settings.EVENTSTORE_LOCK_TIMEOUT_MS))

    @staticmethod
    def _without_stored(
        streams: Sequence[StreamAppend], stored_ids: set[uuid.UUID]
    ) -> list[StreamAppend]:
        """Drop already-stored events; a stream left with none is dropped with its version check."""
        remaining = []
        for stream in streams:
            events = [event for event in stream.events if event.event_id not in stored_ids]
            if events:
                remaining.append(
                    StreamAppend(
                        stream.aggregate_type, stream.aggregate_id, events, stream.expected_version
                    )
                )
        return remaining

    def _write(
        self, streams: Sequence[StreamAppend], trace_context: dict[str, str]
    ) -> tuple[list[RecordedEvent], bool]:
        """Write the streams' events (see `append`): the recorded events in position order, and
        whether any was written (False: every one was stored already, and these are they).

        Most appends are one statement (`Recorder.append`). One of more than APPEND_CHUNK
        events is written in pieces of at most that many; a piece after the first that cannot
        be written fails the whole append (the transaction is marked for rollback).
        """
        pieces, recorded = self._rows(streams, trace_context)
        owed = self._owed(recorded)
        reached: dict[int, int] = {}  # stream (by index) -> the version its last piece reached
        done: list[RecordedEvent] = []
        for number, chunk in enumerate(_chunks(pieces)):
            rows = [
                piece.rows
                if piece.start == 0
                else piece.rows._replace(expected_version=reached[piece.stream])
                for piece in chunk
            ]
            in_chunk = {row.event_id for piece in rows for row in piece.rows}
            outcome = recorder().append(
                rows,
                lock_timeout_ms=int(settings.EVENTSTORE_LOCK_TIMEOUT_MS),
                owed=[(name, event_id) for name, event_id in owed if event_id in in_chunk],
            )
            if outcome.refused and number == 0:
                return self._refused(streams, outcome, trace_context)
            wanted = sum(len(piece.rows.rows) for piece in chunk)
            if len(outcome.points) < wanted:
                error = self._conflict(streams, outcome.points)
                if done or outcome.points:
                    # Rows of this append went in before the shortfall was found: none may commit.
                    transaction.set_rollback(True)
                raise error
            for piece in chunk:
                for row in piece.rows.rows:
                    position, transaction_id, version = outcome.points[row.event_id]
                    reached[piece.stream] = version
                    done.append(
                        recorded[row.event_id]._replace(
                            position=position, version=version, transaction_id=transaction_id
                        )
                    )
        return done, True

    def _owed(self, recorded: dict[Any, RecordedEvent]) -> list[tuple[str, Any]]:
        """The calls the events owe, by (subscriber name, event id as the column stores it)."""
        if self.calls_owed is None:
            return []
        stored_ids = {event.event_id: key for key, event in recorded.items()}
        return [
            (name, stored_ids[event_id])
            for name, event_id in self.calls_owed(list(recorded.values()))
        ]

    def _refused(
        self, streams: Sequence[StreamAppend], outcome: Appended, trace_context: dict[str, str]
    ) -> tuple[list[RecordedEvent], bool]:
        """An append the store refused, having written nothing: return the stored events when
        every one is stored already, append the others when only some are (each stream still
        at its expected version), else raise the ConcurrencyError of the first stream that was
        not at the version expected."""
        wanted = [event.event_id for stream in streams for event in stream.events]
        stored = outcome.stored or set()
        if stored.issuperset(wanted):
            return recorder().read_ids(wanted), False
        if stored:
            return self._write(self._without_stored(streams, stored), trace_context)
        for stream in streams:
            actual = outcome.heads.get((stream.aggregate_type, str(stream.aggregate_id)), 0)
            if stream.expected_version is not None and stream.expected_version != actual:
                raise ConcurrencyError(
                    stream.aggregate_type, stream.aggregate_id, stream.expected_version, actual
                )
        raise IntegrityError("the append was refused, yet every version and event id allowed it")

    @staticmethod
    def _rows(
        streams: Sequence[StreamAppend], trace_context: dict[str, str]
    ) -> tuple[list[_Piece], dict[Any, RecordedEvent]]:
        """The rows to insert, a piece per stream, and for each row (by its stored event id)
        the event readers will see, its position, version and transaction id still to come
        from the insert."""
        now = timezone.now()
        stored_now = recorder().db_datetime(now)
        pieces = []
        recorded = {}
        for number, stream in enumerate(streams):
            aggregate_type, aggregate_id = stream.aggregate_type, str(stream.aggregate_id)
            rows = []
            for event in stream.events:
                row, seen = _row(
                    aggregate_type, aggregate_id, event, trace_context, now, stored_now
                )
                rows.append(row)
                recorded[row.event_id] = seen
            moved = StreamRows(aggregate_type, aggregate_id, stream.expected_version, rows)
            pieces.append(_Piece(number, 0, moved))
        return pieces, recorded

    @staticmethod
    def _conflict(streams: Sequence[StreamAppend], inserted: dict[Any, Any]) -> Exception:
        """The error for rows the insert skipped because another writer appended meanwhile:
        the ConcurrencyError of the stream that moved on, else an IntegrityError (an event id
        stored meanwhile)."""
        ours = Counter(
            (stream.aggregate_type, str(stream.aggregate_id))
            for stream in streams
            for event in stream.events
            if recorder().db_uuid(event.event_id) in inserted
        )
        now = recorder().stream_versions(
            (stream.aggregate_type, str(stream.aggregate_id)) for stream in streams
        )
        for stream in streams:
            key = (stream.aggregate_type, str(stream.aggregate_id))
            others = now.get(key, 0) - ours[key]
            assumed = stream.expected_version
            if assumed is not None and others != assumed:
                return ConcurrencyError(*key, assumed, others)
        return IntegrityError("an event id of this append was stored by another writer meanwhile")

    # --- reading -------------------------------------------------------------------------------

    def read_stream(
        self, aggregate_type: str, aggregate_id: str, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        """The events of one stream after `after_version`, in version order."""
        return recorder().read_stream(aggregate_type, str(aggregate_id), after_version)

    def read_for_load(
        self, *streams: tuple[str, str, int | None]
    ) -> list[tuple[tuple[int, Any] | None, list[tuple[int, str, dict[str, Any]]]]]:
        """What loading aggregates needs, in one query: for each (aggregate_type,
        aggregate_id, state_version), its snapshot in `state_version`'s format ((version,
        state), or None; never looked for when `state_version` is None) and the (version,
        event_type, upcast payload) of every event after it."""
        loaded = recorder().streams_for_load(
            [
                (aggregate_type, str(aggregate_id), state)
                for aggregate_type, aggregate_id, state in streams
            ]
        )
        return [
            (
                snapshot,
                [
                    (version, event_type, upcast(event_type, schema, payload)[1])
                    for version, event_type, schema, payload in rows
                ],
            )
            for snapshot, rows in loaded
        ]

    def stream_version(self, aggregate_type: str, aggregate_id: str) -> int:
        """The stream's current version (0 for a stream with no events)."""
        stream = (aggregate_type, str(aggregate_id))
        return recorder().stream_versions([stream])[stream]

    def read_page(
        self,
        *,
        after_position: int = 0,
        limit: int | None = None,
        event_types: Iterable[str] | None = None,
        partition: tuple[int, int] | None = None,
    ) -> list[RecordedEvent]:
        """At most `limit` events after `after_position`, in position order; only those of
        one partition when `partition` is (partition, partitions).

        Position order is not commit order on PostgreSQL: paging by position is complete only
        while appends are held (`hold_appends`, as replays do). A follower uses `read_new`."""
        limit = limit or settings.EVENTSTORE_BATCH_SIZE
        return recorder().read_page(after_position, limit, event_types, partition)

    def read_new(
        self,
        after: LogPoint,
        *,
        limit: int | None = None,
        event_types: Iterable[str] | None = None,
        partition: tuple[int, int] | None = None,
    ) -> list[RecordedEvent]:
        """For a follower at `after`: at most `limit` events after it, in `LogPoint` order, that
        no event committed later can sort before (see the module's guarantees); only those of
        one partition when `partition` is (partition, partitions)."""
        limit = limit or settings.EVENTSTORE_BATCH_SIZE
        return recorder().read_new(after, limit, event_types, partition)

    def read_all(
        self,
        *,
        after_position: int = 0,
        event_types: Iterable[str] | None = None,
        batch_size: int | None = None,
    ) -> Iterator[RecordedEvent]:
        """Every event after `after_position` in position order, one batch in memory at a time."""
        batch_size = batch_size or settings.EVENTSTORE_BATCH_SIZE
        event_types = None if event_types is None else list(event_types)
        while True:
            page = self.read_page(
                after_position=after_position, limit=batch_size, event_types=event_types
            )
            yield from page
            if len(page) < batch_size:
                return
            after_position = page[-1].position

    def read_by_type(
        self, *event_types: str, after_position: int = 0, batch_size: int | None = None
    ) -> Iterator[RecordedEvent]:
        """Every event of the given types in position order (see `read_all`)."""
        return self.read_all(
            after_position=after_position, event_types=event_types, batch_size=batch_size
        )

    def read_correlated(self, correlation_id: str) -> list[RecordedEvent]:
        """Every event whose metadata names this correlation id (e.g. one order), in position
        order, across all streams."""
        return recorder().read_correlated(str(correlation_id))

    def count(self, *, after_position: int = 0, event_types: Iterable[str] | None = None) -> int:
        """How many events `read_all` with the same arguments would yield."""
        return recorder().count_after(after_position, event_types)

    def get(self, event_id: uuid.UUID) -> RecordedEvent | None:
        """The stored event with this id, or None."""
        found = recorder().read_ids([event_id])
        return found[0] if found else None

    def last_position(self) -> int:
        """The highest position stored (0 for an empty log)."""
        return recorder().last_position()


event_store = EventStore()
