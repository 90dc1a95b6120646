"""The statements on the events themselves: appending, reading a stream or loading an aggregate,
and reading and following the log."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from django.db import OperationalError

from eventstore.models import Event, Stream
from eventstore.recorders.tables import (
    INSERT_CHUNK,
    RecorderBase,
    as_uuid,
    aware,
    current_connection,
    from_json,
    written_fields,
)
from eventstore.records import LogPoint, RecordedEvent
from eventstore.upcasting import upcast

# Streams per version query: SQLite allows at most 500 terms in one compound SELECT.
_STREAMS_PER_QUERY = 200
_SNAPSHOT_MARK = "__snapshot__"


class NewRow(NamedTuple):
    """One event to append, its values as the columns store them (`Recorder.db_uuid`,
    `db_datetime`; payload and metadata as JSON text). Its stream, version and transaction id
    are the append's to give (`StreamRows`)."""

    event_id: Any
    event_type: str
    schema_version: int
    payload: str
    metadata: str
    recorded_at: Any
    correlation_id: str
    partition_hash: int


class StreamRows(NamedTuple):
    """The rows to append to one stream, after the version `expected_version` (None: after
    whatever version the stream is at)."""

    aggregate_type: str
    aggregate_id: str
    expected_version: int | None
    rows: Sequence[NewRow]


class Appended(NamedTuple):
    """What one append statement did. `points` holds each inserted event id (as the column
    stores it) with its (position, transaction id, version); a row that would have broken a
    unique key, because another writer appended meanwhile, is missing from it. When the append
    was refused before writing anything, `stored` holds the ids stored already and `heads`
    each stream's version, and `points` is empty."""

    points: dict[Any, tuple[int, int, int]]
    stored: set[uuid.UUID] | None = None
    heads: dict[tuple[str, str], int] | None = None

    @property
    def refused(self) -> bool:
        """Whether nothing was written because a version or an event id did not allow it."""
        return self.heads is not None


