"""The event log's hot paths in plain SQL, on Django's connection and inside its transactions.

Appending, reading a stream and paging through the log run for every command and every event
a subscriber handles. Building those few statements with the ORM cost more than the database
spent running them (see BENCHMARKS.md), so they are written here once, for SQLite and
PostgreSQL, and run through Django's cursor (query logging, `execute_wrapper` and transactions
behave as for any query). Values go in and come out the way the model's fields store them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple

from django.db import transaction
from django.utils import timezone

from eventstore.models import Checkpoint, Effect, Event, Snapshot, Stream

# The columns every read selects, in this order.
COLUMNS = (
    "position",
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "version",
    "event_type",
    "schema_version",
    "payload",
    "metadata",
    "recorded_at",
    "transaction_id",
)
_INSERTED = (*COLUMNS[1:-1], "correlation_id", "partition_hash", "transaction_id")
_INSERT_CHUNK = 500  # rows per INSERT, well inside every backend's limit on parameters

EVENTS = Event._meta.db_table
CHECKPOINTS = Checkpoint._meta.db_table
STREAMS = Stream._meta.db_table
SNAPSHOTS = Snapshot._meta.db_table
EFFECTS = Effect._meta.db_table
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM {EVENTS}"


def _connection():
    return transaction.get_connection()


def _native_uuid() -> bool:
    return _connection().features.has_native_uuid_field


def db_uuid(value: uuid.UUID) -> Any:
    """An event id as the column stores it (char(32) hex on SQLite, uuid on PostgreSQL)."""
    return value if _native_uuid() else value.hex


def db_datetime(value: datetime) -> Any:
    return _connection().ops.adapt_datetimefield_value(value)


class LogPoint(NamedTuple):
    """A place in the order followers read the log in: (transaction id, position).

    On PostgreSQL, positions are handed out in insert order but become visible in commit order,
    so a follower that only remembered a position could pass one whose transaction commits a
    moment later. Followers read in (transaction_id, position) order instead, and only events
    whose transaction id lies below every transaction still running (`follow_condition`): an
    event that is not visible yet always sorts after every point a follower has reached. On
    SQLite every transaction id is 0: the single writer commits positions in order.
    """

    transaction_id: int
    position: int

    def __str__(self) -> str:
        if self.transaction_id:
            return f"{self.position} (transaction {self.transaction_id})"
        return str(self.position)

    @classmethod
    def of(cls, value: Any) -> LogPoint:
        """A point from its stored form: [transaction id, position], or a bare position (the
        form from before transaction ids, whose events all have transaction id 0)."""
        if isinstance(value, int):
            return cls(0, value)
        transaction_id, position = value
        return cls(int(transaction_id), int(position))


START = LogPoint(0, 0)

# The transaction id an appended row gets on PostgreSQL: its own transaction's (the top-level
# one, also inside a savepoint), raised to the id its stream's previous event was stored with
# when that is higher. Raising it keeps a stream's events in version order for followers, also
# for a transaction that took its id before another writer appended to the stream and
# committed (a subscriber's batch locks its checkpoint row first; a command retried inside an
# outer transaction keeps that transaction's id). It never lowers it: an event always sorts at
# or after its own transaction's id, so it stays behind the horizon of every follower until its
# transaction has ended (see `follow_condition`).
_TRANSACTION_ID = "GREATEST(pg_current_xact_id()::text::bigint, %s)"


@cache
def _insert_sql(vendor: str, rows: int) -> str:
    values = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    if vendor == "postgresql":
        values = f"(%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, {_TRANSACTION_ID})"
    return (
        f"INSERT INTO {EVENTS} ({', '.join(_INSERTED)}) VALUES "
        + ", ".join([values] * rows)
        + " ON CONFLICT DO NOTHING RETURNING position, event_id, transaction_id"
    )


def insert(rows: Sequence[tuple[Any, ...]]) -> dict[Any, LogPoint]:
    """Insert rows of (`event_id` as stored, aggregate_type, aggregate_id, version, event_type,
    schema_version, payload JSON text, metadata JSON text, recorded_at as stored,
    correlation_id, partition_hash, the transaction id of the stream's previous event); return
    each inserted event id's LogPoint. A row that would break a unique key (stream version or
    event id) is skipped, not an error: it is missing from the result."""
    connection = _connection()
    points: dict[Any, LogPoint] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start : start + _INSERT_CHUNK]
            cursor.execute(
                _insert_sql(connection.vendor, len(chunk)),
                [value for row in chunk for value in row],
            )
            points.update(
                (event_id, LogPoint(transaction_id, position))
                for position, event_id, transaction_id in cursor.fetchall()
            )
    return points


class StreamHead(NamedTuple):
    """A stream's highest stored version and the transaction id its event was stored with
    (0 and 0 for a stream with no events; the transaction id is always 0 on SQLite)."""

    version: int
    transaction_id: int


# One row per stream: its highest version, by a scalar MAX that both databases answer with a
# single seek at the end of the (aggregate_type, aggregate_id, version) index. (A GROUP BY over
# several streams read every event of each, so appends slowed down as their streams grew.)
# PostgreSQL also reads that event's transaction id, by the same seek.
_STREAM_HEAD = {
    "sqlite": (
        f"SELECT %s, %s, COALESCE((SELECT MAX(version) FROM {EVENTS} "
        "WHERE aggregate_type = %s AND aggregate_id = %s), 0), 0"
    ),
    "postgresql": (
        f"SELECT %s, %s, head.version, head.transaction_id FROM (SELECT 0 AS version, "
        f"0::bigint AS transaction_id UNION ALL (SELECT version, transaction_id FROM {EVENTS} "
        "WHERE aggregate_type = %s AND aggregate_id = %s ORDER BY version DESC LIMIT 1) "
        "ORDER BY version DESC LIMIT 1) head"
    ),
}


# Streams per version query: SQLite allows at most 500 terms in one compound SELECT.
_STREAMS_PER_QUERY = 200


def _heads_sql(streams: Sequence[tuple[str, str]]) -> tuple[str, list[str]]:
    head = _STREAM_HEAD["postgresql" if _connection().vendor == "postgresql" else "sqlite"]
    sql = " UNION ALL ".join([head] * len(streams))
    return sql, [value for stream in streams for value in (*stream, *stream)]


def stored_ids_and_heads(
    event_ids: Sequence[uuid.UUID],
    streams: Sequence[tuple[str, str]],
    *,
    lock_timeout_ms: int | None = None,
) -> tuple[set[uuid.UUID], dict[tuple[str, str], StreamHead]]:
    """Which of these event ids are stored already, and the head of each
    (aggregate_type, aggregate_id): one statement. On PostgreSQL, with `lock_timeout_ms`, the
    same statement sets the transaction's lock_timeout (one round trip fewer per append)."""
    connection = _connection()
    stored_id = "CAST(event_id AS VARCHAR(36))" if connection.vendor == "postgresql" else "event_id"
    marks = ", ".join(["%s"] * len(event_ids))
    ids_sql = f"SELECT {stored_id}, NULL, NULL, NULL FROM {EVENTS} WHERE event_id IN ({marks})"
    ids = [db_uuid(event_id) for event_id in event_ids]
    if lock_timeout_ms is not None and connection.vendor == "postgresql":
        # A branch that returns no row; set_config(..., true) lasts until the transaction ends.
        ids_sql += (
            " UNION ALL SELECT NULL, NULL, NULL, NULL "
            "WHERE set_config('lock_timeout', %s, true) IS NULL"
        )
        ids.append(f"{int(lock_timeout_ms)}ms")
    if len(streams) > _STREAMS_PER_QUERY:  # rare: a statement for the ids, then the heads
        with connection.cursor() as cursor:
            cursor.execute(ids_sql, ids)
            stored = {_uuid(row[0]) for row in cursor.fetchall()}
        return stored, stream_heads(streams)
    heads_sql, params = _heads_sql(streams)
    with connection.cursor() as cursor:
        cursor.execute(f"{heads_sql} UNION ALL {ids_sql}", params + ids)
        stored: set[uuid.UUID] = set()
        heads: dict[tuple[str, str], StreamHead] = {}
        for first, ident, version, transaction_id in cursor.fetchall():
            if version is None:
                stored.add(_uuid(first))
            else:
                heads[(first, ident)] = StreamHead(version, transaction_id)
    return stored, heads


