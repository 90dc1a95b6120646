"""PostgreSQL's recorder: concurrent appends followed by transaction id, row locks, JSONB and
native UUIDs."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import OperationalError
from django.utils import timezone

from eventstore.models import Checkpoint, Effect, Event, Stream
from eventstore.recorders.base import Recorder
from eventstore.recorders.checkpoints import CheckpointMove, handled_before_points
from eventstore.recorders.events import Appended, NewRow, StreamRows
from eventstore.recorders.shadows import (
    names_retired_index,
    names_shadow_index,
    retired_name,
    shadow_name,
)
from eventstore.recorders.tables import current_connection, written_fields
from eventstore.records import LogPoint, RecordedEvent

# PostgreSQL: an event is followed only once its transaction id lies below the horizon: the
# oldest of the project's transactions still running (by the statement's snapshot), this
# transaction's own id included. Every transaction below it that could append has ended, so each
# event sorted before it is visible, or never will be; an event appended later sorts at or after
# its own transaction's id (`PostgresRecorder._build_append_sql`), which is at or above the
# horizon.
# The project's transactions are those of sessions carrying its application_name
# (DATABASE_APPLICATION_NAME) in this database: the snapshot lists every running transaction of
# the cluster, and those that pg_stat_activity shows only in sessions of another database or
# another application name are left out, so a psql session or a report left open holds nobody
# back. An id pg_stat_activity does not show (a prepared transaction's, one taken after this
# transaction first read pg_stat_activity) or shows without its database and application name
# counts: the horizon errs towards waiting. An event inserted by another client is not followed
# gap-free (docs/EVENTSTORE.md).
# A transaction also follows the events it appended itself (a test runs in one transaction):
# followers in production never read after appending in one transaction (a batch reads before
# it handles; dispatch runs after commit), and must not, as an older writer still running could
# commit events that sort before those.
_XID_MODULUS = "4294967296"  # pg_stat_activity shows 32-bit ids; the snapshot, 64-bit ones
_THIS_DATABASE = "(SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())"


def _foreign_transactions(application_name: str | None) -> str:
    """The ids (modulo 2^32) of running transactions that pg_stat_activity shows only in
    sessions of another database or, when `application_name` is given, of another application:
    transactions that cannot append events here. Every row showing an id must say so."""
    from psycopg import sql

    foreign = f"a.datid <> {_THIS_DATABASE}"
    if application_name:
        name = sql.Literal(application_name).as_string(None).replace("%", "%%")
        foreign += f" OR a.application_name <> {name}"
    return (
        "SELECT a.backend_xid::text::bigint FROM pg_catalog.pg_stat_get_activity(NULL) a "
        "WHERE a.backend_xid IS NOT NULL GROUP BY a.backend_xid::text::bigint "
        # A hidden (NULL) database or application name makes the row's answer NULL: it counts.
        f"HAVING bool_and(COALESCE({foreign}, false))"
    )


def _horizon(application_name: str | None) -> str:
    """The horizon (see above) as a scalar subquery."""
    return (
        "(SELECT LEAST(pg_snapshot_xmax(s)::text::bigint, "
        "pg_current_xact_id_if_assigned()::text::bigint, "
        f"(SELECT MIN(x::text::bigint) FROM pg_snapshot_xip(s) x WHERE x::text::bigint %% "
        f"{_XID_MODULUS} NOT IN ({_foreign_transactions(application_name)}))) "
        "FROM pg_current_snapshot() s)"
    )


_OWN = "(SELECT pg_current_xact_id_if_assigned()::text::bigint)"
# The stream index's columns, in the order the append writes them.
_INDEX_FIELDS = [field.name for field in written_fields(Stream)]


def _rows_json(streams: Sequence[StreamRows]) -> str:
    """Every row of the append as one JSON array, each row an object of its stream's place
    (n), its own (k) and `NewRow`'s fields; payload and metadata go in as the JSON they are."""
    return (
        "["
        + ",".join(
            f'{{"n":{n},"k":{k},"event_id":"{row.event_id}","event_type":{json.dumps(row.event_type)},'
            f'"schema_version":{int(row.schema_version)},"payload":{row.payload},'
            f'"metadata":{row.metadata},"recorded_at":"{row.recorded_at.isoformat()}",'
            f'"correlation_id":{json.dumps(row.correlation_id)},'
            f'"partition_hash":{int(row.partition_hash)}}}'
            for n, stream in enumerate(streams)
            for k, row in enumerate(stream.rows, start=1)
        )
        + "]"
    )


