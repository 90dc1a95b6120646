"""Whether the database connection was lost (the server ended it, or it could not be opened),
as opposed to a statement failing on a connection that still works; and work after a commit
that must not undo the commit's answer when it fails."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, update_wrapper
from typing import Any

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections, transaction


def connection_broken(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether connection `using` can run nothing more until it is replaced: Django dropped it
    (a rollback failed, or it could not connect), or the driver saw the server close it."""
    raw = connections[using].connection
    # psycopg marks a connection the server closed (pg_terminate_backend, a restart) as
    # `closed`; an SQLite file's connection has no such state and never breaks that way.
    return raw is None or bool(getattr(raw, "closed", False))


def connection_lost(error: BaseException, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether `error` means connection `using` was lost: an OperationalError or InterfaceError
    that left it broken. An ordinary OperationalError (a lock or statement timeout, an SQL
    error) leaves the connection usable and is not one."""
    return isinstance(error, (OperationalError, InterfaceError)) and connection_broken(using)


def replace_if_broken(using: str = DEFAULT_DB_ALIAS) -> None:
    """Close connection `using` when it is broken and no transaction is open on it, so the next
    query opens a new one instead of failing on the broken one."""
    connection = connections[using]
    if (
        connection.connection is not None
        and not connection.in_atomic_block
        and connection_broken(using)
    ):
        connection.close()


def on_commit_robust(function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call `function(*args, **kwargs)` once the transaction commits; if it fails, the failure
    is logged and the commit's caller carries on (`on_commit(robust=True)`)."""
    callback = partial(function, *args, **kwargs)
    # Django logs a robust callback's failure by its __qualname__, which a bare partial lacks:
    # the failure would escape as an AttributeError after the commit, failing its request.
    update_wrapper(callback, function)
    transaction.on_commit(callback, robust=True)
