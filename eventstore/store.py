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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from eventstore import metrics, signals, tracing
from eventstore.recorders import EventRow, StreamHead, recorder
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


class EventStore:
    """Append to and read from the single event log table."""

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
        with transaction.atomic():
            if settings.EVENTSTORE_APPEND_LOCK:
                self.lock_appends()
            wanted_ids = [event.event_id for stream in streams for event in stream.events]
            # Any lock wait of this transaction (behind a replay holding the log, or another
            # writer of the same stream version) gives up after EVENTSTORE_LOCK_TIMEOUT_MS as
            # `AppendTimeout`: the look sets lock_timeout on PostgreSQL.
            stored_ids, heads = recorder().stored_ids_and_heads(
                wanted_ids,
                [(stream.aggregate_type, str(stream.aggregate_id)) for stream in streams],
                lock_timeout_ms=int(settings.EVENTSTORE_LOCK_TIMEOUT_MS),
            )
            current = {key: head.version for key, head in heads.items()}
            if stored_ids:
                if stored_ids.issuperset(wanted_ids):
                    return recorder().read_ids(wanted_ids)
                streams = self._without_stored(streams, stored_ids)
            for stream in streams:
                actual = current.get((stream.aggregate_type, str(stream.aggregate_id)), 0)
                if stream.expected_version is not None and stream.expected_version != actual:
                    raise ConcurrencyError(
                        stream.aggregate_type, stream.aggregate_id, stream.expected_version, actual
                    )
            rows, recorded = self._rows(streams, heads, trace_context)
            # A row that breaks a unique key is skipped, not an error, so no savepoint is
            # needed to keep the transaction usable: another writer appended to the stream
            # since it was read above, or stored one of these event ids.
            points = recorder().insert(rows)
            if len(points) < len(rows):
                self._raise_conflict(streams, current, rows, points)
            recorded = [
                event._replace(
                    position=points[row.event_id].position,
                    transaction_id=points[row.event_id].transaction_id,
                )
                for row, event in zip(rows, recorded, strict=True)
            ]
            signals.events_recorded.send(sender=EventStore, events=recorded)
            # Counted once committed: a rolled-back append (and its retry) counts once.
            transaction.on_commit(partial(metrics.count_appended, recorded), robust=True)
            if settings.EVENTSTORE_DISPATCH_ON_COMMIT:
                transaction.on_commit(
                    partial(signals.events_committed.send, sender=EventStore, events=recorded),
                    robust=True,
                )
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

    @staticmethod
    def _current_versions(streams: Iterable[StreamAppend]) -> dict[tuple[str, str], int]:
        heads = recorder().stream_heads(
            (stream.aggregate_type, str(stream.aggregate_id)) for stream in streams
        )
        return {key: head.version for key, head in heads.items()}

    @staticmethod
    def _rows(
        streams: Sequence[StreamAppend],
        heads: dict[tuple[str, str], StreamHead],
        trace_context: dict[str, str],
    ) -> tuple[list[EventRow], list[RecordedEvent]]:
        """The rows to insert, and for each the event readers will see (its position and
        transaction id still to come from the insert): payload and metadata exactly as they
        will read back, the metadata with `trace_context` (the appending span's, replacing one
        copied forward)."""
        now = timezone.now()
        stored_now = recorder().db_datetime(now)
        db_uuid = recorder().db_uuid
        rows = []
        recorded = []
        for stream in streams:
            kind, ident = stream.aggregate_type, str(stream.aggregate_id)
            version, head_transaction_id = heads.get((kind, ident), (0, 0))
            for event in stream.events:
                version += 1
                payload_text = _json_text(event.payload, "payload")
                metadata = event.metadata
                if trace_context and isinstance(metadata, dict):
                    metadata = {**metadata, **trace_context}
                metadata_text = _json_text(metadata, "metadata")
                metadata = json.loads(metadata_text)
                schema_version = event.schema_version or current_schema_version(event.event_type)
                place = {
                    "aggregate_type": kind,
                    "aggregate_id": ident,
                    "version": version,
                    "event_type": event.event_type,
                }
                rows.append(
                    EventRow(
                        event_id=db_uuid(event.event_id),
                        **place,
                        schema_version=schema_version,
                        payload=payload_text,
                        metadata=metadata_text,
                        recorded_at=stored_now,
                        correlation_id=stored_correlation_id(metadata),
                        partition_hash=partition_hash(metadata, ident),
                        transaction_id=head_transaction_id,
                    )
                )
                # What readers of the log will see: an event appended at an older schema
                # version (an import, a replayed export) reaches projections upcast.
                read_schema, payload = upcast(
                    event.event_type, schema_version, json.loads(payload_text)
                )
                recorded.append(
                    RecordedEvent(
                        position=0,
                        event_id=event.event_id,
                        **place,
                        schema_version=read_schema,
                        payload=payload,
                        metadata=metadata,
                        recorded_at=now,
                    )
                )
        return rows, recorded

    def _raise_conflict(
        self,
        streams: Sequence[StreamAppend],
        assumed: dict[tuple[str, str], int],
        rows: Sequence[EventRow],
        inserted: dict[Any, LogPoint],
    ) -> None:
        """Raise for rows the insert skipped: the ConcurrencyError of the stream that moved on,
        else an IntegrityError (an event id stored meanwhile). The append's own transaction or
        savepoint undoes the rows that were inserted."""
        ours = Counter(
            (row.aggregate_type, row.aggregate_id) for row in rows if row.event_id in inserted
        )
        now = self._current_versions(streams)
        for stream in streams:
            key = (stream.aggregate_type, str(stream.aggregate_id))
            others = now.get(key, 0) - ours[key]
            if others != assumed.get(key, 0):
                raise ConcurrencyError(*key, assumed.get(key, 0), others)
        raise IntegrityError("an event id of this append was stored by another writer meanwhile")

    # --- reading -------------------------------------------------------------------------------

    def read_stream(
        self, aggregate_type: str, aggregate_id: str, *, after_version: int = 0
    ) -> list[RecordedEvent]:
        """The events of one stream after `after_version`, in version order."""
        return recorder().read_stream(aggregate_type, str(aggregate_id), after_version)

    def read_for_load(
        self, aggregate_type: str, aggregate_id: str, *, state_version: int | None = None
    ) -> tuple[tuple[int, Any] | None, list[tuple[int, str, dict[str, Any]]]]:
        """What loading an aggregate needs, in one query: its snapshot in `state_version`'s
        format ((version, state), or None; never looked for when `state_version` is None) and
        the (version, event_type, upcast payload) of every event after it."""
        snapshot, rows = recorder().stream_for_load(
            aggregate_type, str(aggregate_id), state_version
        )
        return snapshot, [
            (version, event_type, upcast(event_type, schema, payload)[1])
            for version, event_type, schema, payload in rows
        ]

    def stream_version(self, aggregate_type: str, aggregate_id: str) -> int:
        """The stream's current version (0 for a stream with no events)."""
        stream = (aggregate_type, str(aggregate_id))
        return recorder().stream_heads([stream])[stream].version

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
