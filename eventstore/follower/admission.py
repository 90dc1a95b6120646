"""Admission: new work is turned away at the door while the work already accepted waits too
long to start, instead of being accepted and then given up on (a charge refunded, an order
cancelled for a timeout).

The backlog is the age of the oldest work not started: an event a subscriber that wakes on
commit has yet to handle, or a call to the outside world owed and not yet begun. A command that
starts new work (placing an order) calls `admit()` first; while the backlog is older than
ADMISSION_MAX_BACKLOG_SECONDS it raises `Overloaded` (the API answers 429 with Retry-After) and
nothing is written. Each process checks at most once every ADMISSION_CHECK_INTERVAL seconds
and keeps the answer meanwhile, so a burst of requests costs one check.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from eventstore.follower.effects import effect_subscribers
from eventstore.follower.subscriptions import get_subscribers
from eventstore.recorders import recorder

# Seconds a process keeps the backlog it checked.
ADMISSION_CHECK_INTERVAL = 1.0


class Overloaded(Exception):
    """New work is refused: the work accepted before waits too long to start."""


def oldest_unstarted() -> datetime | None:
    """When the oldest work not started became due (None: nothing waits): two lock-free
    statements."""
    subscribers = get_subscribers()
    partitions = int(settings.EVENTSTORE_PARTITIONS)
    followed = [(s.name, s.event_types) for s in subscribers if s.wakes_on_commit]
    calls = [s.name for s in effect_subscribers(subscribers)]
    found = [
        recorder().oldest_unhandled(followed, partitions),
        recorder().oldest_unstarted_call(calls),
    ]
    return min((at for at in found if at is not None), default=None)


def backlog_seconds(now: datetime | None = None) -> float:
    """How long the oldest work not started has waited, in seconds (0 when nothing waits)."""
    oldest = oldest_unstarted()
    if oldest is None:
        return 0.0
    return max(0.0, ((now or timezone.now()) - oldest).total_seconds())


class _Check(threading.local):
    at: float = float("-inf")  # time.monotonic() of the last check
    seconds: float = 0.0


_last = _Check()


def admit() -> None:
    """Raise Overloaded while the backlog is older than ADMISSION_MAX_BACKLOG_SECONDS (0: never),
    as this process (thread) last checked, at most ADMISSION_CHECK_INTERVAL seconds ago."""
    limit = float(settings.ADMISSION_MAX_BACKLOG_SECONDS)
    if limit <= 0:
        return
    if time.monotonic() - _last.at >= ADMISSION_CHECK_INTERVAL:
        _last.seconds = backlog_seconds()
        _last.at = time.monotonic()
    if _last.seconds > limit:
        raise Overloaded(
            f"The shop is taking orders faster than it can fulfil them (the oldest work waits "
            f"{_last.seconds:.1f} s to start, limit {limit:g} s); nothing was written."
        )


def forget_last_check() -> None:
    """Check again at the next `admit()` (tests change the backlog under a process)."""
    _last.at = float("-inf")
