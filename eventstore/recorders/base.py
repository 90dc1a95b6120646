"""`Recorder`: the event log's statements as every database runs them as written (SQLite's
dialect), built once from the models' `_meta`. What one database does differently is a subclass
in a module of its own (sqlite.py, postgres.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple

from django.db import OperationalError, models, transaction
from django.utils import timezone

from eventstore.models import Checkpoint, Effect, Event, Snapshot, Stream
from eventstore.records import START, LogPoint, RecordedEvent
from eventstore.upcasting import upcast

_INSERT_CHUNK = 500  # rows per INSERT, well inside every backend's limit on parameters
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


class RepartitionPending(Exception):
    """The partition count changed again before the previous change was caught up."""


class CheckpointMoved(Exception):
    """A checkpoint was not where its locked read found it: another worker moved it."""


class _Table:
    """A model's table name (`str(table)`) and its columns by field name (`table.field`)."""

    def __init__(self, model: type[models.Model]):
        self._name = model._meta.db_table
        self._columns = {field.name: field.column for field in model._meta.concrete_fields}

    def __str__(self) -> str:
        return self._name

    def __getattr__(self, name: str) -> str:
        try:
            return self._columns[name]
        except KeyError:
            raise AttributeError(name) from None

    def columns(self, names: Iterable[str]) -> list[str]:
        """The columns of these fields, in this order."""
        return [self._columns[name] for name in names]


def current_connection():
    """The connection of the database transactions run on (Django's default)."""
    return transaction.get_connection()


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _written_fields(model: type[models.Model]) -> list[models.Field]:
    """The model's fields in declaration order, but for a surrogate key the database assigns."""
    return [
        field for field in model._meta.concrete_fields if not isinstance(field, models.AutoField)
    ]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value  # SQLite stores naive UTC