class PostgresRecorder(Recorder):
    """PostgreSQL: appends run concurrently and followers read the log by (transaction id,
    position) up to the oldest transaction still running; rows are locked, JSON is JSONB."""

    json_mark = "%s::jsonb"

    @staticmethod
    def db_uuid(value: uuid.UUID) -> Any:
        """An event id as the column stores it (a native uuid)."""
        return value

    def _new_events(self, layout: tuple[int, ...]) -> str:
        """As the base class's, but the rows come in one JSON parameter (`_rows_json`), which
        the server unpacks, instead of a parameter per value: the driver adapts a few values
        per append rather than dozens."""
        stream_values = ", ".join(f"({n}, %s, %s, CAST(%s AS INTEGER))" for n in range(len(layout)))
        fields = [Event._meta.get_field(name) for name in NewRow._fields]
        columns = ", ".join(
            f"{field.name} {field.db_type(current_connection())}" for field in fields
        )
        return (
            f"s (n, aggregate_type, aggregate_id, expected) AS (VALUES {stream_values}), "
            f"v AS (SELECT * FROM jsonb_to_recordset(CAST(%s AS jsonb)) "
            f"AS v (n integer, k integer, {columns}))"
        )

    def _append_params(self, streams: Sequence[StreamRows]) -> list[Any]:
        return [
            *(
                value
                for stream in streams
                for value in (stream.aggregate_type, stream.aggregate_id, stream.expected_version)
            ),
            _rows_json(streams),
        ]

    def append(
        self,
        streams: Sequence[StreamRows],
        *,
        lock_timeout_ms: int,
        owed: Sequence[tuple[str, Any]] = (),
    ) -> Appended:
        """One statement: the heads, the checks, the insert, the stream index and the calls
        owed (see `_build_append_sql`), after `SET LOCAL lock_timeout`, which must come first:
        the statement takes the log table's lock before any of it runs. Both go in one round
        trip, or in two where the connection binds values on the server (one statement per
        execute).
        """
        sql = self._append_sql((tuple(len(stream.rows) for stream in streams), len(owed)))
        now = self.db_datetime(timezone.now())
        params = [
            *self._append_params(streams),
            *(value for name, event_id in owed for value in (name, event_id)),
            *([now, now, now] if owed else []),
        ]
        timeout = f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"
        connection = current_connection()
        with connection.cursor() as cursor:
            if connection.settings_dict["OPTIONS"].get("server_side_binding"):
                cursor.execute(timeout)
                cursor.execute(sql, params)
            else:
                cursor.execute(f"{timeout}; {sql}", params)
                cursor.nextset()
            rows = cursor.fetchall()
        points = {}
        stored: set[uuid.UUID] = set()
        heads = {}
        for position, event_id, transaction_id, version in rows:
            if position is not None:
                points[event_id] = (position, transaction_id, version)
            elif event_id is not None:
                stored.add(event_id)
            else:
                stream = streams[transaction_id]  # a refusal's head row: (n, version)
                heads[(stream.aggregate_type, stream.aggregate_id)] = version
        if heads:
            return Appended({}, stored, heads)
        return Appended(points)

    def _build_append_sql(self, shape: tuple[tuple[int, ...], int]) -> str:
        """Each stream's head (its highest version and that event's transaction id, by one
        seek at the end of the stream's index), whether every expected version holds and no
        event id is stored (`ok`), the insert when it is ok, the stream index moved to each
        stream's last inserted event, and what the statement gives back: the inserted rows'
        (position, event id, transaction id, version), or, refused, each stored event id and
        each stream's (n, version). A row that another writer's insert made break a unique key
        since the check is skipped (ON CONFLICT DO NOTHING) and missing from what comes back.

        An appended event's transaction id is its own transaction's (the top-level one, also
        inside a savepoint), raised to its stream's previous event's when that is higher:
        followers then read each stream in version order, also when a transaction took its id
        before another writer appended to the stream and committed (a subscriber's batch
        locks its checkpoint row first; a command retried inside an outer transaction keeps
        that transaction's id). It is never lowered: an event always sorts at or after its own
        transaction's id, so it stays behind every follower's horizon until its transaction
        has ended (see `follow_condition`).
        """
        layout, owed = shape
        e = self.events
        columns = [getattr(e, name) for name in NewRow._fields]
        written = [e.aggregate_type, e.aggregate_id, e.version, e.transaction_id, *columns]
        ok = "(SELECT ok FROM ok)"
        return (
            f"WITH {self._new_events(layout)}, "
            "h AS (SELECT s.n, s.aggregate_type, s.aggregate_id, s.expected, "
            "COALESCE(t.version, 0) AS version, COALESCE(t.transaction_id, 0) AS transaction_id "
            f"FROM s LEFT JOIN LATERAL (SELECT {e.version} AS version, {e.transaction_id} AS "
            f"transaction_id FROM {e} WHERE {e.aggregate_type} = s.aggregate_type AND "
            f"{e.aggregate_id} = s.aggregate_id ORDER BY {e.version} DESC LIMIT 1) t ON true), "
            f"stored AS (SELECT {e.event_id} AS event_id FROM {e} "
            f"WHERE {e.event_id} IN (SELECT event_id FROM v)), "
            "ok AS (SELECT NOT EXISTS (SELECT 1 FROM h WHERE h.expected <> h.version) "
            "AND NOT EXISTS (SELECT 1 FROM stored) AS ok), "
            f"i AS (INSERT INTO {e} ({', '.join(written)}) "
            "SELECT h.aggregate_type, h.aggregate_id, h.version + v.k, "
            "GREATEST(pg_current_xact_id()::text::bigint, h.transaction_id), "
            f"{', '.join(f'v.{name}' for name in NewRow._fields)} FROM v JOIN h ON h.n = v.n "
            f"WHERE {ok} ORDER BY v.n, v.k ON CONFLICT DO NOTHING RETURNING {e.position}, "
            f"{e.event_id}, {e.transaction_id}, {e.version}, {e.aggregate_type}, "
            f"{e.aggregate_id}, {e.event_type}, {e.recorded_at}), "
            f"{self._stream_index_sql()}{self._owed_sql(owed)}"
            f"SELECT {e.position}, {e.event_id}, {e.transaction_id}, {e.version}::bigint FROM i "
            "UNION ALL SELECT NULL::bigint, NULL::uuid, h.n::bigint, h.version::bigint FROM h "
            f"WHERE NOT {ok} "
            "UNION ALL SELECT NULL::bigint, stored.event_id, NULL::bigint, NULL::bigint "
            f"FROM stored WHERE NOT {ok}"
        )

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
        """One statement: the checkpoint row locked, and the batch after it read in the same
        statement's snapshot (a checkpoint moved while the lock was waited for reads as it now
        stands, and every event the snapshot cannot see yet sorts after the horizon it
        computes). A row that is missing, or held with `skip_locked`, is left to the base
        class's statements, which tell the two apart and create missing rows."""
        c = self.checkpoints
        types = None if event_types is None else tuple(sorted(event_types))
        filters, params = self._filters(types, (partition, partitions))

        def build() -> str:
            after = self.follow_condition(f"c.{c.transaction_id}", f"c.{c.position}")
            return (
                f"WITH c AS (SELECT {c.transaction_id}, {c.position}, {c.handled_before} "
                f"FROM {c} WHERE {c.name} = %s{self._for_update(skip_locked)}) "
                f"SELECT c.{c.transaction_id}, c.{c.position}, c.{c.handled_before}, e.* FROM c "
                f"LEFT JOIN LATERAL ({self._select_events} WHERE {after}{filters} "
                f"ORDER BY {self.follow_order()} LIMIT {int(limit)}) e ON true"
            )

        key = ("lock_and_read", types, partition, partitions, limit, skip_locked)
        sql = self._statement(key, build)
        with current_connection().cursor() as cursor:
            cursor.execute(sql, [Checkpoint.name_for(subscriber, partition, partitions), *params])
            rows = cursor.fetchall()
        if not rows:
            return super().lock_and_read(
                subscriber, partition, partitions, event_types, limit, skip_locked=skip_locked
            )
        transaction_id, position, handled_before = rows[0][:3]
        batch = [self._recorded(row[3:]) for row in rows if row[3] is not None]
        return LogPoint(transaction_id, position), handled_before_points(handled_before), batch

    def lock_and_read_many(
        self,
        wanted: Sequence[tuple[str, int, int, Iterable[str] | None]],
        limit: int,
    ) -> list[tuple[LogPoint, list[LogPoint] | None, list[RecordedEvent]]] | None:
        """One statement: every checkpoint row locked in name order, and each one's batch read
        after it in the statement's snapshot (as `lock_and_read`). None when a row is missing:
        the rows found are locked already, so creating it now could take locks out of name
        order; the caller rolls back and catches each partition up on its own."""
        names = [Checkpoint.name_for(*entry[:3]) for entry in wanted]
        params: list[Any] = []
        for n, (name, (_, partition, partitions, types)) in enumerate(
            zip(names, wanted, strict=True)
        ):
            params += [n, name, None if types is None else sorted(types), partition, partitions]
        sql = self._statement(
            ("lock_and_read_many", len(wanted), limit), lambda: self._build_many(len(wanted), limit)
        )
        with current_connection().cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if len({row[0] for row in rows}) < len(wanted):
            return None
        held: list[Any] = [None] * len(wanted)
        for n, transaction_id, position, handled_before, *event in rows:
            if held[n] is None:
                held[n] = (
                    LogPoint(transaction_id, position),
                    handled_before_points(handled_before),
                    [],
                )
            if event[0] is not None:
                held[n][2].append(self._recorded(event))
        return held

    def _build_many(self, count: int, limit: int) -> str:
        c, e = self.checkpoints, self.events
        values = ", ".join(["(%s, %s, CAST(%s AS text[]), %s, %s)"] * count)
        after = self.follow_condition(f"c.{c.transaction_id}", f"c.{c.position}")
        return (
            f"WITH w (n, name, types, p, pp) AS (VALUES {values}), "
            f"c AS (SELECT w.n, k.{c.transaction_id}, k.{c.position}, k.{c.handled_before}, "
            f"w.types, w.p, w.pp FROM w JOIN {c} k ON k.{c.name} = w.name ORDER BY k.{c.name} "
            f"FOR UPDATE OF k) "
            f"SELECT c.n, c.{c.transaction_id}, c.{c.position}, c.{c.handled_before}, e.* "
            f"FROM c LEFT JOIN LATERAL ({self._select_events} WHERE {after} "
            f"AND (c.types IS NULL OR {e.event_type} = ANY(c.types)) "
            f"AND (c.pp = 1 OR {e.partition_hash} %% c.pp = c.p) "
            f"ORDER BY {self.follow_order()} LIMIT {int(limit)}) e ON true ORDER BY c.n"
        )

    def save_checkpoints(self, moves: Sequence[CheckpointMove], *, now: datetime) -> None:
        """Several moves in one statement, fenced alike: each row must be where it was read."""
        if len(moves) < 2:
            super().save_checkpoints(moves, now=now)
            return
        c = self.checkpoints

        def build() -> str:
            row = (
                "(CAST(%s AS bigint), CAST(%s AS bigint), CAST(%s AS jsonb), %s, "
                "CAST(%s AS bigint), CAST(%s AS timestamptz), %s, CAST(%s AS bigint), "
                "CAST(%s AS bigint))"
            )
            return (
                f"UPDATE {c} k SET {c.transaction_id} = v.tx, {c.position} = v.pos, "
                f"{c.handled_before} = v.hb, {c.last_error} = v.err, "
                f"{c.failed_position} = v.fp, {c.updated_at} = v.at "
                f"FROM (VALUES {', '.join([row] * len(moves))}) "
                "v (tx, pos, hb, err, fp, at, name, read_tx, read_pos) "
                f"WHERE k.{c.name} = v.name AND k.{c.transaction_id} = v.read_tx "
                f"AND k.{c.position} = v.read_pos"
            )

        at = self.db_datetime(now)
        with current_connection().cursor() as cursor:
            cursor.execute(
                self._statement(("save_checkpoints", len(moves)), build),
                [value for move in moves for value in move.params(at)],
            )
            if cursor.rowcount != len(moves):
                raise moves[0].moved()

    def claim_effects(
        self, subscriber: str, now: datetime, until: datetime, token: uuid.UUID, limit: int
    ) -> list[tuple[int, int, str, RecordedEvent]]:
        """One statement: the claimed rows come back with the events they are owed for."""
        e, f = self.events, self.effects
        sql = self._claim(
            ", ".join(f"e.{column}" for column in e.columns(RecordedEvent._fields)),
            join=f" FROM {e} e",
            on=f"e.{e.event_id} = {f}.{f.event_id} AND ",
        )
        with current_connection().cursor() as cursor:
            cursor.execute(sql, self._claim_params(subscriber, now, until, token, limit))
            rows = cursor.fetchall()
        return sorted((row[0], row[1], row[2], self._recorded(row[3:])) for row in rows)

    def _stream_index_sql(self) -> str:
        """The append's CTE that moves the stream index to each stream's last inserted event
        (a new row keeps its first_recorded_at from then on)."""
        e, index = self.events, self.streams
        moved = [index.version, index.last_event_type, index.last_position, index.last_recorded_at]
        return (
            f"x AS (INSERT INTO {index} ({', '.join(index.columns(_INDEX_FIELDS))}) "
            f"SELECT DISTINCT ON ({e.aggregate_type}, {e.aggregate_id}) {e.aggregate_type}, "
            f"{e.aggregate_id}, {e.version}, {e.event_type}, {e.position}, {e.recorded_at}, "
            f"{e.recorded_at} FROM i ORDER BY {e.aggregate_type}, {e.aggregate_id}, "
            f"{e.version} DESC ON CONFLICT ({index.aggregate_type}, {index.aggregate_id}) "
            f"DO UPDATE SET {', '.join(f'{column} = excluded.{column}' for column in moved)}) "
        )

    def _owed_sql(self, owed: int) -> str:
        """The append's CTEs that record the calls it owes (`owed` of them: (subscriber name,
        event id) each, then the time twice), for the rows it inserted, once each."""
        if not owed:
            return ""
        e, f = self.events, self.effects
        values = ", ".join(["(%s, CAST(%s AS uuid))"] * owed)
        return (
            f", w (subscriber, event_id) AS (VALUES {values}), "
            f"owed AS (INSERT INTO {f} ({f.subscriber}, {f.event_id}, {f.position}, "
            f"{f.event_type}, {f.status}, {f.attempts}, {f.due_at}, {f.claim}, {f.last_error}, "
            f"{f.created_at}, {f.updated_at}) SELECT w.subscriber, i.{e.event_id}, "
            f"i.{e.position}, i.{e.event_type}, '{Effect.Status.PENDING.value}', 0, "
            f"CAST(%s AS timestamptz), NULL, '', CAST(%s AS timestamptz), "
            f"CAST(%s AS timestamptz) FROM w JOIN i ON i.{e.event_id} = w.event_id "
            f"ON CONFLICT ({f.subscriber}, {f.event_id}) DO NOTHING) "
        )

    def hold_appends(self) -> None:
        """Inside a transaction, keep every appender waiting until it ends: a SHARE lock on the
        log, which readers pass and appenders wait for."""
        with current_connection().cursor() as cursor:
            cursor.execute(f"LOCK TABLE {self.events} IN SHARE MODE")

    def lock_appends(self, lock_timeout_ms: int) -> None:
        """Inside a transaction, make every other appender wait until it ends: the log table's
        EXCLUSIVE lock, which readers pass, waited for at most `lock_timeout_ms`."""
        statements = [
            f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}",
            f"LOCK TABLE {self.events} IN EXCLUSIVE MODE",
        ]
        connection = current_connection()
        with connection.cursor() as cursor:
            if connection.settings_dict["OPTIONS"].get("server_side_binding"):
                for statement in statements:  # one statement per execute on this protocol
                    cursor.execute(statement)
            else:  # one round trip for both
                cursor.execute("; ".join(statements))

    @staticmethod
    def is_lock_timeout(error: OperationalError) -> bool:
        """psycopg's LockNotAvailable, SQLSTATE 55P03: lock_timeout ran out."""
        return getattr(error.__cause__, "sqlstate", None) == "55P03"

    def _horizon(self) -> str:
        """The horizon for the current connection's application name (module comment)."""
        return self._statement(
            "horizon",
            lambda: _horizon(current_connection().settings_dict["OPTIONS"].get("application_name")),
        )

    def follow_condition(self, transaction_id: str = "%s", position: str = "%s") -> str:
        """Events after the point in (transaction id, position) order whose transaction id lies
        below the horizon (or is this transaction's own)."""
        e = self.events
        return (
            f"({e.transaction_id}, {e.position}) > ({transaction_id}, {position}) "
            f"AND ({e.transaction_id} < {self._horizon()} OR {e.transaction_id} = {_OWN})"
        )

    def point_condition(self) -> str:
        """Events after the point in (transaction id, position) order."""
        e = self.events
        return f"({e.transaction_id}, {e.position}) > (%s, %s)"

    def follow_params(self, point: LogPoint) -> list[int]:
        """The point's transaction id and position."""
        return [point.transaction_id, point.position]

    def follow_order(self) -> str:
        """By transaction id, then position."""
        return f"{self.events.transaction_id}, {self.events.position}"

    def followable(self, transaction_id: int) -> bool:
        """Whether every transaction of the project that could sort before events stored with
        `transaction_id` has ended."""
        if not transaction_id:
            return True
        with current_connection().cursor() as cursor:
            cursor.execute(
                self._statement(
                    "followable", lambda: f"SELECT %s < {self._horizon()} OR %s = {_OWN}"
                ),
                [transaction_id, transaction_id],
            )
            return bool(cursor.fetchone()[0])

    def _build_held(self) -> str:
        foreign = _foreign_transactions(
            current_connection().settings_dict["OPTIONS"].get("application_name")
        )
        return (
            "WITH a AS (SELECT pid, application_name, state, xact_start, datid, "
            f"backend_xid::text::bigint NOT IN ({foreign}) AS counted "
            "FROM pg_catalog.pg_stat_get_activity(NULL) "
            "WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()) "
            "SELECT DISTINCT ON (counted) counted, "
            "EXTRACT(EPOCH FROM clock_timestamp() - xact_start), pid, application_name, state "
            "FROM a WHERE counted "
            f"OR datid = {_THIS_DATABASE} "
            "ORDER BY counted, xact_start NULLS LAST"
        )

    def held_by(self) -> dict[str, dict[str, Any] | None]:
        """The oldest running transaction (other than this one's) that followers wait for
        (`waiting_for`) and the oldest of this database they leave out (`ignored`), each as its
        age in seconds, pid, application name and state, or None. The age, name and state are
        None where pg_stat_activity hides them (another role's session, without
        pg_read_all_stats); prepared transactions, which it does not show, are not listed."""
        with current_connection().cursor() as cursor:
            cursor.execute(self._statement("held_by", self._build_held), [])
            rows = cursor.fetchall()
        found: dict[str, dict[str, Any] | None] = {"waiting_for": None, "ignored": None}
        for counted, seconds, pid, application_name, state in rows:
            found["waiting_for" if counted else "ignored"] = {
                "seconds": None if seconds is None else round(float(seconds), 3),
                "pid": pid,
                "application_name": application_name,
                "state": state,
            }
        return found

    def horizon(self) -> dict[str, Any] | None:
        """What holds followers back: the oldest running transaction they wait for and the
        oldest they leave out (`held_by`), and how many committed events wait behind the
        horizon. A long or idle transaction of the project holds every follower back for as
        long as it runs."""
        e = self.events
        held = self.held_by()
        with current_connection().cursor() as cursor:
            cursor.execute(
                self._statement(
                    "behind_horizon",
                    lambda: (
                        f"SELECT COUNT(*), COALESCE(MAX({e.transaction_id}), 0), "
                        "(SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) "
                        # This transaction's own events (a test's, which runs in one) are not
                        # held back.
                        f"FROM {e} WHERE {e.transaction_id} >= {self._horizon()} "
                        f"AND {e.transaction_id} IS DISTINCT FROM {_OWN}"
                    ),
                ),
                [],  # with parameters, so that "%%" in the statement reads as "%"
            )
            waiting, highest, next_id = cursor.fetchone()
        waiting_for = held["waiting_for"]
        return {
            "oldest_transaction_seconds": (waiting_for and waiting_for["seconds"]) or 0.0,
            "waiting_for": waiting_for,
            "oldest_ignored": held["ignored"],
            "events_behind_horizon": waiting,
            # Stored events whose transaction ids this cluster has not reached: a dump restored
            # into a new cluster (see ARCHITECTURE.md, "Transaction ids after a restore").
            "transaction_ids_ahead": highest >= next_id,
        }

    def _for_update(self, skip_locked: bool = False) -> str:
        """Rows are locked; with `skip_locked`, rows another transaction holds are passed."""
        return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"

    # --- read-model copies for rebuilds (see ShadowRecorder) ------------------------------------

    def create_shadow(self, table: str) -> dict[str, str]:
        """The copy takes the live table's columns, defaults, checks and identity (LIKE), then
        its primary key, unique constraints and indexes under names of its own, and each takes
        its live counterpart's name when the copy is switched in."""
        quote = current_connection().ops.quote_name
        shadow = shadow_name(table)
        names: dict[str, str] = {}
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE {quote(shadow)} (LIKE {quote(table)} INCLUDING DEFAULTS "
                "INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE)"
            )
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'x') ORDER BY conname",
                [quote(table)],
            )
            for name, definition in cursor.fetchall():
                new = names_shadow_index(name)
                cursor.execute(
                    f"ALTER TABLE {quote(shadow)} ADD CONSTRAINT {quote(new)} {definition}"
                )
                names[new] = name
            cursor.execute(
                "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) "
                "ORDER BY i.relname",
                [quote(table)],
            )
            for name, definition in cursor.fetchall():
                new = names_shadow_index(name)
                cursor.execute(
                    re.sub(
                        r"^CREATE (UNIQUE )?INDEX (?:\"[^\"]+\"|\S+) ON (?:ONLY )?\S+ ",
                        lambda match, new=new: (
                            f"CREATE {match.group(1) or ''}INDEX {quote(new)} ON {quote(shadow)} "
                        ),
                        definition,
                    )
                )
                names[new] = name
        return names

    def switch_shadow(self, table: str, index_names: dict[str, str]) -> None:
        """Rename the tables, then the live table's indexes out of the way and the copy's to
        their names, so that the switched-in table is named as the migrations made it."""
        quote = current_connection().ops.quote_name
        with current_connection().cursor() as cursor:
            for name in index_names.values():
                cursor.execute(
                    f"ALTER INDEX {quote(name)} RENAME TO {quote(names_retired_index(name))}"
                )
            cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(retired_name(table))}")
            cursor.execute(f"ALTER TABLE {quote(shadow_name(table))} RENAME TO {quote(table)}")
            for new, name in index_names.items():
                cursor.execute(f"ALTER INDEX {quote(new)} RENAME TO {quote(name)}")

    def limit_lock_waits(self, milliseconds: int) -> None:
        """SET LOCAL lock_timeout."""
        with current_connection().cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {int(milliseconds)}")

    def begin_snapshot(self, cursor: Any) -> None:
        """A REPEATABLE READ transaction: one snapshot for all its reads."""
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    @staticmethod
    def _lock_key(name: str) -> int:
        digest = hashlib.sha256(f"eventstore.rebuild\0{name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def try_lock_rebuild(self, name: str) -> bool:
        """A session advisory lock: the server frees it with the session, however the process
        holding it ends."""
        with current_connection().cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [self._lock_key(name)])
            return bool(cursor.fetchone()[0])

    def unlock_rebuild(self, name: str) -> None:
        """Free the advisory lock."""
        with current_connection().cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [self._lock_key(name)])
