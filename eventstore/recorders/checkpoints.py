"""The statements on subscribers' checkpoints: one row per partition of each subscriber, where
it got to in the log, read without locks to find work and locked to do it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from django.db import transaction
from django.utils import timezone

from eventstore.models import Checkpoint
from eventstore.recorders.events import EventRecorder
from eventstore.recorders.tables import as_datetime, current_connection, from_json
from eventstore.records import START, LogPoint, RecordedEvent


class RepartitionPending(Exception):
    """The partition count changed again before the previous change was caught up."""


class CheckpointMoved(Exception):
    """A checkpoint was not where its locked read found it: another worker moved it."""


class CheckpointRecorder(EventRecorder):
    """Checkpoints, which follow the log as `EventRecorder` reads it."""

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
        self,
        subscriber: str,
        partitions: int,
        event_types: Iterable[str] | None,
        *,
        exact_up_to: int | None = None,
    ) -> dict[int, tuple[int, bool, str]]:
        """For each partition of the subscriber: (how many events it reads lie after its
        checkpoint, within the followers' horizon; whether that number is exact; the error its
        checkpoint records, "" for none). A partition with no checkpoint row yet counts from the
        start of the log. Lock-free.

        With `exact_up_to`, no count reads more than that many events and one: past it, the
        number is an estimate (the positions between the checkpoint and the log's last one,
        shared among the partitions, and never below `exact_up_to` + 1), so a large backlog
        costs no more than a small one."""
        e, c = self.events, self.checkpoints
        types, params = self._types_condition(event_types)
        hashed = f" AND {e.partition_hash} %% %s = p.partition" if partitions > 1 else ""
        after = self.follow_condition("p.transaction_id", "p.position")
        matching = f"FROM {e} WHERE {after}{hashed}{types}"
        if exact_up_to is None:
            count = f"SELECT COUNT(*) {matching}"
        else:
            count = f"SELECT COUNT(*) FROM (SELECT 1 {matching} LIMIT {int(exact_up_to) + 1}) x"
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
                f"SELECT p.partition, ({count}), "
                f"(SELECT COALESCE(MAX({e.position}), 0) FROM {e}) - p.position "
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
            counts = {
                partition: (events, spread) for partition, events, spread in cursor.fetchall()
            }
        lags = {}
        for partition, _, _, error in points:
            events, spread = counts[partition]
            if exact_up_to is not None and events > exact_up_to:
                lags[partition] = (max(events, spread // partitions), False, error)
            else:
                lags[partition] = (events, True, error)
        return lags

    def oldest_unhandled(
        self, subscribers: Sequence[tuple[str, Iterable[str] | None]], partitions: int
    ) -> datetime | None:
        """When the oldest event one of the (name, event types) subscribers reads, and has not
        handled, was recorded (None: none waits), within the followers' horizon. One lock-free
        statement: per partition, one index scan from its checkpoint to the first event it
        reads; a partition with no checkpoint row yet starts at the log's start, unless no
        event of its types was ever recorded."""
        if not subscribers:
            return None
        e, c = self.events, self.checkpoints
        after = self.follow_condition(
            f"COALESCE(c.{c.transaction_id}, 0)", f"COALESCE(c.{c.position}, 0)"
        )
        hashed = f" AND {e.partition_hash} %% {int(partitions)} = p.column1" * (partitions > 1)
        numbers = ", ".join(f"({n})" for n in range(partitions))
        selects, params = [], []
        for name, event_types in subscribers:
            types, type_params = self._types_condition(event_types)
            selects.append(
                f"SELECT CASE WHEN c.{c.name} IS NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {e} WHERE 1 = 1{types}) THEN NULL "
                f"ELSE (SELECT {e.recorded_at} FROM {e} WHERE {after}{hashed}{types} "
                f"ORDER BY {self.follow_order()} LIMIT 1) END AS waiting "
                f"FROM (VALUES {numbers}) p LEFT JOIN {c} c ON c.{c.subscriber} = %s "
                f"AND c.{c.partitions} = %s AND c.{c.partition} = p.column1"
            )
            params += [*type_params, *type_params, name, partitions]
        with current_connection().cursor() as cursor:
            cursor.execute(f"SELECT MIN(waiting) FROM ({' UNION ALL '.join(selects)}) w", params)
            return as_datetime(cursor.fetchone()[0])

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
        return LogPoint(row[0], row[1]), handled_before_points(row[2])

    def lock_and_read(
        self,
        subscriber: str,
        partition: int,
        partitions: int,
        event_types: Iterable[str] | None,
        limit: int,
        *,
        skip_locked: bool = False,
    ) -> tuple[LogPoint, list[LogPoint] | None, list[RecordedEvent]] | None:
        """Inside a transaction, lock the partition's checkpoint as `lock_checkpoint` does and
        read the next batch after it as `read_new` does: the checkpoint, the previous
        partitions' points (`handled_before`) and at most `limit` events. None when another
        transaction holds the row and `skip_locked`."""
        held = self.lock_checkpoint(subscriber, partition, partitions, skip_locked=skip_locked)
        if held is None:
            return None
        read_at, handled_before = held
        batch = self.read_new(read_at, limit, event_types, (partition, partitions))
        return read_at, handled_before, batch

    def lock_and_read_many(
        self,
        wanted: Sequence[tuple[str, int, int, Iterable[str] | None]],
        limit: int,
    ) -> list[tuple[LogPoint, list[LogPoint] | None, list[RecordedEvent]]] | None:
        """`lock_and_read` for each (subscriber, partition, partitions, event types), in one
        transaction, their rows locked in name order (here one lock and read each, rows
        created as they are missing); None where that cannot be done (see `PostgresRecorder`)."""
        order = sorted(range(len(wanted)), key=lambda n: Checkpoint.name_for(*wanted[n][:3]))
        held: dict[int, Any] = {}
        for n in order:
            subscriber, partition, partitions, event_types = wanted[n]
            held[n] = self.lock_and_read(subscriber, partition, partitions, event_types, limit)
        return [held[n] for n in range(len(wanted))]

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
            start, handled_before = _restart(subscriber, previous)
            if previous:
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
        self.save_checkpoints(
            [
                CheckpointMove(
                    Checkpoint.name_for(subscriber, partition, partitions),
                    read_at,
                    point,
                    handled_before,
                    error,
                    failed_position,
                )
            ],
            now=now,
        )

    def save_checkpoints(self, moves: Sequence[CheckpointMove], *, now: datetime) -> None:
        """Move locked checkpoints as `save_checkpoint` does, fenced alike (here one statement
        each)."""
        c = self.checkpoints
        sql = self._statement(
            "save_checkpoint",
            lambda: (
                f"UPDATE {c} SET {c.transaction_id} = %s, {c.position} = %s, "
                f"{c.handled_before} = {self.json_mark}, {c.last_error} = %s, "
                f"{c.failed_position} = %s, {c.updated_at} = %s WHERE {c.name} = %s "
                f"AND {c.transaction_id} = %s AND {c.position} = %s"
            ),
        )
        with current_connection().cursor() as cursor:
            for move in moves:
                cursor.execute(sql, move.params(self.db_datetime(now)))
                if cursor.rowcount != 1:
                    raise move.moved()


class CheckpointMove(NamedTuple):
    """One checkpoint's move (see `Recorder.save_checkpoint`), by the checkpoint row's name."""

    name: str
    read_at: LogPoint
    point: LogPoint
    handled_before: list[LogPoint] | None
    error: str
    failed_position: int | None

    def params(self, now: Any) -> list[Any]:
        """The values the move sets, then the row it moves: name and where it was read at."""
        stored = None
        if self.handled_before is not None:
            stored = json.dumps(
                {
                    "partitions": len(self.handled_before),
                    "positions": [list(point) for point in self.handled_before],
                }
            )
        return [
            self.point.transaction_id,
            self.point.position,
            stored,
            self.error,
            self.failed_position,
            now,
            self.name,
            self.read_at.transaction_id,
            self.read_at.position,
        ]

    def moved(self) -> CheckpointMoved:
        """The error for a checkpoint that was not where this move read it."""
        return CheckpointMoved(
            f"{self.name}: the checkpoint moved from position {self.read_at} while this batch "
            "was handled; the batch is undone"
        )


def _restart(
    subscriber: str, previous: list[tuple[Any, ...]]
) -> tuple[LogPoint, dict[str, Any] | None]:
    """Where new partitions of a subscriber start after its rows under another count
    (`previous`: partitions, partition, transaction id, position, handled_before each): the
    lowest of their points, and every point (`handled_before`) when they differ."""
    if not previous:
        return START, None
    counts = {row[0] for row in previous}
    if len(counts) > 1 or any(from_json(row[4]) for row in previous):
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
    if max(points) == start:
        return start, None
    return start, {"partitions": count, "positions": [list(point) for point in points]}


def handled_before_points(value: dict[str, Any] | str | None) -> list[LogPoint] | None:
    """The previous partitions' points, one per partition, from a checkpoint's
    `handled_before` as read (None: none)."""
    value = from_json(value)
    if not value:
        return None
    return [LogPoint.of(point) for point in value["positions"]]
