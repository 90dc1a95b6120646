"""PostgreSQL's recorder: concurrent appends followed by transaction id, row locks, JSONB and
native UUIDs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import OperationalError

from eventstore.recorders.base import Recorder
from eventstore.recorders.tables import current_connection
from eventstore.records import LogPoint

# PostgreSQL: an event is followed only once its transaction id lies below the horizon: the
# oldest transaction of this database still running (by the statement's snapshot), this
# transaction's own id included. Every transaction below it has ended, so each event sorted
# before it is visible, or never will be; an event appended later sorts at or after its own
# transaction's id (`PostgresRecorder.transaction_id_mark`), which is at or above the horizon.
# Transactions of other databases of the cluster write no events here: the snapshot lists their
# ids too, and those that pg_stat_activity shows connected to another database are left out (an
# id it does not show, such as a prepared transaction's, counts: the horizon errs towards
# waiting).
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


class PostgresRecorder(Recorder):
    """PostgreSQL: appends run concurrently and followers read the log by (transaction id,
    position) up to the oldest transaction still running; rows are locked, JSON is JSONB."""

    json_mark = "%s::jsonb"
    # The transaction id an appended row gets: its own transaction's (the top-level one, also
    # inside a savepoint), raised to the id its stream's previous event was stored with when
    # that is higher. Raising it keeps a stream's events in version order for followers, also
    # for a transaction that took its id before another writer appended to the stream and
    # committed (a subscriber's batch locks its checkpoint row first; a command retried inside
    # an outer transaction keeps that transaction's id). It never lowers it: an event always
    # sorts at or after its own transaction's id, so it stays behind the horizon of every
    # follower until its transaction has ended (see `follow_condition`).
    transaction_id_mark = "GREATEST(pg_current_xact_id()::text::bigint, %s)"
    stored_id = "CAST({column} AS VARCHAR(36))"

    @staticmethod
    def db_uuid(value: uuid.UUID) -> Any:
        """An event id as the column stores it (a native uuid)."""
        return value

    def _build_stream_head(self) -> str:
        # The highest version and that event's transaction id, by the same single seek at the
        # end of the (aggregate_type, aggregate_id, version) index.
        e = self.events
        return (
            f"SELECT %s, %s, head.{e.version}, head.{e.transaction_id} FROM (SELECT 0 AS "
            f"{e.version}, 0::bigint AS {e.transaction_id} UNION ALL (SELECT {e.version}, "
            f"{e.transaction_id} FROM {e} WHERE {e.aggregate_type} = %s AND "
            f"{e.aggregate_id} = %s ORDER BY {e.version} DESC LIMIT 1) "
            f"ORDER BY {e.version} DESC LIMIT 1) head"
        )

    def _ids_sql(
        self, event_ids: Sequence[uuid.UUID], lock_timeout_ms: int | None
    ) -> tuple[str, list[Any]]:
        sql, params = super()._ids_sql(event_ids, lock_timeout_ms)
        if lock_timeout_ms is not None:
            # A branch that returns no row; set_config(..., true) lasts until the transaction
            # ends (one round trip fewer per append).
            sql += (
                " UNION ALL SELECT NULL, NULL, NULL, NULL "
                "WHERE set_config('lock_timeout', %s, true) IS NULL"
            )
            params.append(f"{int(lock_timeout_ms)}ms")
        return sql, params

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

    def follow_condition(self, transaction_id: str = "%s", position: str = "%s") -> str:
        """Events after the point in (transaction id, position) order whose transaction id lies
        below the horizon (or is this transaction's own)."""
        e = self.events
        return (
            f"({e.transaction_id}, {e.position}) > ({transaction_id}, {position}) "
            f"AND ({e.transaction_id} < {_HORIZON} OR {e.transaction_id} = {_OWN})"
        )

    def follow_params(self, point: LogPoint) -> list[int]:
        """The point's transaction id and position."""
        return [point.transaction_id, point.position]

    def follow_order(self) -> str:
        """By transaction id, then position."""
        return f"{self.events.transaction_id}, {self.events.position}"

    def followable(self, transaction_id: int) -> bool:
        """Whether every transaction of the database that could sort before events stored with
        `transaction_id` has ended."""
        if not transaction_id:
            return True
        with current_connection().cursor() as cursor:
            cursor.execute(
                f"SELECT %s < {_HORIZON} OR %s = {_OWN}", [transaction_id, transaction_id]
            )
            return bool(cursor.fetchone()[0])

    def horizon(self) -> dict[str, Any] | None:
        """The age in seconds of the oldest transaction of this database still running that
        has written anything, and how many committed events wait behind the horizon. A long or
        idle transaction holds every follower back for as long as it runs."""
        e = self.events
        with current_connection().cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - MIN(xact_start)), 0) "
                "FROM pg_stat_activity WHERE backend_xid IS NOT NULL "
                "AND pid <> pg_backend_pid() AND datname = current_database()"
            )
            (seconds,) = cursor.fetchone()
            cursor.execute(
                f"SELECT COUNT(*), COALESCE(MAX({e.transaction_id}), 0), "
                "(SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) "
                # This transaction's own events (a test's, which runs in one) are not held back.
                f"FROM {e} WHERE {e.transaction_id} >= {_HORIZON} "
                f"AND {e.transaction_id} IS DISTINCT FROM {_OWN}",
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

    def _for_update(self, skip_locked: bool = False) -> str:
        """Rows are locked; with `skip_locked`, rows another transaction holds are passed."""
        return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"
