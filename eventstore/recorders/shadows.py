"""Shadow copies of read-model tables, for rebuilds beside the live read models
(`eventstore.replay.rebuild_online`): a copy made from the live table's own definition, the
switch that renames it in, and the lock that lets one rebuild of a projection run at a time.
This class does it as SQLite does; `PostgresRecorder` overrides what PostgreSQL does otherwise.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
import time
from typing import Any, TextIO

from eventstore.recorders.tables import current_connection

# A table's copy is named after it: `<table>__rebuild` while it is built, `<table>__retired` for
# the live table it replaced, until it is dropped.
SHADOW = "__rebuild"
RETIRED = "__retired"
# SQLite names a copy's indexes `<index>__r<hex>` (index names are global and cannot be renamed).
_SQLITE_INDEX_MARK = re.compile(r"__r[0-9a-f]+$")
_NAME = r'(?:"[^"]+"|[^\s(]+)'


def shadow_name(table: str) -> str:
    """The name of `table`'s copy while it is built."""
    return table + SHADOW


def retired_name(table: str) -> str:
    """The name `table` takes once its copy replaced it, until it is dropped."""
    return table + RETIRED


def names_shadow_index(name: str) -> str:
    """A short name, unique to `name`, for the copy's counterpart of index `name` (PostgreSQL
    cuts names at 63 bytes, and the copy's index takes `name` back at the switch)."""
    return "rebuild_" + hashlib.sha256(name.encode()).hexdigest()[:24]


def names_retired_index(name: str) -> str:
    """The name index `name` of a retired table takes until the table is dropped."""
    return "retired_" + hashlib.sha256(name.encode()).hexdigest()[:24]


class ShadowRecorder:
    """Copies of read-model tables, made, switched in and dropped on the current connection."""

    def __init__(self) -> None:
        super().__init__()
        self._rebuild_locks: dict[str, TextIO] = {}

    def create_shadow(self, table: str) -> dict[str, str]:
        """Create `table`'s empty copy with the same columns, constraints and indexes; return
        the names its indexes are to take once it is switched in, by their names in the copy
        (none here: SQLite cannot rename an index, so a switched-in table keeps its copy's)."""
        connection = current_connection()
        quote = connection.ops.quote_name
        shadow = shadow_name(table)
        token = format(time.time_ns(), "x")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [table]
            )
            (create,) = cursor.fetchone()
            cursor.execute(
                re.sub(rf"^CREATE TABLE\s+{_NAME}", f"CREATE TABLE {quote(shadow)}", create)
            )
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
                "AND sql IS NOT NULL",
                [table],
            )
            for name, sql in cursor.fetchall():
                new = f"{_SQLITE_INDEX_MARK.sub('', name)}__r{token}"
                cursor.execute(
                    re.sub(
                        rf"^CREATE (UNIQUE )?INDEX\s+{_NAME}\s+ON\s+{_NAME}",
                        lambda match, new=new: (
                            f"CREATE {match.group(1) or ''}INDEX {quote(new)} ON {quote(shadow)}"
                        ),
                        sql,
                    )
                )
        return {}

    def switch_shadow(self, table: str, index_names: dict[str, str]) -> None:
        """Inside the caller's transaction: rename `table` to its retired name and its copy to
        `table` (then the copy's indexes to `index_names`, where the database can)."""
        quote = current_connection().ops.quote_name
        with current_connection().cursor() as cursor:
            cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(retired_name(table))}")
            cursor.execute(f"ALTER TABLE {quote(shadow_name(table))} RENAME TO {quote(table)}")

    def limit_lock_waits(self, milliseconds: int) -> None:
        """For the rest of the caller's transaction, give up on a lock after `milliseconds`
        (nothing here: SQLite's transaction took the only lock there is when it began)."""

    def drop_table(self, table: str) -> None:
        """Drop the table if it exists (a copy, or a retired table)."""
        quote = current_connection().ops.quote_name
        with current_connection().cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {quote(table)}")

    def begin_snapshot(self, cursor: Any) -> None:
        """On a connection of its own in autocommit mode: begin a transaction whose reads all
        see the database as it was at its first read (SQLite's WAL keeps it for the reader)."""
        cursor.execute("BEGIN")

    def _lock_path(self, name: str) -> str:
        database = str(current_connection().settings_dict["NAME"])
        if "memory" in database:  # only this process can see an in-memory database
            database += f"@{os.getpid()}"
        digest = hashlib.sha256(f"{database}\0{name}".encode()).hexdigest()[:24]
        return os.path.join(tempfile.gettempdir(), f"eventstore-rebuild-{digest}.lock")

    def try_lock_rebuild(self, name: str) -> bool:
        """Take the lock that one rebuild or check of projection `name` holds at a time, without
        waiting: False when another holds it. The operating system frees it with the process
        that held it, however that process ends (a file lock beside SQLite's database)."""
        handle = open(self._lock_path(name), "a")  # noqa: SIM115 (held until unlock_rebuild)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._rebuild_locks[name] = handle
        return True

    def unlock_rebuild(self, name: str) -> None:
        """Free the lock `try_lock_rebuild` took."""
        handle = self._rebuild_locks.pop(name, None)
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
