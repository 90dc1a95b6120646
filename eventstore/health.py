"""The health check's findings: the database, how far subscribers are behind, and in celery
mode the broker. Cheap enough to poll: a few short queries and, in celery mode, one connection
attempt bounded by CELERY_BROKER_CONNECTION_TIMEOUT."""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection

from eventstore.admission import backlog_seconds
from eventstore.dispatch import reactions_run_later
from eventstore.recorders import recorder
from eventstore.subscriptions import get_subscribers, lags


def health_check() -> tuple[dict[str, Any], bool]:
    """The health check's answer and whether everything is healthy: the database answers (and
    on PostgreSQL its transaction ids are not behind the log's and no transaction has held
    followers back longer than HEALTH_MAX_HELD_SECONDS), no subscriber partition is more than
    HEALTH_MAX_LAG_EVENTS events behind, and in celery mode the broker accepts a connection."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        followers = recorder().horizon()
        # An effect subscriber's checkpoint is only a safety net the worker follows: its calls
        # are owed when their intents are appended, whatever its lag.
        watched = [s.name for s in get_subscribers() if s.wakes_on_commit]
        # Counted only as far as the limit: past it the answer is 503 whatever the exact number,
        # and counting a large backlog would read all of it on every probe.
        limit = int(settings.HEALTH_MAX_LAG_EVENTS)
        largest = max(lags(watched, exact_up_to=limit), key=lambda lag: lag.events, default=None)
        backlog = backlog_seconds()
    except DatabaseError as error:
        return {"status": "unavailable", "database": f"unreachable: {type(error).__name__}"}, False
    body: dict[str, Any] = {"database": "ok"}
    healthy = True
    if followers is not None:
        body["followers"] = followers
        followers["held"] = held_status(followers["waiting_for"])
        healthy = followers["held"] == "ok"
        if followers["transaction_ids_ahead"]:
            body["database"] = (
                "transaction ids behind the log's: see ARCHITECTURE.md, "
                "Transaction ids after a restore"
            )
            healthy = False
    # Shown, not judged: a shop refusing orders it could not finish in time is working as meant
    # (eventstore.admission); the lag and the held followers above say when something is wrong.
    body["backlog_seconds"] = round(backlog, 3)
    body["subscribers"] = "ok"
    body["largest_lag"] = None
    if largest is not None:
        body["largest_lag"] = {
            "subscriber": largest.subscriber,
            "partition": largest.partition,
            "events": largest.events,
            "exact": largest.exact,
        }
        if largest.events > limit:
            behind = f"{largest.events}" if largest.exact else f"about {largest.events}"
            body["subscribers"] = (
                f"behind: {largest.subscriber} partition {largest.partition} is "
                f"{behind} events behind (limit {limit})"
            )
            healthy = False
    if reactions_run_later():  # the broker carries the wake-ups
        body["broker"] = broker_status()
        healthy = healthy and body["broker"] == "ok"
    return {"status": "ok" if healthy else "unavailable", **body}, healthy


def held_status(waiting_for: dict[str, Any] | None) -> str:
    """ "ok", or which transaction has held followers back longer than HEALTH_MAX_HELD_SECONDS
    (one whose age pg_stat_activity hides is not judged)."""
    limit = float(settings.HEALTH_MAX_HELD_SECONDS)
    if waiting_for is None or waiting_for["seconds"] is None or waiting_for["seconds"] <= limit:
        return "ok"
    return (
        f"held back for {waiting_for['seconds']:.1f} s (limit {limit:g} s) by the transaction of "
        f"pid {waiting_for['pid']} (application_name {waiting_for['application_name']!r}, "
        f"{waiting_for['state']}): see docs/OPERATIONS.md"
    )


def broker_status() -> str:
    """ "ok" when the broker accepts a connection, else "unreachable: <error>": one attempt, no
    retry, at most CELERY_BROKER_CONNECTION_TIMEOUT seconds."""
    timeout = float(settings.CELERY_BROKER_CONNECTION_TIMEOUT)
    try:
        with current_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=0, timeout=timeout)
    # Whatever stops the connection (refused, timed out, bad credentials, unknown host) means
    # the same to a probe: wake-ups cannot be sent.
    except Exception as error:
        return f"unreachable: {type(error).__name__}"
    return "ok"