def stream_heads(streams: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StreamHead]:
    """The head of each (aggregate_type, aggregate_id) (version 0: no events)."""
    streams = list(streams)
    heads = {}
    with _connection().cursor() as cursor:
        for start in range(0, len(streams), _STREAMS_PER_QUERY):
            cursor.execute(*_heads_sql(streams[start : start + _STREAMS_PER_QUERY]))
            heads.update(
                ((kind, ident), StreamHead(version, transaction_id))
                for kind, ident, version, transaction_id in cursor.fetchall()
            )
    return heads


def current_versions(streams: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The highest stored version of each (aggregate_type, aggregate_id) (0: no events)."""
    return {key: head.version for key, head in stream_heads(streams).items()}


def select(where: str, params: Sequence[Any], order_by: str, limit: int | None = None) -> list:
    """Event rows (`COLUMNS`, decoded) matching `where`, in `order_by` order."""
    sql = f"{_SELECT} WHERE {where} ORDER BY {order_by}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with _connection().cursor() as cursor:
        cursor.execute(sql, params)
        return [_decoded(row) for row in cursor.fetchall()]


def types_condition(event_types: Iterable[str] | None) -> tuple[str, list[str]]:
    """An `AND event_type IN (...)` clause and its parameters (nothing for None)."""
    if event_types is None:
        return "", []
    event_types = list(event_types)
    if not event_types:
        return " AND 1 = 0", []
    return f" AND event_type IN ({', '.join(['%s'] * len(event_types))})", event_types


# --- following the log --------------------------------------------------------------------------

# PostgreSQL: an event is followed only once its transaction id lies below the horizon: the
# oldest transaction of this database still running (by the statement's snapshot), this
# transaction's own id included. Every transaction below it has ended, so each event sorted
# before it is visible, or never will be; an event appended later sorts at or after its own
# transaction's id (`_TRANSACTION_ID`), which is at or above the horizon. Transactions of other
# databases of the cluster write no events here: the snapshot lists their ids too, and those
# that pg_stat_activity shows connected to another database are left out (an id it does not
# show, such as a prepared transaction's, counts: the horizon errs towards waiting).
# A transaction also follows the events it appended itself (a test runs in one transaction):
# followers in production never read after appending in one transaction (a batch reads before
# it handles; dispatch runs after commit), and must not, as an older writer still running could
# commit events that sort before those.
_OTHER_DATABASE = (
    "EXISTS(SELECT 1 FROM pg_stat_get_activity(NULL) a "
    "WHERE a.backend_xid::text::bigint = x::text::bigint %% 4294967296 "
    "AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))"
)
_HORIZON = (
    "(SELECT LEAST(pg_snapshot_xmax(s)::text::bigint, "
    "pg_current_xact_id_if_assigned()::text::bigint, "
    f"(SELECT MIN(x::text::bigint) FROM pg_snapshot_xip(s) x WHERE NOT {_OTHER_DATABASE})) "
    "FROM pg_current_snapshot() s)"
)
_OWN = "(SELECT pg_current_xact_id_if_assigned()::text::bigint)"


def follow_condition(transaction_id: str = "%s", position: str = "%s") -> str:
    """An SQL condition on the events table: events a follower at the point
    (`transaction_id`, `position`) (SQL expressions: parameters by default) reads next, in
    `FOLLOW_ORDER`. On SQLite only `position` is used: give it alone as a parameter there
    (`follow_params`)."""
    if _connection().vendor != "postgresql":
        return f"position > {position}"
    return (
        f"(transaction_id, position) > ({transaction_id}, {position}) "
        f"AND (transaction_id < {_HORIZON} OR transaction_id = {_OWN})"
    )


def follow_params(point: LogPoint) -> list[int]:
    """The parameters of `follow_condition()` for a follower at `point`."""
    if _connection().vendor != "postgresql":
        return [point.position]
    return [point.transaction_id, point.position]


def follow_order() -> str:
    """The ORDER BY of the order followers read the log in."""
    return "transaction_id, position" if _connection().vendor == "postgresql" else "position"


def followable(transaction_id: int) -> bool:
    """Whether followers can read events stored with `transaction_id` now (PostgreSQL: every
    transaction of the database that could sort before them has ended; always on SQLite)."""
    if _connection().vendor != "postgresql" or not transaction_id:
        return True
    with _connection().cursor() as cursor:
        cursor.execute(f"SELECT %s < {_HORIZON} OR %s = {_OWN}", [transaction_id, transaction_id])
        return bool(cursor.fetchone()[0])


def horizon() -> dict[str, Any] | None:
    """How far followers are held back (PostgreSQL; None on SQLite): the age in seconds of
    the oldest transaction of this database still running that has written anything, and how
    many committed events wait behind the horizon. A long or idle transaction holds every
    follower back for as long as it runs."""
    if _connection().vendor != "postgresql":
        return None
    with _connection().cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - MIN(xact_start)), 0) "
            "FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() "
            "AND datname = current_database()"
        )
        (seconds,) = cursor.fetchone()
        cursor.execute(
            f"SELECT COUNT(*), COALESCE(MAX(transaction_id), 0), "
            "(SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) "
            # This transaction's own events (a test's, which runs in one) are not held back.
            f"FROM {EVENTS} WHERE transaction_id >= {_HORIZON} "
            f"AND transaction_id IS DISTINCT FROM {_OWN}",
            [],  # with parameters, so that "%%" in the statement reads as "%"
        )
        waiting, highest, next_id = cursor.fetchone()
    return {
        "oldest_transaction_seconds": round(float(seconds), 3),
        "events_behind_horizon": waiting,
        # Stored events whose transaction ids this cluster has not reached: a dump restored
        # into a new cluster (see ARCHITECTURE.md, "Transaction ids after a restore").
        "transaction_ids_ahead": highest >= next_id,
    }


def partition_condition(partition: int, partitions: int) -> str:
    """An `AND` clause that keeps the events of one partition (nothing when there is one)."""
    if partitions == 1:
        return ""
    return f" AND partition_hash %% {int(partitions)} = {int(partition)}"


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _decoded(row: Sequence[Any]) -> tuple[Any, ...]:
    position, event_id, kind, ident, version, event_type, schema, payload, metadata, at, tx = row
    if at.tzinfo is None:  # SQLite stores UTC without an offset
        at = at.replace(tzinfo=UTC)
    return (
        position,
        _uuid(event_id),
        kind,
        ident,
        version,
        event_type,
        schema,
        _json(payload),
        _json(metadata),
        at,
        tx,
    )


# --- checkpoints -------------------------------------------------------------------------------


def _json_param() -> str:
    """A placeholder for JSON text bound to a JSON column."""
    return "%s::jsonb" if _connection().vendor == "postgresql" else "%s"


def _for_update(skip_locked: bool = False) -> str:
    """The row-lock clause (PostgreSQL; SQLite's IMMEDIATE transaction holds the write lock)."""
    if _connection().vendor != "postgresql":
        return ""
    return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"


def checkpoint_and_backlog(
    subscriber: str, partition: int, partitions: int, event_types: Iterable[str] | None
) -> tuple[LogPoint, bool]:
    """The partition's checkpoint (`START` before its first) and whether an event it reads
    lies after it, within the followers' horizon: one lock-free query."""
    types, params = types_condition(event_types)
    name = Checkpoint.name_for(subscriber, partition, partitions)
    after = follow_condition("c.transaction_id", "c.position")
    with _connection().cursor() as cursor:
        cursor.execute(
            "SELECT c.transaction_id, c.position, "
            f"EXISTS(SELECT 1 FROM {EVENTS} WHERE {after}{types}"
            f"{partition_condition(partition, partitions)}) "
            "FROM (SELECT COALESCE(MAX(transaction_id), 0) AS transaction_id, "
            f"COALESCE(MAX(position), 0) AS position FROM {CHECKPOINTS} WHERE name = %s) c",
            [*params, name],
        )
        transaction_id, position, waiting = cursor.fetchone()
    return LogPoint(transaction_id, position), bool(waiting)


def partitions_with_backlog(
    subscriber: str,
    partitions: int,
    event_types: Iterable[str] | None,
    *,
    recorded_before: datetime | None = None,
) -> list[int]:
    """The partitions of the subscriber with an event they read after their checkpoint (only
    events recorded before `recorded_before`, when given): one lock-free query. The
    subscriber's checkpoint rows are created first if they are missing (`ensure_partitions`)."""
    with _connection().cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {CHECKPOINTS} WHERE subscriber = %s AND partitions = %s",
            [subscriber, partitions],
        )
        if cursor.fetchone()[0] < partitions:
            with transaction.atomic():
                ensure_partitions(subscriber, partitions)
        types, params = types_condition(event_types)
        hashed = " AND partition_hash %% %s = c.partition" if partitions > 1 else ""
        recorded = " AND recorded_at < %s" if recorded_before is not None else ""
        after = follow_condition("c.transaction_id", "c.position")
        cursor.execute(
            f"SELECT c.partition FROM {CHECKPOINTS} c WHERE c.subscriber = %s "
            f"AND c.partitions = %s AND EXISTS(SELECT 1 FROM {EVENTS} "
            f"WHERE {after}{hashed}{types}{recorded}) ORDER BY c.partition",
            [
                subscriber,
                partitions,
                *([partitions] if partitions > 1 else []),
                *params,
                *([db_datetime(recorded_before)] if recorded_before is not None else []),
            ],
        )
        return [row[0] for row in cursor.fetchall()]


def partition_lags(
    subscriber: str, partitions: int, event_types: Iterable[str] | None
) -> dict[int, tuple[int, str]]:
    """For each partition of the subscriber: (how many events it reads lie after its
    checkpoint, within the followers' horizon; the error its checkpoint records, "" for none).
    A partition with no checkpoint row yet counts from the start of the log. Lock-free."""
    types, params = types_condition(event_types)
    hashed = " AND partition_hash %% %s = p.partition" if partitions > 1 else ""
    after = follow_condition("p.transaction_id", "p.position")
    with _connection().cursor() as cursor:
        cursor.execute(
            f"SELECT partition, transaction_id, position, last_error FROM {CHECKPOINTS} "
            "WHERE subscriber = %s AND partitions = %s",
            [subscriber, partitions],
        )
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
        points = [(partition, *rows.get(partition, (0, 0, ""))) for partition in range(partitions)]
        values = " UNION ALL ".join(
            [
                "SELECT CAST(%s AS BIGINT) AS partition, CAST(%s AS BIGINT) AS transaction_id, "
                "CAST(%s AS BIGINT) AS position"
            ]
            * partitions
        )
        cursor.execute(
            f"SELECT p.partition, (SELECT COUNT(*) FROM {EVENTS} WHERE {after}{hashed}{types}) "
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
    subscriber: str, partition: int, partitions: int, *, skip_locked: bool = False
) -> tuple[LogPoint, list[LogPoint] | None] | None:
    """Inside a transaction, the partition's checkpoint and the previous partitions' points
    (`handled_before`, or None), its row locked until the transaction ends. The subscriber's
    rows are created the first time (see `ensure_partitions`). With `skip_locked`, None when
    another transaction holds the row."""
    name = Checkpoint.name_for(subscriber, partition, partitions)
    select = f"SELECT transaction_id, position, handled_before FROM {CHECKPOINTS} WHERE name = %s"
    with _connection().cursor() as cursor:
        cursor.execute(select + _for_update(skip_locked), [name])
        row = cursor.fetchone()
        if row is None and skip_locked:
            cursor.execute(f"SELECT 1 FROM {CHECKPOINTS} WHERE name = %s", [name])
            if cursor.fetchone() is not None:
                return None  # another worker holds this partition
        if row is None:
            ensure_partitions(subscriber, partitions)
            cursor.execute(select + _for_update(), [name])
            row = cursor.fetchone()
    return LogPoint(row[0], row[1]), _handled_before(_json(row[2]))


def _handled_before(value: dict[str, Any] | None) -> list[LogPoint] | None:
    """The previous partitions' points, one per partition, from a checkpoint's
    `handled_before` (None: none)."""
    if not value:
        return None
    return [LogPoint.of(point) for point in value["positions"]]


class RepartitionPending(Exception):
    """The partition count changed again before the previous change was caught up."""


def ensure_partitions(subscriber: str, partitions: int) -> None:
    """Inside a transaction, create the subscriber's checkpoint rows for `partitions`.

    A subscriber's rows under another partition count (the one before a change of
    EVENTSTORE_PARTITIONS, or the single checkpoint of a database from before partitions) are
    replaced: each new partition starts at the lowest of their points and keeps them in
    `handled_before`, so that no event is handled twice or skipped.
    """
    lock = _for_update()
    with _connection().cursor() as cursor:
        cursor.execute(
            f"SELECT partitions, partition, transaction_id, position, handled_before "
            f"FROM {CHECKPOINTS} WHERE subscriber = %s{lock}",
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
                f"DELETE FROM {CHECKPOINTS} WHERE subscriber = %s AND partitions <> %s",
                [subscriber, partitions],
            )
        now = db_datetime(timezone.now())
        for partition in sorted(set(range(partitions)) - have):
            # Another worker may be creating the same rows right now. ON CONFLICT names no
            # column on purpose: a row is unique by its name and by (subscriber, partitions,
            # partition), and PostgreSQL skips a conflict only on the named index; a conflict on
            # the other one, found while both inserts are in flight, was an IntegrityError.
            cursor.execute(
                f"INSERT INTO {CHECKPOINTS} (name, subscriber, partition, partitions, "
                "transaction_id, position, handled_before, last_error, updated_at) "
                f"VALUES (%s, %s, %s, %s, %s, %s, {_json_param()}, '', %s) "
                "ON CONFLICT DO NOTHING",
                [
                    Checkpoint.name_for(subscriber, partition, partitions),
                    subscriber,
                    partition,
                    partitions,
                    start.transaction_id,
                    start.position,
                    None if handled_before is None else json.dumps(handled_before),
                    now,
                ],
            )


class CheckpointMoved(Exception):
    """A checkpoint was not where its locked read found it: another worker moved it."""


def save_checkpoint(
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
    Fenced: raises CheckpointMoved, so the caller's transaction rolls back with every effect of
    the batch, when the row is gone or no longer at `read_at`."""
    stored = None
    if handled_before is not None:
        stored = {"partitions": len(handled_before), "positions": [list(p) for p in handled_before]}
    with _connection().cursor() as cursor:
        cursor.execute(
            f"UPDATE {CHECKPOINTS} SET transaction_id = %s, position = %s, "
            f"handled_before = {_json_param()}, last_error = %s, failed_position = %s, "
            "updated_at = %s WHERE name = %s AND transaction_id = %s AND position = %s",
            [
                point.transaction_id,
                point.position,
                None if stored is None else json.dumps(stored),
                error,
                failed_position,
                db_datetime(now),
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


# --- calls owed to the outside world (eventstore.effects) -------------------------------------

_PENDING = Effect.Status.PENDING.value
_DUE = f"subscriber = %s AND status = '{_PENDING}' AND due_at <= %s"


def owe_effect(subscriber: str, event_id: uuid.UUID, position: int, event_type: str) -> None:
    """Record, inside the checkpoint's transaction, that `subscriber` owes a call for the event
    (due now); a second record of the same event is skipped."""
    now = db_datetime(timezone.now())
    with _connection().cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EFFECTS} (subscriber, event_id, position, event_type, status, "
            "attempts, due_at, last_error, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, 0, %s, '', %s, %s) "
            "ON CONFLICT (subscriber, event_id) DO NOTHING",
            [subscriber, db_uuid(event_id), position, event_type, _PENDING, now, now, now],
        )


def effect_due(subscriber: str, now: datetime) -> bool:
    """Whether a pending call of the subscriber is due: one lock-free look."""
    with _connection().cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {EFFECTS} WHERE {_DUE} LIMIT 1", [subscriber, db_datetime(now)]
        )
        return cursor.fetchone() is not None


def claim_effect(
    subscriber: str, now: datetime, until: datetime, token: uuid.UUID
) -> tuple[int, uuid.UUID, int] | None:
    """Take the oldest due pending call of the subscriber: count the attempt, store `token` and
    push its due time to `until`, in one statement of its own (committed at once); (id, event
    id, attempt) or None. Concurrent claimers skip each other's rows on PostgreSQL; SQLite's
    single writer serialises them."""
    connection = _connection()
    skip = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {EFFECTS} SET attempts = attempts + 1, claim = %s, due_at = %s, "
            f"updated_at = %s WHERE id = (SELECT id FROM {EFFECTS} WHERE {_DUE} "
            f"ORDER BY due_at, id LIMIT 1{skip}) RETURNING id, event_id, attempts",
            [db_uuid(token), db_datetime(until), db_datetime(now), subscriber, db_datetime(now)],
        )
        row = cursor.fetchone()
    return None if row is None else (row[0], _uuid(row[1]), row[2])


def finish_effect(
    effect_id: int,
    token: uuid.UUID,
    *,
    status: str,
    last_error: str,
    due_at: datetime | None,
    now: datetime,
) -> bool:
    """Record how a claimed call went, unless another claim has replaced `token` since."""
    due = "due_at = %s, " if due_at is not None else ""
    params = [status, last_error, *([db_datetime(due_at)] if due_at is not None else [])]
    with _connection().cursor() as cursor:
        cursor.execute(
            f"UPDATE {EFFECTS} SET claim = NULL, status = %s, last_error = %s, {due}"
            "updated_at = %s WHERE id = %s AND claim = %s",
            [*params, db_datetime(now), effect_id, db_uuid(token)],
        )
        return cursor.rowcount == 1


# --- the stream index --------------------------------------------------------------------------


def upsert_streams(rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert or move on stream index rows of (aggregate_type, aggregate_id, version,
    last_event_type, last_position, first_recorded_at, last_recorded_at); an existing row keeps
    its `first_recorded_at`."""
    connection = _connection()
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start : start + _INSERT_CHUNK]
            values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {STREAMS} (aggregate_type, aggregate_id, version, last_event_type, "
                f"last_position, first_recorded_at, last_recorded_at) VALUES {values} "
                "ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET "
                "version = excluded.version, last_event_type = excluded.last_event_type, "
                "last_position = excluded.last_position, "
                "last_recorded_at = excluded.last_recorded_at",
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


# --- snapshots ---------------------------------------------------------------------------------


_SNAPSHOT_MARK = "__snapshot__"


def stream_for_load(
    aggregate_type: str, aggregate_id: str, state_version: int | None
) -> tuple[tuple[int, Any] | None, list[tuple[int, str, int, Any]]]:
    """What loading an aggregate reads, in one query: its snapshot in `state_version`'s format
    ((version, state); None when there is none or `state_version` is None) and the
    (version, event_type, schema_version, payload) of each event after it, in version order."""
    events = (
        f"SELECT version, event_type, schema_version, payload FROM {EVENTS} "
        "WHERE aggregate_type = %s AND aggregate_id = %s"
    )
    if state_version is None:
        sql, params = f"{events} ORDER BY version", [aggregate_type, aggregate_id]
    else:
        snapshot = (
            f"FROM {SNAPSHOTS} WHERE aggregate_type = %s AND aggregate_id = %s "
            "AND state_version = %s"
        )
        key = (aggregate_type, aggregate_id, state_version)
        sql = (
            f"SELECT version, %s, NULL, state {snapshot} UNION ALL {events} AND version > "
            f"COALESCE((SELECT version {snapshot}), 0) ORDER BY 1"
        )
        params = [_SNAPSHOT_MARK, *key, aggregate_type, aggregate_id, *key]
    with _connection().cursor() as cursor:
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


def upsert_snapshots(rows: Sequence[tuple[str, str, int, int, str]]) -> None:
    """Write snapshots of (aggregate_type, aggregate_id, version, state_version, state JSON
    text), replacing each aggregate's previous one."""
    connection = _connection()
    state = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    values = ", ".join([f"(%s, %s, %s, %s, {state}, %s)"] * len(rows))
    now = db_datetime(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SNAPSHOTS} (aggregate_type, aggregate_id, version, state_version, "
            f"state, taken_at) VALUES {values} "
            "ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET "
            "version = excluded.version, state_version = excluded.state_version, "
            "state = excluded.state, taken_at = excluded.taken_at",
            [value for row in rows for value in (*row, now)],
        )
