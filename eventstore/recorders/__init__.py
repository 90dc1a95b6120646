"""The event log's hot paths in plain SQL: one recorder per database, built once from the models.

Appending, reading a stream and paging through the log run for every command and every event
a subscriber handles. Building those few statements with the ORM cost more than the database
spent running them (see BENCHMARKS.md), so a recorder builds them once, when it is created,
taking every table and column name from the models' `_meta` (as `eventstore.rows` does for read
models), and runs them through Django's cursor (query logging, `execute_wrapper` and
transactions behave as for any query). Values go in and come out the way the model's fields
store them.

`Recorder` (base.py) holds the statements every database runs as written (SQLite's dialect),
assembled from a module per part (events, checkpoints, effects, streams); `SqliteRecorder`
(sqlite.py) and `PostgresRecorder` (postgres.py) what each database does differently.
`recorder()` picks the connection's one.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from eventstore.recorders.base import Recorder
from eventstore.recorders.checkpoints import CheckpointMove, CheckpointMoved, RepartitionPending
from eventstore.recorders.events import Appended, NewRow, StreamRows
from eventstore.recorders.postgres import PostgresRecorder
from eventstore.recorders.sqlite import SqliteRecorder
from eventstore.recorders.tables import current_connection

__all__ = [
    "Appended",
    "CheckpointMove",
    "CheckpointMoved",
    "NewRow",
    "PostgresRecorder",
    "Recorder",
    "RepartitionPending",
    "SqliteRecorder",
    "StreamRows",
    "recorder",
]

_RECORDERS: dict[str, type[Recorder]] = {"postgresql": PostgresRecorder, "sqlite": SqliteRecorder}


@cache
def _recorder_for(vendor: str) -> Recorder:
    return _RECORDERS.get(vendor, Recorder)()


def recorder(connection: Any = None) -> Recorder:
    """The recorder of `connection`'s database (by default, the one transactions run on),
    built once per kind of database."""
    return _recorder_for((connection or current_connection()).vendor)
