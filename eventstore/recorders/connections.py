"""Whether the database connection was lost (the server ended it, or it could not be opened),
as opposed to a statement failing on a connection that still works; and work after a commit
that must not undo the commit's answer when it fails."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, update_wrapper
from typing import Any

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections, transaction

# SQLSTATEs that end the session: connection exceptions (class 08), and the server shutting the
# backend down (pg_terminate_backend, a restart: admin_shutdown, crash_shutdown,
# cannot_connect_now). The driver may still show such a connection as idle until its next use.
LOST_SQLSTATE_CLASS = "08"
LOST_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def connection_broken(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether connection `using` can run nothing more until it is replaced: Django dropped it
    (a rollback failed, or it could not connect), or the driver saw the server close it."""
    raw = connections[using].connection
    # psycopg marks a connection it found closed by the server as `closed`; an SQLite file's
    # connection has no such state and never breaks that way.
    return raw is None or bool(getattr(raw, "closed", False))


def connection_lost(error: BaseException, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether `error` means connection `using` was lost: an OperationalError or InterfaceError
    whose SQLSTATE ends the session, or that left the connection broken. An ordinary
    OperationalError (a lock or statement timeout, an SQL error) leaves it usable: not one."""
    if not isinstance(error, (OperationalError, InterfaceError)):
        return False
    # "" for a driver without SQLSTATEs (SQLite); None for psycopg's own errors, raised when it
    # lost the server before any answer ("server closed the connection unexpectedly"). Django
    # may already have opened a new connection by then (after the failed transaction's end).
    sqlstate = getattr(error.__cause__, "sqlstate", "")
    if sqlstate is None:
        return True
    return (
        sqlstate.startswith(LOST_SQLSTATE_CLASS)
        or sqlstate in LOST_SQLSTATES
        or connection_broken(using)
    )


def replace_if_broken(using: str = DEFAULT_DB_ALIAS) -> None:
    """Close connection `using` when a database error left it unusable and no transaction is
    open on it, so the next query opens a new one instead of failing on the broken one."""
    connection = connections[using]
    if connection.connection is None or connection.in_atomic_block:
        return
    # is_usable asks the server (SELECT 1): only after an error, as Django does at request end.
    if connection_broken(using) or (connection.errors_occurred and not connection.is_usable()):
        connection.close()


def on_commit_robust(function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call `function(*args, **kwargs)` once the transaction commits; if it fails, the failure
    is logged and the commit's caller carries on (`on_commit(robust=True)`)."""
    callback = partial(function, *args, **kwargs)
    # Django logs a robust callback's failure by its __qualname__, which a bare partial lacks:
    # the failure would escape as an AttributeError after the commit, failing its request.
    update_wrapper(callback, function)
    transaction.on_commit(callback, robust=True)
