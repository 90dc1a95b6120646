"""How subscribers are woken after a commit: here, in the committing thread (inline), or by
Celery tasks on the broker (celery). EVENTSTORE_DISPATCH chooses once (and again when the
setting is changed, as tests do).

A wake-up only tells subscribers to look: each reads the log from its own checkpoint, so a
lost wake-up costs time, never an event (`process_events` and beat's sweep look anyway).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any

from django.conf import settings

from eventstore.connections import replace_if_broken
from eventstore.effects import effect_subscribers, make_due_calls, owing, run_due
from eventstore.store import RecordedEvent
from eventstore.subscriptions import (
    Subscriber,
    catch_up,
    catch_up_together,
    get_subscribers,
    left_behind,
    registry,
    touched_partitions,
    wait_until_followable,
)

logger = logging.getLogger(__name__)

Waker = Callable[[list[RecordedEvent] | None], None]


def dispatch_committed(
    sender: Any = None, events: Iterable[RecordedEvent] | None = None, **kwargs: Any
) -> None:
    """`events_committed` receiver: after a commit, wake the partitions of every subscriber
    that hold one of the committed events it reads (every partition when `events` is None)."""
    if not registry:
        return
    events = None if events is None else list(events)
    if events is not None and not any(
        subscriber.wants(event.event_type for event in events) for subscriber in get_subscribers()
    ):
        return  # no subscriber reads any of them: nothing to wake, no call owed because of them
    try:
        waker()(events)
    finally:
        # The commit stands whatever the wake-up met: a connection lost meanwhile is replaced,
        # so the request (or task) that committed still answers; the log keeps what was not
        # followed up for process_events or beat's sweep.
        replace_if_broken()


def reactions_run_later() -> bool:
    """Whether the reactions to a commit run in other processes (celery mode: Celery workers),
    so they may not have run when the committing request answers; False inline, where the
    committing thread runs them before it returns. The one reader of EVENTSTORE_DISPATCH."""
    return settings.EVENTSTORE_DISPATCH == "celery"


@cache
def waker() -> Waker:
    """The way this process wakes subscribers: by Celery tasks when reactions run later."""
    if reactions_run_later():
        from eventstore import tasks  # imports Celery: only in celery mode

        def wake_by_tasks(events: list[RecordedEvent] | None) -> None:
            wait_until_followable(events)
            tasks.wake(events)

        return wake_by_tasks
    return wake_here


def calls_owed(events: Sequence[RecordedEvent]) -> list[tuple[str, uuid.UUID]]:
    """For events about to be appended, the calls effect subscribers owe for them: (subscriber
    name, event id) each. The append records them in its own transaction (`EventStore`), and
    the commit's wake-up makes them."""
    return [
        (subscriber.name, event.event_id)
        for subscriber in effect_subscribers(get_subscribers())
        for event in events
        if subscriber.owes(event)
    ]


def choose_again(sender: Any = None, setting: str = "", **kwargs: Any) -> None:
    """`setting_changed` receiver: a changed EVENTSTORE_DISPATCH takes effect."""
    if setting == "EVENTSTORE_DISPATCH":
        waker.cache_clear()


_here = threading.local()


def wake_here(events: list[RecordedEvent] | None) -> None:
    """Catch the woken partitions up in this thread, then make the calls left due.

    Subscribers that append events cause further commits; their wake-ups are folded into the
    running loop instead of recursing. Each round makes the calls its commits owed; once nothing
    is left to catch up, the calls that are due of every other effect subscriber are made,
    whoever owes them (a call whose maker failed, or one another thread has not claimed yet).
    """
    if getattr(_here, "running", False):
        if events is None or _here.woken is None:
            _here.woken = None
        else:
            _here.woken.extend(events)
        return
    _here.running = True
    made: set[str] = set()  # effect subscribers whose due calls this loop made
    try:
        partitions = int(settings.EVENTSTORE_PARTITIONS)
        while True:
            _here.woken = []
            _catch_up_woken(events, partitions)
            made |= _make_calls_owed(events)
            events = _here.woken
            if events is not None and not events:
                # Every call due when a subscriber's calls were made was claimed then: only
                # the others are looked at.
                make_due_calls(s for s in get_subscribers() if s.name not in made)
                events = _here.woken
                if events is not None and not events:
                    return
    finally:
        _here.running = False


def _make_calls_owed(events: list[RecordedEvent] | None) -> set[str]:
    """Make the calls the commit of `events` owed (every effect subscriber's due calls when
    `events` is None); the names of the subscribers whose due calls were made."""
    if events is None:
        make_due_calls(get_subscribers())
        return set()
    made = set()
    for subscriber in owing(get_subscribers(), events):
        try:
            run_due(subscriber, look_first=False)
        except Exception:
            logger.exception("Making the calls of subscriber %s failed", subscriber.name)
        else:
            made.add(subscriber.name)
    return made


def _catch_up_woken(events: list[RecordedEvent] | None, partitions: int) -> None:
    """Catch up the partitions `events` touched of every subscriber that reads one of them
    (every partition of every subscriber when `events` is None): in one pass when the commit
    woke several."""
    subscribers = [subscriber for subscriber in get_subscribers() if subscriber.wakes_on_commit]
    if events is not None:
        woken = [
            (subscriber, partition)
            for subscriber in subscribers
            for partition in sorted(touched_partitions(subscriber, events, partitions) or ())
        ]
        if len(woken) > 1 and _catch_up_together(woken, events, partitions):
            return
    for subscriber in subscribers:
        touched = touched_partitions(subscriber, events, partitions)
        if touched is not None and not touched:
            continue
        try:
            catch_up(subscriber, partitions=partitions, only=touched, woken_by=events)
        except Exception:
            # The commit that woke us has happened; the log keeps the events and
            # process_events (or the next wake-up) delivers them.
            logger.exception("Catching up subscriber %s failed", subscriber.name)


def _catch_up_together(
    woken: list[tuple[Subscriber, int]], events: list[RecordedEvent], partitions: int
) -> bool:
    """One pass for every (subscriber, partition) the commit woke (`catch_up_together`); a
    partition whose checkpoint ended before the woken events (held back, or more than a
    batch to read) is caught up again on its own. False when the pass could not be done:
    nothing of it was kept."""
    try:
        results = catch_up_together(woken, partitions=partitions)
    except Exception:
        logger.exception("Catching up %d subscriber partitions in one pass failed", len(woken))
        return False
    if results is None:
        return False
    for (subscriber, partition), result in zip(woken, results, strict=True):
        behind = left_behind(subscriber, partition, partitions, events, result.point)
        try:
            if behind:
                catch_up(subscriber, partitions=partitions, only=[partition], woken_by=events)
            elif result.handled:
                subscriber.after_catch_up(result.handled)
        except Exception:
            logger.exception("Catching up subscriber %s failed", subscriber.name)
    return True
