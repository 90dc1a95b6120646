"""The baseline: the same log table written and read with the bare database driver.

`RawLog` holds a connection made by the standard library's sqlite3 (or psycopg for PostgreSQL)
to a database of its own, with a table equivalent to the project's event table: the same
columns, the same unique (aggregate_type, aggregate_id, version) key, the same unique event id
and the same secondary indexes. Its append keeps the store's guarantees the cheapest way the
driver allows: one transaction per call, the expected-version check, JSON payloads, and a log
that followers can read without skipping an event: SQLite's writers' lock (BEGIN IMMEDIATE);
on PostgreSQL no lock, and each event's transaction id, raised to its stream's previous
event's (eventstore/recorders/postgres.py, PostgresRecorder).
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

TABLE = "baseline_event"

_SQLITE_DDL = f"""
CREATE TABLE {TABLE} (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id CHAR(32) NOT NULL UNIQUE,
    aggregate_type VARCHAR(64) NOT NULL,
    aggregate_id VARCHAR(128) NOT NULL,
    version INTEGER UNSIGNED NOT NULL,
    event_type VARCHAR(128) NOT NULL,
    schema_version SMALLINT UNSIGNED NOT NULL,
    payload TEXT NOT NULL,
    metadata TEXT NOT NULL,
    correlation_id VARCHAR(128) NOT NULL,
    recorded_at DATETIME NOT NULL
);
CREATE UNIQUE INDEX {TABLE}_stream_version ON {TABLE} (aggregate_type, aggregate_id, version);
CREATE INDEX {TABLE}_type ON {TABLE} (event_type, position);
CREATE INDEX {TABLE}_corr ON {TABLE} (correlation_id, position);
CREATE TABLE {TABLE}_stream (
    aggregate_type VARCHAR(64) NOT NULL,
    aggregate_id VARCHAR(128) NOT NULL,
    version INTEGER NOT NULL,
    last_position BIGINT NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
"""

_POSTGRES_DDL = f"""
CREATE TABLE {TABLE} (
    position BIGSERIAL PRIMARY KEY,
    event_id UUID NOT NULL UNIQUE,
    aggregate_type VARCHAR(64) NOT NULL,
    aggregate_id VARCHAR(128) NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 0),
    event_type VARCHAR(128) NOT NULL,
    schema_version SMALLINT NOT NULL CHECK (schema_version >= 0),
    payload JSONB NOT NULL,
    metadata JSONB NOT NULL,
    correlation_id VARCHAR(128) NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    transaction_id BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX {TABLE}_follow ON {TABLE} (transaction_id, position);
CREATE UNIQUE INDEX {TABLE}_stream_version ON {TABLE} (aggregate_type, aggregate_id, version);
CREATE INDEX {TABLE}_type ON {TABLE} (event_type, position);
CREATE INDEX {TABLE}_corr ON {TABLE} (correlation_id, position);
CREATE TABLE {TABLE}_stream (
    aggregate_type VARCHAR(64) NOT NULL,
    aggregate_id VARCHAR(128) NOT NULL,
    version INTEGER NOT NULL,
    last_position BIGINT NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
"""

_COLUMNS = (
    "event_id, aggregate_type, aggregate_id, version, event_type, schema_version, payload, "
    "metadata, correlation_id, recorded_at"
)


class VersionConflict(Exception):
    """The stream was not at the expected version."""


class RawLog:
    """The baseline event log on one connection (see the module docstring)."""

    def __init__(self, backend: str, target: str) -> None:
        self.backend = backend
        if backend == "sqlite":
            # isolation_level=None: the driver opens no transactions; each call says BEGIN itself.
            self.connection = sqlite3.connect(target, timeout=20, isolation_level=None)
            self.connection.execute("PRAGMA journal_mode=WAL")
            # The project's durability (SQLITE_SYNCHRONOUS, FULL by default:
            # config/settings/database.py).
            synchronous = os.environ.get("SQLITE_SYNCHRONOUS", "").strip().upper() or "FULL"
            self.connection.execute(f"PRAGMA synchronous={synchronous}")
            self.connection.executescript(_SQLITE_DDL)
            self._begin = "BEGIN IMMEDIATE"
            self._mark = "?"
        else:
            import psycopg

            self.connection = psycopg.connect(target, autocommit=True)
            self.connection.execute(_POSTGRES_DDL)
            self._begin = "BEGIN"
            self._mark = "%s"

    def close(self) -> None:
        self.connection.close()

    def _sql(self, sql: str) -> str:
        return sql.replace("%s", self._mark)

    def _event_id(self) -> Any:
        event_id = uuid.uuid4()
        return event_id.hex if self.backend == "sqlite" else event_id

    def _now(self) -> Any:
        now = datetime.now(UTC)
        return now.isoformat() if self.backend == "sqlite" else now

    def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[tuple[str, dict[str, Any]]],
        expected_version: int,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """Append (event_type, payload) pairs to one stream at `expected_version`; one transaction.

        Returns the stream's new version.
        """
        cursor = self.connection.cursor()
        cursor.execute(self._begin)
        try:
            head = "0"
            if self.backend != "sqlite":
                head = (
                    f"(SELECT transaction_id FROM {TABLE} WHERE aggregate_type = %s "
                    "AND aggregate_id = %s ORDER BY version DESC LIMIT 1)"
                )
            cursor.execute(
                self._sql(
                    f"SELECT MAX(version), COALESCE({head}, 0) FROM {TABLE} "
                    "WHERE aggregate_type = %s AND aggregate_id = %s"
                ),
                (aggregate_type, aggregate_id) * (1 if self.backend == "sqlite" else 2),
            )
            actual, head_transaction_id = cursor.fetchone()
            actual = actual or 0
            if actual != expected_version:
                raise VersionConflict(f"expected {expected_version}, actual {actual}")
            meta = json.dumps(metadata or {})
            correlation = str((metadata or {}).get("correlation_id", ""))
            now = self._now()
            rows = [
                (
                    self._event_id(),
                    aggregate_type,
                    aggregate_id,
                    expected_version + offset,
                    event_type,
                    1,
                    json.dumps(payload),
                    meta,
                    correlation,
                    now,
                )
                for offset, (event_type, payload) in enumerate(events, start=1)
            ]
            if self.backend == "sqlite":
                insert = f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})"
            else:
                insert = (
                    f"INSERT INTO {TABLE} ({_COLUMNS}, transaction_id) VALUES "
                    f"({', '.join(['%s'] * 10)}, "
                    "GREATEST(pg_current_xact_id()::text::bigint, %s))"
                )
                rows = [(*row, head_transaction_id) for row in rows]
            cursor.executemany(self._sql(insert), rows)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return expected_version + len(rows)

    def read_stream(self, aggregate_type: str, aggregate_id: str) -> list[tuple[Any, ...]]:
        """Every event of one stream in version order, payloads decoded."""
        cursor = self.connection.cursor()
        cursor.execute(
            self._sql(
                f"SELECT position, event_id, version, event_type, payload, metadata, recorded_at "
                f"FROM {TABLE} WHERE aggregate_type = %s AND aggregate_id = %s ORDER BY version"
            ),
            (aggregate_type, aggregate_id),
        )
        return [self._decoded(row) for row in cursor.fetchall()]

    def read_payloads(self, aggregate_type: str, aggregate_id: str) -> list[Any]:
        """The decoded payloads of one stream in version order: what loading an aggregate reads."""
        cursor = self.connection.cursor()
        cursor.execute(
            self._sql(
                f"SELECT version, event_type, payload FROM {TABLE} "
                "WHERE aggregate_type = %s AND aggregate_id = %s ORDER BY version"
            ),
            (aggregate_type, aggregate_id),
        )
        if self.backend == "sqlite":
            return [json.loads(row[2]) for row in cursor.fetchall()]
        return [row[2] for row in cursor.fetchall()]

    def _decoded(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if self.backend == "sqlite":
            return (*row[:4], json.loads(row[4]), json.loads(row[5]), row[6])
        return row  # psycopg decodes JSONB itself

    def read_all(self, batch_size: int) -> Iterator[list[tuple[Any, ...]]]:
        """The whole log in position order, one batch of decoded rows at a time."""
        after = 0
        cursor = self.connection.cursor()
        while True:
            cursor.execute(
                self._sql(
                    "SELECT position, event_id, version, event_type, payload, metadata, "
                    f"recorded_at, aggregate_type, aggregate_id FROM {TABLE} "
                    "WHERE position > %s ORDER BY position LIMIT %s"
                ),
                (after, batch_size),
            )
            rows = cursor.fetchall()
            if not rows:
                return
            yield [(*self._decoded(row[:7]), row[7], row[8]) for row in rows]
            after = rows[-1][0]

    def rebuild_streams(self, batch_size: int) -> int:
        """The baseline's replay: empty the stream index and rebuild it from the log in one
        transaction, one upsert per batch. Returns the number of events read."""
        cursor = self.connection.cursor()
        cursor.execute(self._begin)
        replayed = 0
        try:
            cursor.execute(f"DELETE FROM {TABLE}_stream")
            for batch in self.read_all(batch_size):
                latest = {(row[7], row[8]): (row[2], row[0]) for row in batch}
                cursor.executemany(
                    self._sql(
                        f"INSERT INTO {TABLE}_stream VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET "
                        "version = excluded.version, last_position = excluded.last_position"
                    ),
                    [(*key, version, position) for key, (version, position) in latest.items()],
                )
                replayed += len(batch)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return replayed

    def count(self) -> int:
        cursor = self.connection.cursor()
        cursor.execute(f"SELECT COUNT(*) FROM {TABLE}")
        return cursor.fetchone()[0]