class Recorder:
    """The event store's statements for one kind of database, built once (see `recorder()`).

    This class runs them as SQLite does; a subclass overrides what its database does otherwise.
    """

    # A placeholder for JSON text bound to a JSON column.
    json_mark = "%s"
    # The placeholder of an appended event's transaction id (SQLite stores the one given: 0).
    transaction_id_mark = "%s"
    # How the ids query reads a stored event id back.
    stored_id = "{column}"

    def __init__(self) -> None:
        self.events = events = _Table(Event)
        self.checkpoints = _Table(Checkpoint)
        self.streams = _Table(Stream)
        self.snapshots = _Table(Snapshot)
        self.effects = _Table(Effect)
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

    # --- values as the columns store them ------------------------------------------------------

    def _mark(self, field: models.Field) -> str:
        """The placeholder of a value bound to the field's column."""
        return self.json_mark if isinstance(field, models.JSONField) else "%s"

    def _insert_row(self, model: type[models.Model], row: dict[str, Any]) -> tuple[str, list[Any]]:
        """An INSERT of one row of the model from values by field name, and its parameters."""
        fields = [model._meta.get_field(name) for name in row]
        columns = ", ".join(field.column for field in fields)
        sql = f"INSERT INTO {model._meta.db_table} ({columns}) VALUES {self._values(fields, 1)}"
        return sql, list(row.values())

    def _values(self, fields: Sequence[models.Field], rows: int) -> str:
        """The VALUES list of `rows` rows of these fields."""
        row = f"({', '.join(self._mark(field) for field in fields)})"
        return ", ".join([row] * rows)

    @staticmethod
    def db_uuid(value: uuid.UUID) -> Any:
        """An event id as the column stores it (char(32) hex on SQLite)."""
        return value.hex

    @staticmethod
    def db_datetime(value: datetime) -> Any:
        """A datetime as the connection stores it."""
        return current_connection().ops.adapt_datetimefield_value(value)

    # --- appending -----------------------------------------------------------------------------

    def _build_insert_sql(self, rows: int) -> str:
        return self._insert_head + ", ".join([self._insert_values] * rows) + self._insert_tail

    def insert(self, rows: Sequence[EventRow]) -> dict[Any, LogPoint]:
        """Insert the rows; return each inserted event id's LogPoint. A row that would break a
        unique key (stream version or event id) is skipped, not an error: it is missing from
        the result."""
        points: dict[Any, LogPoint] = {}
        with current_connection().cursor() as cursor:
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start : start + _INSERT_CHUNK]
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
                stored = {_uuid(row[0]) for row in cursor.fetchall()}
            return stored, self.stream_heads(streams)
        heads_sql, params = self._heads_sql(streams)
        with current_connection().cursor() as cursor:
            cursor.execute(f"{heads_sql} UNION ALL {ids_sql}", params + ids)
            stored: set[uuid.UUID] = set()
            heads: dict[tuple[str, str], StreamHead] = {}
            for first, ident, version, transaction_id in cursor.fetchall():
                if version is None:
                    stored.add(_uuid(first))
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
            event.event_type, event.schema_version, _json(event.payload)
        )
        return event._replace(
            event_id=_uuid(event.event_id),
            schema_version=schema_version,
            payload=payload,
            metadata=_json(event.metadata),
            recorded_at=_aware(event.recorded_at),
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
            snapshot_row = (rows[0][0], _json(rows[0][3]))
            rows = rows[1:]
        return snapshot_row, [
            (version, event_type, schema, _json(payload))
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

    # --- checkpoints ---------------------------------------------------------------------------

    def _for_update(self, skip_locked: bool = False) -> str:
        """The row-lock clause (none: SQLite's IMMEDIATE transaction holds the write lock)."""
        return ""

    def checkpoint_and_backlog(
        self, subscriber: str, partition: int, partitions: int, event_types: Iterable[str] | None
    ) -> tuple[LogPoint, bool]:
        """The partition's checkpoint (`START` before its first) and whether an event it reads
        lies after it, within the followers' horizon: one lock-free query."""
        e, c = self.events, self.checkpoints
        filters, params = self._filters(event_types, (partition, partitions))
        name = Checkpoint.name_for(subscriber, partition, partitions)
        after = self.follow_condition(f"c.{c.transaction_id}", f"c.{c.position}")
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"SELECT c.{c.transaction_id}, c.{c.position}, "
                f"EXISTS(SELECT 1 FROM {e} WHERE {after}{filters}) "
                f"FROM (SELECT COALESCE(MAX({c.transaction_id}), 0) AS {c.transaction_id}, "
                f"COALESCE(MAX({c.position}), 0) AS {c.position} FROM {c} "
                f"WHERE {c.name} = %s) c",
                [*params, name],
            )
            transaction_id, position, waiting = cursor.fetchone()
        return LogPoint(transaction_id, position), bool(waiting)

    def partitions_with_backlog(
        self,
        subscriber: str,
        partitions: int,
        event_types: Iterable[str] | None,
        *,
        recorded_before: datetime | None = None,
    ) -> list[int]:
        """The partitions of the subscriber with an event they read after their checkpoint
        (only events recorded before `recorded_before`, when given): one lock-free query. The
        subscriber's checkpoint rows are created first if they are missing
        (`ensure_partitions`)."""
        e, c = self.events, self.checkpoints
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*) FROM {c} WHERE {c.subscriber} = %s AND {c.partitions} = %s",
                [subscriber, partitions],
            )
            if cursor.fetchone()[0] < partitions:
                with transaction.atomic():
                    self.ensure_partitions(subscriber, partitions)
            types, params = self._types_condition(event_types)
            hashed = f" AND {e.partition_hash} %% %s = c.{c.partition}" if partitions > 1 else ""
            recorded = f" AND {e.recorded_at} < %s" if recorded_before is not None else ""
            after = self.follow_condition(f"c.{c.transaction_id}", f"c.{c.position}")
            cursor.execute(
                f"SELECT c.{c.partition} FROM {c} c WHERE c.{c.subscriber} = %s "
                f"AND c.{c.partitions} = %s AND EXISTS(SELECT 1 FROM {e} "
                f"WHERE {after}{hashed}{types}{recorded}) ORDER BY c.{c.partition}",
                [
                    subscriber,
                    partitions,
                    *([partitions] if partitions > 1 else []),
                    *params,
                    *([self.db_datetime(recorded_before)] if recorded_before is not None else []),
                ],
            )
            return [row[0] for row in cursor.fetchall()]

    def partition_lags(
        self, subscriber: str, partitions: int, event_types: Iterable[str] | None
    ) -> dict[int, tuple[int, str]]:
        """For each partition of the subscriber: (how many events it reads lie after its
        checkpoint, within the followers' horizon; the error its checkpoint records, "" for
        none). A partition with no checkpoint row yet counts from the start of the log.
        Lock-free."""
        e, c = self.events, self.checkpoints
        types, params = self._types_condition(event_types)
        hashed = f" AND {e.partition_hash} %% %s = p.partition" if partitions > 1 else ""
        after = self.follow_condition("p.transaction_id", "p.position")
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"SELECT {c.partition}, {c.transaction_id}, {c.position}, {c.last_error} "
                f"FROM {c} WHERE {c.subscriber} = %s AND {c.partitions} = %s",
                [subscriber, partitions],
            )
            rows = {row[0]: row[1:] for row in cursor.fetchall()}
            points = [
                (partition, *rows.get(partition, (0, 0, ""))) for partition in range(partitions)
            ]
            values = " UNION ALL ".join(
                [
                    "SELECT CAST(%s AS BIGINT) AS partition, "
                    "CAST(%s AS BIGINT) AS transaction_id, CAST(%s AS BIGINT) AS position"
                ]
                * partitions
            )
            cursor.execute(
                f"SELECT p.partition, (SELECT COUNT(*) FROM {e} WHERE {after}{hashed}{types}) "
                f"FROM ({values}) p ORDER BY p.partition",
                [
                    *([partitions] if partitions > 1 else []),
                    *params,
                    *[
                        value
                        for partition, tx, position, _ in points
                        for value in (partition, tx, position)
                    ],
                ],
            )
            counts = dict(cursor.fetchall())
        return {partition: (counts[partition], error) for partition, _, _, error in points}

    def lock_checkpoint(
        self, subscriber: str, partition: int, partitions: int, *, skip_locked: bool = False
    ) -> tuple[LogPoint, list[LogPoint] | None] | None:
        """Inside a transaction, the partition's checkpoint and the previous partitions' points
        (`handled_before`, or None), its row locked until the transaction ends. The
        subscriber's rows are created the first time (see `ensure_partitions`). With
        `skip_locked`, None when another transaction holds the row."""
        c = self.checkpoints
        name = Checkpoint.name_for(subscriber, partition, partitions)
        select = (
            f"SELECT {c.transaction_id}, {c.position}, {c.handled_before} FROM {c} "
            f"WHERE {c.name} = %s"
        )
        with current_connection().cursor() as cursor:
            cursor.execute(select + self._for_update(skip_locked), [name])
            row = cursor.fetchone()
            if row is None and skip_locked:
                cursor.execute(f"SELECT 1 FROM {c} WHERE {c.name} = %s", [name])
                if cursor.fetchone() is not None:
                    return None  # another worker holds this partition
            if row is None:
                self.ensure_partitions(subscriber, partitions)
                cursor.execute(select + self._for_update(), [name])
                row = cursor.fetchone()
        return LogPoint(row[0], row[1]), _handled_before(_json(row[2]))

    def ensure_partitions(self, subscriber: str, partitions: int) -> None:
        """Inside a transaction, create the subscriber's checkpoint rows for `partitions`.

        A subscriber's rows under another partition count (the one before a change of
        EVENTSTORE_PARTITIONS, or the single checkpoint of a database from before partitions)
        are replaced: each new partition starts at the lowest of their points and keeps them in
        `handled_before`, so that no event is handled twice or skipped.
        """
        c = self.checkpoints
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"SELECT {c.partitions}, {c.partition}, {c.transaction_id}, {c.position}, "
                f"{c.handled_before} FROM {c} WHERE {c.subscriber} = %s{self._for_update()}",
                [subscriber],
            )
            rows = cursor.fetchall()
            previous = [row for row in rows if row[0] != partitions]
            have = {row[1] for row in rows if row[0] == partitions}
            start, handled_before = START, None
            if previous:
                counts = {row[0] for row in previous}
                if len(counts) > 1 or any(_json(row[4]) for row in previous):
                    raise RepartitionPending(
                        f"{subscriber}: its partition count changed again before the previous "
                        "change was caught up; run every process with the previous "
                        "EVENTSTORE_PARTITIONS until its checkpoints show no handled_before"
                    )
                (count,) = counts
                points = [START] * count
                for _, partition, transaction_id, position, _ in previous:
                    if partition < count:
                        points[partition] = LogPoint(transaction_id, position)
                start = min(points)
                if max(points) > start:
                    handled_before = {"partitions": count, "positions": [list(p) for p in points]}
                cursor.execute(
                    f"DELETE FROM {c} WHERE {c.subscriber} = %s AND {c.partitions} <> %s",
                    [subscriber, partitions],
                )
            now = self.db_datetime(timezone.now())
            for partition in sorted(set(range(partitions)) - have):
                insert, params = self._insert_row(
                    Checkpoint,
                    {
                        "name": Checkpoint.name_for(subscriber, partition, partitions),
                        "subscriber": subscriber,
                        "partition": partition,
                        "partitions": partitions,
                        "transaction_id": start.transaction_id,
                        "position": start.position,
                        "handled_before": (
                            None if handled_before is None else json.dumps(handled_before)
                        ),
                        "last_error": "",
                        "updated_at": now,
                    },
                )
                # Another worker may be creating the same rows right now. ON CONFLICT names no
                # column on purpose: a row is unique by its name and by (subscriber,
                # partitions, partition), and PostgreSQL skips a conflict only on the named
                # index; a conflict on the other one, found while both inserts are in flight,
                # was an IntegrityError.
                cursor.execute(f"{insert} ON CONFLICT DO NOTHING", params)

    def save_checkpoint(
        self,
        subscriber: str,
        partition: int,
        partitions: int,
        *,
        read_at: LogPoint,
        point: LogPoint,
        handled_before: list[LogPoint] | None,
        error: str,
        failed_position: int | None,
        now: datetime,
    ) -> None:
        """Move a locked checkpoint from `read_at` to `point`, recording the error that stopped
        it (if any) and what is left of `handled_before` (one point per previous partition).
        Fenced: raises CheckpointMoved, so the caller's transaction rolls back with every
        effect of the batch, when the row is gone or no longer at `read_at`."""
        c = self.checkpoints
        stored = None
        if handled_before is not None:
            stored = {
                "partitions": len(handled_before),
                "positions": [list(p) for p in handled_before],
            }
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"UPDATE {c} SET {c.transaction_id} = %s, {c.position} = %s, "
                f"{c.handled_before} = {self.json_mark}, {c.last_error} = %s, "
                f"{c.failed_position} = %s, {c.updated_at} = %s WHERE {c.name} = %s "
                f"AND {c.transaction_id} = %s AND {c.position} = %s",
                [
                    point.transaction_id,
                    point.position,
                    None if stored is None else json.dumps(stored),
                    error,
                    failed_position,
                    self.db_datetime(now),
                    Checkpoint.name_for(subscriber, partition, partitions),
                    read_at.transaction_id,
                    read_at.position,
                ],
            )
            if cursor.rowcount != 1:
                raise CheckpointMoved(
                    f"{subscriber} partition {partition}/{partitions}: the checkpoint moved from "
                    f"position {read_at} while this batch was handled; the batch is undone"
                )

    # --- calls owed to the outside world (eventstore.effects) ---------------------------------

    def _due(self) -> str:
        f = self.effects
        return (
            f"{f.subscriber} = %s AND {f.status} = '{Effect.Status.PENDING.value}' "
            f"AND {f.due_at} <= %s"
        )

    def owe_effect(
        self, subscriber: str, event_id: uuid.UUID, position: int, event_type: str
    ) -> None:
        """Record, inside the checkpoint's transaction, that `subscriber` owes a call for the
        event (due now); a second record of the same event is skipped."""
        f = self.effects
        now = self.db_datetime(timezone.now())
        insert, params = self._insert_row(
            Effect,
            {
                "subscriber": subscriber,
                "event_id": self.db_uuid(event_id),
                "position": position,
                "event_type": event_type,
                "status": Effect.Status.PENDING.value,
                "attempts": 0,
                "due_at": now,
                "last_error": "",
                "created_at": now,
                "updated_at": now,
            },
        )
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"{insert} ON CONFLICT ({f.subscriber}, {f.event_id}) DO NOTHING", params
            )

    def effect_due(self, subscriber: str, now: datetime) -> bool:
        """Whether a pending call of the subscriber is due: one lock-free look."""
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {self.effects} WHERE {self._due()} LIMIT 1",
                [subscriber, self.db_datetime(now)],
            )
            return cursor.fetchone() is not None

    def claim_effect(
        self, subscriber: str, now: datetime, until: datetime, token: uuid.UUID
    ) -> tuple[int, uuid.UUID, int] | None:
        """Take the oldest due pending call of the subscriber: count the attempt, store `token`
        and push its due time to `until`, in one statement of its own (committed at once);
        (id, event id, attempt) or None. Concurrent claimers do not take one row twice (where
        rows are not locked, the single writer serialises them)."""
        f = self.effects
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"UPDATE {f} SET {f.attempts} = {f.attempts} + 1, {f.claim} = %s, "
                f"{f.due_at} = %s, {f.updated_at} = %s WHERE {f.id} = (SELECT {f.id} FROM {f} "
                f"WHERE {self._due()} ORDER BY {f.due_at}, {f.id} LIMIT 1"
                f"{self._for_update(skip_locked=True)}) "
                f"RETURNING {f.id}, {f.event_id}, {f.attempts}",
                [
                    self.db_uuid(token),
                    self.db_datetime(until),
                    self.db_datetime(now),
                    subscriber,
                    self.db_datetime(now),
                ],
            )
            row = cursor.fetchone()
        return None if row is None else (row[0], _uuid(row[1]), row[2])

    def finish_effect(
        self,
        effect_id: int,
        token: uuid.UUID,
        *,
        status: str,
        last_error: str,
        due_at: datetime | None,
        now: datetime,
    ) -> bool:
        """Record how a claimed call went, unless another claim has replaced `token` since."""
        f = self.effects
        due = f"{f.due_at} = %s, " if due_at is not None else ""
        params = [status, last_error, *([self.db_datetime(due_at)] if due_at is not None else [])]
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"UPDATE {f} SET {f.claim} = NULL, {f.status} = %s, {f.last_error} = %s, {due}"
                f"{f.updated_at} = %s WHERE {f.id} = %s AND {f.claim} = %s",
                [*params, self.db_datetime(now), effect_id, self.db_uuid(token)],
            )
            return cursor.rowcount == 1

    # --- the stream index and snapshots --------------------------------------------------------

    def upsert_streams(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert or move on stream index rows of `Stream`'s fields in their declared order
        (aggregate_type, aggregate_id, version, last_event_type, last_position,
        first_recorded_at, last_recorded_at); an existing row keeps its `first_recorded_at`."""
        s = self.streams
        fields = _written_fields(Stream)
        columns = [field.column for field in fields]
        moved = [s.version, s.last_event_type, s.last_position, s.last_recorded_at]
        adapt = current_connection().ops.adapt_datetimefield_value
        with current_connection().cursor() as cursor:
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start : start + _INSERT_CHUNK]
                values = self._values(fields, len(chunk))
                cursor.execute(
                    f"INSERT INTO {s} ({', '.join(columns)}) VALUES {values} "
                    f"ON CONFLICT ({s.aggregate_type}, {s.aggregate_id}) DO UPDATE SET "
                    + ", ".join(f"{column} = excluded.{column}" for column in moved),
                    [
                        value
                        for kind, ident, version, event_type, position, first, last in chunk
                        for value in (
                            kind,
                            ident,
                            version,
                            event_type,
                            position,
                            adapt(first),
                            adapt(last),
                        )
                    ],
                )

    def upsert_snapshots(self, rows: Sequence[tuple[str, str, int, int, str]]) -> None:
        """Write snapshots of `Snapshot`'s fields in their declared order but `taken_at` (now):
        (aggregate_type, aggregate_id, version, state_version, state JSON text), replacing each
        aggregate's previous one."""
        s = self.snapshots
        fields = _written_fields(Snapshot)
        columns = [field.column for field in fields]
        moved = [s.version, s.state_version, s.state, s.taken_at]
        values = self._values(fields, len(rows))
        now = self.db_datetime(timezone.now())
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {s} ({', '.join(columns)}) VALUES {values} "
                f"ON CONFLICT ({s.aggregate_type}, {s.aggregate_id}) DO UPDATE SET "
                + ", ".join(f"{column} = excluded.{column}" for column in moved),
                [value for row in rows for value in (*row, now)],
            )


def _handled_before(value: dict[str, Any] | None) -> list[LogPoint] | None:
    """The previous partitions' points, one per partition, from a checkpoint's
    `handled_before` (None: none)."""
    if not value:
        return None
    return [LogPoint.of(point) for point in value["positions"]]
