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
from typing import Any

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
)
_INSERTED = (*COLUMNS[1:], "correlation_id", "partition_hash")
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


@cache
def _insert_sql(vendor: str, rows: int) -> str:
    values = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    if vendor == "postgresql":
        values = "(%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s)"
    return (
        f"INSERT INTO {EVENTS} ({', '.join(_INSERTED)}) VALUES "
        + ", ".join([values] * rows)
        + " ON CONFLICT DO NOTHING RETURNING position, event_id"
    )


def insert(rows: Sequence[tuple[Any, ...]]) -> dict[Any, int]:
    """Insert rows of (`event_id` as stored, aggregate_type, aggregate_id, version, event_type,
    schema_version, payload JSON text, metadata JSON text, recorded_at as stored,
    correlation_id, partition_hash); return each inserted event id's position. A row that would
    break a unique key (stream version or event id) is skipped, not an error: it is missing
    from the result."""
    connection = _connection()
    positions: dict[Any, int] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start : start + _INSERT_CHUNK]
            cursor.execute(
                _insert_sql(connection.vendor, len(chunk)),
                [value for row in chunk for value in row],
            )
            positions.update((event_id, position) for position, event_id in cursor.fetchall())
    return positions


# One row per stream: its highest version, by a scalar MAX that both databases answer with a
# single seek at the end of the (aggregate_type, aggregate_id, version) index. (A GROUP BY over
# several streams read every event of each, so appends slowed down as their streams grew.)
_STREAM_VERSION = (
    f"SELECT %s, %s, COALESCE((SELECT MAX(version) FROM {EVENTS} "
    "WHERE aggregate_type = %s AND aggregate_id = %s), 0)"
)


# Streams per version query: SQLite allows at most 500 terms in one compound SELECT.
_STREAMS_PER_QUERY = 200


def _versions_sql(streams: Sequence[tuple[str, str]]) -> tuple[str, list[str]]:
    sql = " UNION ALL ".join([_STREAM_VERSION] * len(streams))
    return sql, [value for stream in streams for value in (*stream, *stream)]


def stored_ids_and_versions(
    event_ids: Sequence[uuid.UUID], streams: Sequence[tuple[str, str]]
) -> tuple[set[uuid.UUID], dict[tuple[str, str], int]]:
    """Which of these event ids are stored already, and the highest stored version of each
    (aggregate_type, aggregate_id) (0 for a stream with no events): one statement."""
    connection = _connection()
    stored_id = "CAST(event_id AS VARCHAR(36))" if connection.vendor == "postgresql" else "event_id"
    marks = ", ".join(["%s"] * len(event_ids))
    ids_sql = f"SELECT {stored_id}, NULL, NULL FROM {EVENTS} WHERE event_id IN ({marks})"
    ids = [db_uuid(event_id) for event_id in event_ids]
    if len(streams) > _STREAMS_PER_QUERY:  # rare: a statement for the ids, then the versions
        with connection.cursor() as cursor:
            cursor.execute(ids_sql, ids)
            stored = {_uuid(row[0]) for row in cursor.fetchall()}
        return stored, current_versions(streams)
    versions_sql, params = _versions_sql(streams)
    with connection.cursor() as cursor:
        cursor.execute(f"{versions_sql} UNION ALL {ids_sql}", params + ids)
        stored: set[uuid.UUID] = set()
        versions: dict[tuple[str, str], int] = {}
        for first, ident, version in cursor.fetchall():
            if version is None:
                stored.add(_uuid(first))
            else:
                versions[(first, ident)] = version
    return stored, versions


