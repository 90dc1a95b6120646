"""The statements on the events themselves: appending, reading a stream or loading an aggregate,
and reading and following the log."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any, NamedTuple

from django.db import OperationalError

from eventstore.models import Event
from eventstore.recorders.tables import (
    INSERT_CHUNK,
    RecorderBase,
    as_uuid,
    aware,
    current_connection,
    from_json,
)
from eventstore.records import LogPoint, RecordedEvent
from eventstore.upcasting import upcast

# Streams per version query: SQLite allows at most 500 terms in one compound SELECT.
_STREAMS_PER_QUERY = 200
_SNAPSHOT_MARK = "__snapshot__"


class EventRow(NamedTuple):
    """One event as `Recorder.insert` stores it: its fields name the columns written, values
    as the columns store them (`Recorder.db_uuid`, `db_datetime`; payload and metadata as JSON
    text). `transaction_id` is the one the stream's previous event was stored with."""

    event_id: Any
    aggregate_type: str
    aggregate_id: str
    version: int
    event_type: str
    schema_version: int
    payload: str
    metadata: str
    recorded_at: Any
    correlation_id: str
    partition_hash: int
    transaction_id: int


class StreamHead(NamedTuple):
    """A stream's highest stored version and the transaction id its event was stored with
    (0 and 0 for a stream with no events; the transaction id is always 0 on SQLite)."""

    version: int
    transaction_id: int


