"""Named subscribers with checkpoints: after-commit reactions that take effect exactly once.

A subscriber handles events in position order. Each batch runs in one transaction that first
locks the subscriber's checkpoint row, then handles every event (each in a savepoint) and moves
the checkpoint past it, so an event's effects and the checkpoint commit together: a redelivered
event finds the checkpoint already past it, and a crash before commit leaves both undone.

The `events_committed` signal only wakes subscribers; they always read the log from their own
checkpoint, so events whose callbacks were lost in a crash are delivered by the next wake-up or
by `manage.py process_events`. A commit wakes only the subscribers that read one of the event
types it committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from eventstore import sql
from eventstore.store import RecordedEvent, event_store

logger = logging.getLogger(__name__)


class Subscriber:
    """A reaction to events. Set a unique `name` and the `event_types` it handles (None: all)."""

    name: ClassVar[str]
    event_types: ClassVar[frozenset[str] | None] = None

    def handle(self, event: RecordedEvent) -> None:
        """React to one event; runs inside the transaction that advances the checkpoint."""
        raise NotImplementedError

    def after_catch_up(self) -> int:
        """Work done with no transaction open after each catch-up (effect subscribers call
        the outside world here); how many calls it made."""
        return 0

    def wants(self, event_types: Iterable[str] | None) -> bool:
        """Whether any of these event types is one this subscriber reads (None: any type)."""
        if event_types is None or self.event_types is None:
            return True
        return not self.event_types.isdisjoint(event_types)


class SubscriberError(Exception):
    """A subscriber is registered twice, or an unknown subscriber was asked for."""


_subscribers: dict[str, Subscriber] = {}


def register_subscriber(subscriber: Subscriber) -> Subscriber:
    """Add a subscriber to the registry (call from an AppConfig.ready())."""
    name = subscriber.name
    if name in _subscribers and _subscribers[name] is not subscriber:
        raise SubscriberError(f"A subscriber named {name!r} is already registered")
    _subscribers[name] = subscriber
    return subscriber


def unregister_subscriber(name: str) -> None:
    """Remove a subscriber from the registry (its checkpoint row stays)."""
    _subscribers.pop(name, None)


def get_subscribers(names: Iterable[str] | None = None) -> list[Subscriber]:
    """Registered subscribers, all or the named ones, in registration order."""
    if names is None:
        return list(_subscribers.values())
    unknown = [name for name in names if name not in _subscribers]
    if unknown:
        known = ", ".join(_subscribers) or "none"
        raise SubscriberError(f"Unknown subscriber(s): {', '.join(unknown)} (known: {known})")
    return [_subscribers[name] for name in names]


@dataclass
class CatchUpResult:
    """What one catch-up of one subscriber did."""

    name: str
    handled: int
    position: int
    error: str = ""
    calls: int = 0


def catch_up(
    subscriber: Subscriber, *, batch_size: int | None = None, look_first: bool = True
) -> CatchUpResult:
    """Handle every event after the subscriber's checkpoint; stop at the first failing event.
    Then, with no transaction open, do the subscriber's work after a catch-up (calls out).

    A failing event rolls back its own effects only; the checkpoint stays just before it, with
    the error recorded on the checkpoint, and the next catch-up tries it again.
    `look_first=False` skips the lock-free look for new events (the caller knows of some).
    """
    result = _handle_backlog(subscriber, batch_size=batch_size, look_first=look_first)
    result.calls = subscriber.after_catch_up()
    return result


def _handle_backlog(
    subscriber: Subscriber, *, batch_size: int | None, look_first: bool
) -> CatchUpResult:
    """Handle the events after the checkpoint, one transaction per batch."""
    batch_size = batch_size or int(settings.EVENTSTORE_BATCH_SIZE)
    result = CatchUpResult(subscriber.name, handled=0, position=0)
    if look_first:
        # A lock-free look first, so idle subscribers never queue for the write lock. A stale
        # "no" is safe: an event committed after this read wakes subscribers after its commit.
        result.position, waiting = sql.checkpoint_and_backlog(
            subscriber.name, subscriber.event_types
        )
        if not waiting:
            return result
    while True:
        with transaction.atomic():
            result.position = sql.lock_checkpoint(subscriber.name)
            batch = event_store.read_page(
                after_position=result.position,
                limit=batch_size,
                event_types=subscriber.event_types,
            )
            if not batch:
                return result
            error, failed_position = _handle_batch(subscriber, batch, result)
            sql.save_checkpoint(
                subscriber.name, result.position, error, failed_position, timezone.now()
            )
        if error:
            result.error = error
            return result
        if len(batch) < batch_size:
            return result


def _handle_batch(
    subscriber: Subscriber,
    batch: list[RecordedEvent],
    result: CatchUpResult,
) -> tuple[str, int | None]:
    """Handle the events in order, each in a savepoint; return the first error and its position."""
    for event in batch:
        try:
            with transaction.atomic():
                subscriber.handle(event)
        except Exception as exc:
            logger.exception(
                "Subscriber %s failed on event #%s (%s)",
                subscriber.name,
                event.position,
                event.event_type,
            )
            return f"{type(exc).__name__}: {exc}", event.position
        result.position = event.position
        result.handled += 1
    return "", None


def catch_up_all(names: Iterable[str] | None = None) -> list[CatchUpResult]:
    """Catch every registered (or every named) subscriber up with the log."""
    return [catch_up(subscriber) for subscriber in get_subscribers(names)]


_dispatch = threading.local()


def dispatch_committed(
    sender: Any = None, events: Iterable[RecordedEvent] | None = None, **kwargs: Any
) -> None:
    """`events_committed` receiver: after a commit, catch up, in this thread, every subscriber
    that reads one of the committed event types (every subscriber when `events` is None).

    Subscribers that append events cause further commits; those wake-ups are folded into the
    running loop instead of recursing.
    """
    if not _subscribers:
        return
    types = None if events is None else {event.event_type for event in events}
    if getattr(_dispatch, "running", False):
        _dispatch.woken = (
            None if types is None or _dispatch.woken is None else _dispatch.woken | types
        )
        return
    _dispatch.running = True
    try:
        while True:
            _dispatch.woken = set()
            for subscriber in get_subscribers():
                if not subscriber.wants(types):
                    continue
                try:
                    # Woken by a commit of events it reads: no need to look for new ones first.
                    catch_up(subscriber, look_first=types is None)
                except Exception:
                    # The commit that woke us has happened; the log keeps the events and
                    # process_events (or the next wake-up) delivers them.
                    logger.exception("Catching up subscriber %s failed", subscriber.name)
            types = _dispatch.woken
            if types is not None and not types:
                # Nothing left to catch up. Work owed after a catch-up (calls to the outside
                # world) may have been recorded by another thread or process that handled this
                # commit's events first, and is busy with calls of its own: take it up here.
                _after_catch_up_all()
                types = _dispatch.woken
                if types is not None and not types:
                    return
    finally:
        _dispatch.running = False


def _after_catch_up_all() -> None:
    """Every subscriber's work after a catch-up (see `Subscriber.after_catch_up`), each failure
    logged and left to the next pass."""
    for subscriber in get_subscribers():
        try:
            subscriber.after_catch_up()
        except Exception:
            logger.exception("Work after catching up subscriber %s failed", subscriber.name)