def current_versions(streams: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The highest stored version of each (aggregate_type, aggregate_id) (0: no events)."""
    streams = list(streams)
    versions = {}
    with _connection().cursor() as cursor:
        for start in range(0, len(streams), _STREAMS_PER_QUERY):
            cursor.execute(*_versions_sql(streams[start : start + _STREAMS_PER_QUERY]))
            versions.update(((kind, ident), version) for kind, ident, version in cursor.fetchall())
    return versions


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
    position, event_id, kind, ident, version, event_type, schema, payload, metadata, at = row
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
) -> tuple[int, bool]:
    """The partition's checkpoint (0 before its first) and whether an event it reads lies
    after it: one lock-free query."""
    types, params = types_condition(event_types)
    name = Checkpoint.name_for(subscriber, partition, partitions)
    checkpoint = f"COALESCE((SELECT position FROM {CHECKPOINTS} WHERE name = %s), 0)"
    with _connection().cursor() as cursor:
        cursor.execute(
            f"SELECT {checkpoint}, EXISTS(SELECT 1 FROM {EVENTS} WHERE position > {checkpoint}"
            f"{types}{partition_condition(partition, partitions)})",
            [name, name, *params],
        )
        position, waiting = cursor.fetchone()
    return position, bool(waiting)


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
        hashed = "partition_hash %% %s = c.partition" if partitions > 1 else "1 = 1"
        recorded = " AND recorded_at < %s" if recorded_before is not None else ""
        cursor.execute(
            f"SELECT c.partition FROM {CHECKPOINTS} c WHERE c.subscriber = %s "
            f"AND c.partitions = %s AND EXISTS(SELECT 1 FROM {EVENTS} "
            f"WHERE position > c.position AND {hashed}{types}{recorded}) ORDER BY c.partition",
            [
                subscriber,
                partitions,
                *([partitions] if partitions > 1 else []),
                *params,
                *([db_datetime(recorded_before)] if recorded_before is not None else []),
            ],
        )
        return [row[0] for row in cursor.fetchall()]


def lock_checkpoint(
    subscriber: str, partition: int, partitions: int, *, skip_locked: bool = False
) -> tuple[int, Any] | None:
    """Inside a transaction, the partition's checkpoint (position, handled_before), its row
    locked until the transaction ends. The subscriber's rows are created the first time (see
    `ensure_partitions`). With `skip_locked`, None when another transaction holds the row."""
    name = Checkpoint.name_for(subscriber, partition, partitions)
    select = f"SELECT position, handled_before FROM {CHECKPOINTS} WHERE name = %s"
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
    return row[0], _json(row[1])


class RepartitionPending(Exception):
    """The partition count changed again before the previous change was caught up."""


def ensure_partitions(subscriber: str, partitions: int) -> None:
    """Inside a transaction, create the subscriber's checkpoint rows for `partitions`.

    A subscriber's rows under another partition count (the one before a change of
    EVENTSTORE_PARTITIONS, or the single checkpoint of a database from before partitions) are
    replaced: each new partition starts at the lowest of their positions and keeps them in
    `handled_before`, so that no event is handled twice or skipped.
    """
    lock = _for_update()
    with _connection().cursor() as cursor:
        cursor.execute(
            f"SELECT partitions, partition, position, handled_before FROM {CHECKPOINTS} "
            f"WHERE subscriber = %s{lock}",
            [subscriber],
        )
        rows = cursor.fetchall()
        previous = [row for row in rows if row[0] != partitions]
        have = {row[1] for row in rows if row[0] == partitions}
        start, handled_before = 0, None
        if previous:
            counts = {row[0] for row in previous}
            if len(counts) > 1 or any(_json(row[3]) for row in previous):
                raise RepartitionPending(
                    f"{subscriber}: its partition count changed again before the previous "
                    "change was caught up; run every process with the previous "
                    "EVENTSTORE_PARTITIONS until its checkpoints show no handled_before"
                )
            (count,) = counts
            positions = [0] * count
            for _, partition, position, _ in previous:
                if partition < count:
                    positions[partition] = position
            start = min(positions)
            if max(positions) > start:
                handled_before = {"partitions": count, "positions": positions}
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
                f"INSERT INTO {CHECKPOINTS} (name, subscriber, partition, partitions, position, "
                "handled_before, last_error, updated_at) "
                f"VALUES (%s, %s, %s, %s, %s, {_json_param()}, '', %s) "
                "ON CONFLICT DO NOTHING",
                [
                    Checkpoint.name_for(subscriber, partition, partitions),
                    subscriber,
                    partition,
                    partitions,
                    start,
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
    read_at: int,
    position: int,
    handled_before: Any,
    error: str,
    failed_position: int | None,
    now: datetime,
) -> None:
    """Move a locked checkpoint from `read_at` to `position`, recording the error that stopped
    it (if any). Fenced: raises CheckpointMoved, so the caller's transaction rolls back with
    every effect of the batch, when the row is gone or no longer at `read_at`."""
    with _connection().cursor() as cursor:
        cursor.execute(
            f"UPDATE {CHECKPOINTS} SET position = %s, handled_before = {_json_param()}, "
            "last_error = %s, "
            "failed_position = %s, updated_at = %s WHERE name = %s AND position = %s",
            [
                position,
                None if handled_before is None else json.dumps(handled_before),
                error,
                failed_position,
                db_datetime(now),
                Checkpoint.name_for(subscriber, partition, partitions),
                read_at,
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