class EventRecorder(RecorderBase):
    """Appending and reading events, as SQLite runs the statements; `PostgresRecorder`
    overrides what PostgreSQL does otherwise."""

    # The placeholder of an appended event's transaction id (SQLite stores the one given: 0).
    transaction_id_mark = "%s"
    # How the ids query reads a stored event id back.
    stored_id = "{column}"

    def __init__(self) -> None:
        super().__init__()
        events = self.events
        # The columns every read of events selects: `RecordedEvent`'s fields, in their order.
        self._select_events = (
            f"SELECT {', '.join(events.columns(RecordedEvent._fields))} FROM {events}"
        )
        marks = {name: self._mark(Event._meta.get_field(name)) for name in EventRow._fields}
        marks["transaction_id"] = self.transaction_id_mark
        self._insert_values = f"({', '.join(marks.values())})"
        self._insert_head = f"INSERT INTO {events} ({', '.join(events.columns(marks))}) VALUES "
        self._insert_tail = (
            f" ON CONFLICT DO NOTHING RETURNING {events.position}, {events.event_id}, "
            f"{events.transaction_id}"
        )
        self._insert_sql: Callable[[int], str] = cache(self._build_insert_sql)
        self._stream_head = self._build_stream_head()

    # --- appending -----------------------------------------------------------------------------

    def _build_insert_sql(self, rows: int) -> str:
        return self._insert_head + ", ".join([self._insert_values] * rows) + self._insert_tail

    def insert(self, rows: Sequence[EventRow]) -> dict[Any, LogPoint]:
        """Insert the rows; return each inserted event id's LogPoint. A row that would break a
        unique key (stream version or event id) is skipped, not an error: it is missing from
        the result."""
        points: dict[Any, LogPoint] = {}
        with current_connection().cursor() as cursor:
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start : start + INSERT_CHUNK]
                cursor.execute(
                    self._insert_sql(len(chunk)), [value for row in chunk for value in row]
                )
                points.update(
                    (event_id, LogPoint(transaction_id, position))
                    for position, event_id, transaction_id in cursor.fetchall()
                )
        return points

    def _build_stream_head(self) -> str:
        # One row per stream: its highest version, by a scalar MAX that the database answers
        # with a single seek at the end of the (aggregate_type, aggregate_id, version) index. (A
        # GROUP BY over several streams read every event of each, so appends slowed down as
        # their streams grew.)
        e = self.events
        return (
            f"SELECT %s, %s, COALESCE((SELECT MAX({e.version}) FROM {e} "
            f"WHERE {e.aggregate_type} = %s AND {e.aggregate_id} = %s), 0), 0"
        )

    def _heads_sql(self, streams: Sequence[tuple[str, str]]) -> tuple[str, list[str]]:
        sql = " UNION ALL ".join([self._stream_head] * len(streams))
        return sql, [value for stream in streams for value in (*stream, *stream)]

    def _ids_sql(
        self, event_ids: Sequence[uuid.UUID], lock_timeout_ms: int | None
    ) -> tuple[str, list[Any]]:
        """The statement that reads which of these ids are stored, in the four columns of the
        heads statement, and its parameters."""
        e = self.events
        marks = ", ".join(["%s"] * len(event_ids))
        stored_id = self.stored_id.format(column=e.event_id)
        sql = f"SELECT {stored_id}, NULL, NULL, NULL FROM {e} WHERE {e.event_id} IN ({marks})"
        return sql, [self.db_uuid(event_id) for event_id in event_ids]

    def stored_ids_and_heads(
        self,
        event_ids: Sequence[uuid.UUID],
        streams: Sequence[tuple[str, str]],
        *,
        lock_timeout_ms: int | None = None,
    ) -> tuple[set[uuid.UUID], dict[tuple[str, str], StreamHead]]:
        """Which of these event ids are stored already, and the head of each
        (aggregate_type, aggregate_id): one statement. Where the database has one, with
        `lock_timeout_ms`, the same statement sets the transaction's lock timeout."""
        ids_sql, ids = self._ids_sql(event_ids, lock_timeout_ms)
        if len(streams) > _STREAMS_PER_QUERY:  # rare: a statement for the ids, then the heads
            with current_connection().cursor() as cursor:
                cursor.execute(ids_sql, ids)
                stored = {as_uuid(row[0]) for row in cursor.fetchall()}
            return stored, self.stream_heads(streams)
        heads_sql, params = self._heads_sql(streams)
        with current_connection().cursor() as cursor:
            cursor.execute(f"{heads_sql} UNION ALL {ids_sql}", params + ids)
            stored: set[uuid.UUID] = set()
            heads: dict[tuple[str, str], StreamHead] = {}
            for first, ident, version, transaction_id in cursor.fetchall():
                if version is None:
                    stored.add(as_uuid(first))
                else:
                    heads[(first, ident)] = StreamHead(version, transaction_id)
        return stored, heads

    def stream_heads(self, streams: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StreamHead]:
        """The head of each (aggregate_type, aggregate_id) (version 0: no events)."""
        streams = list(streams)
        heads = {}
        with current_connection().cursor() as cursor:
            for start in range(0, len(streams), _STREAMS_PER_QUERY):
                cursor.execute(*self._heads_sql(streams[start : start + _STREAMS_PER_QUERY]))
                heads.update(
                    ((kind, ident), StreamHead(version, transaction_id))
                    for kind, ident, version, transaction_id in cursor.fetchall()
                )
        return heads

    def hold_appends(self) -> None:
        """Inside a transaction, keep every appender waiting until it ends (SQLite's IMMEDIATE
        transactions hold the write lock already)."""

    def lock_appends(self, lock_timeout_ms: int) -> None:
        """Inside a transaction, make every other appender wait until it ends (SQLite's
        IMMEDIATE transactions hold the write lock from their start already)."""

    @staticmethod
    def is_lock_timeout(error: OperationalError) -> bool:
        """Whether the database refused a statement because it waited too long for a lock."""
        return False

    # --- reading events ------------------------------------------------------------------------

    def _recorded(self, row: Sequence[Any]) -> RecordedEvent:
        """The event of a row of `_select_events`, an old payload upcast on the way."""
        event = RecordedEvent._make(row)
        schema_version, payload = upcast(
            event.event_type, event.schema_version, from_json(event.payload)
        )
        return event._replace(
            event_id=as_uuid(event.event_id),
            schema_version=schema_version,
            payload=payload,
            metadata=from_json(event.metadata),
            recorded_at=aware(event.recorded_at),
        )

    def _read(
        self,
        where: str,
        params: Sequence[Any],
        order_by: str,
        limit: int | None = None,
        event_types: Iterable[str] | None = None,
        partition: tuple[int, int] | None = None,
    ) -> list[RecordedEvent]:
        """The events matching `where` (and of these types, of this (partition, partitions)),
        in `order_by` order."""
        filters, filter_params = self._filters(event_types, partition)
        params = [*params, *filter_params]
        sql = f"{self._select_events} WHERE {where}{filters} ORDER BY {order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with current_connection().cursor() as cursor:
            cursor.execute(sql, params)
            return [self._recorded(row) for row in cursor.fetchall()]

    def read_stream(
        self, aggregate_type: str, aggregate_id: str, after_version: int
    ) -> list[RecordedEvent]:
        """The events of one stream after `after_version`, in version order."""
        e = self.events
        return self._read(
            f"{e.aggregate_type} = %s AND {e.aggregate_id} = %s AND {e.version} > %s",
            [aggregate_type, aggregate_id, after_version],
            e.version,
        )

    def read_page(
        self,
        after_position: int,
        limit: int,
        event_types: Iterable[str] | None,
        partition: tuple[int, int] | None,
    ) -> list[RecordedEvent]:
        """At most `limit` events after `after_position` (of these types, of this
        (partition, partitions)), in position order."""
        e = self.events
        position = e.position
        return self._read(
            f"{position} > %s", [after_position], position, limit, event_types, partition
        )

    def read_new(
        self,
        after: LogPoint,
        limit: int,
        event_types: Iterable[str] | None,
        partition: tuple[int, int] | None,
    ) -> list[RecordedEvent]:
        """At most `limit` events a follower at `after` reads next (of these types, of this
        (partition, partitions)), in the order followers read the log in."""
        return self._read(
            self.follow_condition(),
            self.follow_params(after),
            self.follow_order(),
            limit,
            event_types,
            partition,
        )

    def count_after(self, after_position: int, event_types: Iterable[str] | None) -> int:
        """How many events lie after `after_position` (of these types)."""
        e = self.events
        types, params = self._types_condition(event_types)
        with current_connection().cursor() as cursor:
            sql = f"SELECT COUNT(*) FROM {e} WHERE {e.position} > %s{types}"
            cursor.execute(sql, [after_position, *params])
            return cursor.fetchone()[0]

    def last_position(self) -> int:
        """The highest position stored (0 for an empty log)."""
        e = self.events
        with current_connection().cursor() as cursor:
            cursor.execute(f"SELECT COALESCE(MAX({e.position}), 0) FROM {e}")
            return cursor.fetchone()[0]

    def read_correlated(self, correlation_id: str) -> list[RecordedEvent]:
        """Every event of this correlation id, in position order."""
        e = self.events
        return self._read(f"{e.correlation_id} = %s", [correlation_id], e.position)

    def read_ids(self, event_ids: Sequence[uuid.UUID]) -> list[RecordedEvent]:
        """The stored events with these ids, in position order."""
        e = self.events
        marks = ", ".join(["%s"] * len(event_ids))
        return self._read(
            f"{e.event_id} IN ({marks})", [self.db_uuid(i) for i in event_ids], e.position
        )

    def stream_for_load(
        self, aggregate_type: str, aggregate_id: str, state_version: int | None
    ) -> tuple[tuple[int, Any] | None, list[tuple[int, str, int, Any]]]:
        """What loading an aggregate reads, in one query: its snapshot in `state_version`'s
        format ((version, state); None when there is none or `state_version` is None) and the
        (version, event_type, schema_version, payload) of each event after it, in version
        order."""
        e, s = self.events, self.snapshots
        events = (
            f"SELECT {e.version}, {e.event_type}, {e.schema_version}, {e.payload} FROM {e} "
            f"WHERE {e.aggregate_type} = %s AND {e.aggregate_id} = %s"
        )
        if state_version is None:
            sql, params = f"{events} ORDER BY {e.version}", [aggregate_type, aggregate_id]
        else:
            snapshot = (
                f"FROM {s} WHERE {s.aggregate_type} = %s AND {s.aggregate_id} = %s "
                f"AND {s.state_version} = %s"
            )
            key = (aggregate_type, aggregate_id, state_version)
            sql = (
                f"SELECT {s.version}, %s, NULL, {s.state} {snapshot} UNION ALL {events} "
                f"AND {e.version} > COALESCE((SELECT {s.version} {snapshot}), 0) ORDER BY 1"
            )
            params = [_SNAPSHOT_MARK, *key, aggregate_type, aggregate_id, *key]
        with current_connection().cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        snapshot_row = None
        if rows and rows[0][1] == _SNAPSHOT_MARK:
            snapshot_row = (rows[0][0], from_json(rows[0][3]))
            rows = rows[1:]
        return snapshot_row, [
            (version, event_type, schema, from_json(payload))
            for version, event_type, schema, payload in rows
        ]

    def _filters(
        self, event_types: Iterable[str] | None, partition: tuple[int, int] | None
    ) -> tuple[str, list[str]]:
        """`AND` clauses keeping events of these types and of this (partition, partitions)."""
        types, params = self._types_condition(event_types)
        if partition is not None:
            types += self._partition_condition(*partition)
        return types, params

    def _types_condition(self, event_types: Iterable[str] | None) -> tuple[str, list[str]]:
        """An `AND event_type IN (...)` clause and its parameters (nothing for None)."""
        if event_types is None:
            return "", []
        event_types = list(event_types)
        if not event_types:
            return " AND 1 = 0", []
        marks = ", ".join(["%s"] * len(event_types))
        return f" AND {self.events.event_type} IN ({marks})", event_types

    def _partition_condition(self, partition: int, partitions: int) -> str:
        """An `AND` clause that keeps the events of one partition (nothing when there is one)."""
        if partitions == 1:
            return ""
        return f" AND {self.events.partition_hash} %% {int(partitions)} = {int(partition)}"

    # --- following the log ---------------------------------------------------------------------

    def follow_condition(self, transaction_id: str = "%s", position: str = "%s") -> str:
        """An SQL condition on the events table: events a follower at the point
        (`transaction_id`, `position`) (SQL expressions: parameters by default) reads next, in
        `follow_order()`. Here the log is followed by position alone (`follow_params`)."""
        return f"{self.events.position} > {position}"

    def follow_params(self, point: LogPoint) -> list[int]:
        """The parameters of `follow_condition()` for a follower at `point`."""
        return [point.position]

    def follow_order(self) -> str:
        """The ORDER BY of the order followers read the log in."""
        return self.events.position

    def followable(self, transaction_id: int) -> bool:
        """Whether followers can read events stored with `transaction_id` now (always, where
        the single writer commits positions in order)."""
        return True

    def horizon(self) -> dict[str, Any] | None:
        """How far followers are held back by running transactions (None: never held back)."""
        return None