class EventRecorder(RecorderBase):
    """Appending and reading events, as SQLite runs the statements; `PostgresRecorder`
    overrides what PostgreSQL does otherwise."""

    def __init__(self) -> None:
        super().__init__()
        events = self.events
        # The columns every read of events selects: `RecordedEvent`'s fields, in their order.
        self._select_events = (
            f"SELECT {', '.join(events.columns(RecordedEvent._fields))} FROM {events}"
        )
        # The append statement for each layout (rows per stream), built the first time.
        self._append_sql: Callable[[tuple[int, ...]], str] = cache(self._build_append_sql)
        self._stream_head = self._build_stream_head()

    # --- appending -----------------------------------------------------------------------------

    def append(
        self,
        streams: Sequence[StreamRows],
        *,
        lock_timeout_ms: int,
        owed: Sequence[tuple[str, Any]] = (),
    ) -> Appended:
        """Append every stream's rows, each after its expected version, in one statement that
        also checks the versions and that no event id is stored already: it writes every row
        or, refused, none (`Appended`). The stream index (`Stream`) moves with the rows, and
        each call `owed` ((subscriber name, event id) of an inserted row) is recorded, due now
        (`owe_effects`).

        Here (SQLite: one writer at a time) the insert is one statement, the stream index a
        second and the calls owed a third; a refusal reads the stored ids and the heads. Rows
        come back in the order given: streams in order, each one's rows in version order.
        """
        sql = self._append_sql(tuple(len(stream.rows) for stream in streams))
        with current_connection().cursor() as cursor:
            cursor.execute(sql, self._append_params(streams))
            points = {
                event_id: (position, transaction_id, version)
                for position, event_id, transaction_id, version in cursor.fetchall()
            }
        wanted = sum(len(stream.rows) for stream in streams)
        if not points and wanted:
            stored = self.stored_ids([row.event_id for stream in streams for row in stream.rows])
            heads = self.stream_versions(
                (stream.aggregate_type, stream.aggregate_id) for stream in streams
            )
            return Appended({}, stored, heads)
        self.upsert_streams(self._stream_index_rows(streams, points))
        if owed:
            types = {row.event_id: row.event_type for stream in streams for row in stream.rows}
            self.owe_effects(
                [
                    (name, as_uuid(event_id), points[event_id][0], types[event_id])
                    for name, event_id in owed
                    if event_id in points
                ]
            )
        return Appended(points)

    def upsert_streams(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert or move on stream index rows of `Stream`'s fields in their declared order
        (aggregate_type, aggregate_id, version, last_event_type, last_position,
        first_recorded_at, last_recorded_at); an existing row keeps its `first_recorded_at`.
        Times are datetimes, or already as the column stores them (`db_datetime`)."""
        s = self.streams
        fields = written_fields(Stream)
        columns = [field.column for field in fields]
        moved = [s.version, s.last_event_type, s.last_position, s.last_recorded_at]

        def adapt(value: Any) -> Any:
            return self.db_datetime(value) if isinstance(value, datetime) else value

        with current_connection().cursor() as cursor:
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start : start + INSERT_CHUNK]
                values = self._values(fields, len(chunk))
                cursor.execute(
                    f"INSERT INTO {s} ({', '.join(columns)}) VALUES {values} "
                    f"ON CONFLICT ({s.aggregate_type}, {s.aggregate_id}) DO UPDATE SET "
                    + ", ".join(f"{column} = excluded.{column}" for column in moved),
                    [
                        value
                        for (
                            aggregate_type,
                            aggregate_id,
                            version,
                            event_type,
                            position,
                            first,
                            last,
                        ) in chunk
                        for value in (
                            aggregate_type,
                            aggregate_id,
                            version,
                            event_type,
                            position,
                            adapt(first),
                            adapt(last),
                        )
                    ],
                )

    def _append_params(self, streams: Sequence[StreamRows]) -> list[Any]:
        return [
            *(
                value
                for stream in streams
                for value in (stream.aggregate_type, stream.aggregate_id, stream.expected_version)
            ),
            *(value for stream in streams for row in stream.rows for value in row),
        ]

    @staticmethod
    def _stream_index_rows(
        streams: Sequence[StreamRows], points: dict[Any, tuple[int, int, int]]
    ) -> list[tuple[Any, ...]]:
        """The stream index row of each stream written: its last inserted event."""
        index = []
        for stream in streams:
            last = next((row for row in reversed(stream.rows) if row.event_id in points), None)
            if last is not None:
                position, _, version = points[last.event_id]
                index.append(
                    (
                        stream.aggregate_type,
                        stream.aggregate_id,
                        version,
                        last.event_type,
                        position,
                        last.recorded_at,
                        last.recorded_at,
                    )
                )
        return index

    def _new_events(self, layout: tuple[int, ...]) -> str:
        """The CTEs `s` (each stream: n, type, id, expected version) and `v` (each row: its
        stream n, its place k in it, then `NewRow`'s fields) of an append of `layout` (rows per
        stream)."""
        marks = ", ".join(self._mark(Event._meta.get_field(name)) for name in NewRow._fields)
        stream_values = ", ".join(f"({n}, %s, %s, CAST(%s AS INTEGER))" for n in range(len(layout)))
        row_values = ", ".join(
            f"({n}, {k}, {marks})" for n, count in enumerate(layout) for k in range(1, count + 1)
        )
        return (
            f"s (n, aggregate_type, aggregate_id, expected) AS (VALUES {stream_values}), "
            f"v (n, k, {', '.join(NewRow._fields)}) AS (VALUES {row_values})"
        )

    def _build_append_sql(self, layout: tuple[int, ...]) -> str:
        e = self.events
        columns = [getattr(e, name) for name in NewRow._fields]
        written = [e.aggregate_type, e.aggregate_id, e.version, e.transaction_id, *columns]
        return (
            f"WITH {self._new_events(layout)}, "
            f"h AS (SELECT s.n, s.aggregate_type, s.aggregate_id, s.expected, "
            f"COALESCE((SELECT MAX({e.version}) FROM {e} WHERE {e.aggregate_type} = "
            f"s.aggregate_type AND {e.aggregate_id} = s.aggregate_id), 0) AS version FROM s) "
            f"INSERT INTO {e} ({', '.join(written)}) "
            f"SELECT h.aggregate_type, h.aggregate_id, h.version + v.k, 0, "
            f"{', '.join(f'v.{name}' for name in NewRow._fields)} FROM v JOIN h ON h.n = v.n "
            "WHERE NOT EXISTS (SELECT 1 FROM h WHERE h.expected <> h.version) "
            f"AND NOT EXISTS (SELECT 1 FROM {e} WHERE {e.event_id} IN (SELECT event_id FROM v)) "
            f"ORDER BY v.n, v.k ON CONFLICT DO NOTHING "
            f"RETURNING {e.position}, {e.event_id}, {e.transaction_id}, {e.version}"
        )

    def _build_stream_head(self) -> str:
        # One row per stream: its highest version, by a scalar MAX that the database answers
        # with a single seek at the end of the (aggregate_type, aggregate_id, version) index. (A
        # GROUP BY over several streams read every event of each, so appends slowed down as
        # their streams grew.)
        e = self.events
        return (
            f"SELECT %s, %s, COALESCE((SELECT MAX({e.version}) FROM {e} "
            f"WHERE {e.aggregate_type} = %s AND {e.aggregate_id} = %s), 0)"
        )

    def _heads_sql(self, streams: Sequence[tuple[str, str]]) -> tuple[str, list[str]]:
        sql = " UNION ALL ".join([self._stream_head] * len(streams))
        return sql, [value for stream in streams for value in (*stream, *stream)]

    def stored_ids(self, event_ids: Sequence[Any]) -> set[uuid.UUID]:
        """Which of these event ids (as the column stores them) are stored."""
        e = self.events
        stored: set[uuid.UUID] = set()
        with current_connection().cursor() as cursor:
            for start in range(0, len(event_ids), INSERT_CHUNK):
                chunk = event_ids[start : start + INSERT_CHUNK]
                cursor.execute(
                    f"SELECT {e.event_id} FROM {e} WHERE {e.event_id} IN "
                    f"({', '.join(['%s'] * len(chunk))})",
                    list(chunk),
                )
                stored.update(as_uuid(row[0]) for row in cursor.fetchall())
        return stored

    def stream_versions(self, streams: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The version of each (aggregate_type, aggregate_id) (0: no events)."""
        streams = list(streams)
        versions = {}
        with current_connection().cursor() as cursor:
            for start in range(0, len(streams), _STREAMS_PER_QUERY):
                cursor.execute(*self._heads_sql(streams[start : start + _STREAMS_PER_QUERY]))
                versions.update(
                    ((aggregate_type, aggregate_id), version)
                    for aggregate_type, aggregate_id, version in cursor.fetchall()
                )
        return versions

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

    def read_past(
        self, after: LogPoint, limit: int, event_types: Iterable[str] | None
    ) -> list[RecordedEvent]:
        """At most `limit` events after `after` in the order followers read the log in, with no
        horizon: every event this transaction sees. Complete only while appends are held, or
        inside one snapshot."""
        condition, params = self.point_condition(), self.follow_params(after)
        return self._read(condition, params, self.follow_order(), limit, event_types)

    def read_positions(self, positions: Sequence[int]) -> list[RecordedEvent]:
        """The stored events at these positions, in the order followers read the log in."""
        marks = ", ".join(["%s"] * len(positions))
        return self._read(f"{self.events.position} IN ({marks})", positions, self.follow_order())

    def point_condition(self) -> str:
        """An SQL condition on the events table: events after the point given by
        `follow_params`, in `follow_order()`."""
        return f"{self.events.position} > %s"

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

    def streams_for_load(
        self, streams: Sequence[tuple[str, str, int | None]]
    ) -> list[tuple[tuple[int, Any] | None, list[tuple[int, str, int, Any]]]]:
        """What loading aggregates reads, in one query: for each (aggregate_type, aggregate_id,
        state_version), its snapshot in `state_version`'s format ((version, state); None when
        there is none or `state_version` is None) and the (version, event_type,
        schema_version, payload) of each event after it, in version order."""
        params: list[Any] = []
        for aggregate_type, aggregate_id, state_version in streams:
            if state_version is None:
                params += [aggregate_type, aggregate_id]
            else:
                key = [aggregate_type, aggregate_id, state_version]
                params += [_SNAPSHOT_MARK, *key, aggregate_type, aggregate_id, *key]
        layout = tuple(state_version is not None for _, _, state_version in streams)
        sql = self._statement(("load", layout), lambda: self._build_load_sql(layout))
        with current_connection().cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        loaded: list[tuple[tuple[int, Any] | None, list[tuple[int, str, int, Any]]]] = [
            (None, []) for _ in streams
        ]
        for n, version, event_type, schema, payload in rows:
            if event_type == _SNAPSHOT_MARK and schema is None:
                loaded[n] = ((version, from_json(payload)), loaded[n][1])
            else:
                loaded[n][1].append((version, event_type, schema, from_json(payload)))
        return loaded

    def _build_load_sql(self, layout: tuple[bool, ...]) -> str:
        """The load of one stream per entry of `layout` (True: from its snapshot)."""
        e, s = self.events, self.snapshots
        parts = []
        for n, from_snapshot in enumerate(layout):
            events = (
                f"SELECT {n}, {e.version}, {e.event_type}, {e.schema_version}, {e.payload} "
                f"FROM {e} WHERE {e.aggregate_type} = %s AND {e.aggregate_id} = %s"
            )
            if not from_snapshot:
                parts.append(events)
                continue
            snapshot = (
                f"FROM {s} WHERE {s.aggregate_type} = %s AND {s.aggregate_id} = %s "
                f"AND {s.state_version} = %s"
            )
            parts.append(
                f"SELECT {n}, {s.version}, %s, NULL, {s.state} {snapshot} UNION ALL {events} "
                f"AND {e.version} > COALESCE((SELECT {s.version} {snapshot}), 0)"
            )
        return f"{' UNION ALL '.join(parts)} ORDER BY 1, 2"

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

    def held_by(self) -> dict[str, dict[str, Any] | None] | None:
        """The oldest running transaction followers wait for, and the oldest they leave out
        (None: followers never wait for a running transaction)."""
        return None
