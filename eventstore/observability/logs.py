"""What a log record was written for: the event a subscriber was handling, or the request.

The catch-up loop (`follower.subscriptions._handle_batch`) and the calls to the outside world
(`follower.effects.perform_claimed`) set the event's fields around each event they hand to a
subscriber, in whatever process runs them (the request's, a Celery worker, process_events);
the request middleware (config.middleware.RequestIdMiddleware) sets the
request id, and `LogContextFilter` copies them onto every record (empty when unset), so the
JSON formatter and `TextFormatter` both show them. Kept free of Django imports: the LOGGING
setting loads it before the apps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# The record attributes the filter sets, each from its own context variable.
CONTEXT_FIELDS = ("request_id", "correlation_id", "causation_id", "event_position", "subscriber")

_context: dict[str, ContextVar[str]] = {
    field: ContextVar(f"log_{field}", default="") for field in CONTEXT_FIELDS
}


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Within the block, records carry these fields (None leaves a field as it was); restored
    on the way out, also on an exception."""
    tokens = [
        (_context[field], _context[field].set(str(value)))
        for field, value in fields.items()
        if value is not None
    ]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def event_log_context(subscriber: str, event: Any) -> Any:
    """Records logged while `subscriber` handles `event` carry the event's correlation and
    causation ids, the id of the request that started its chain (when it has one: else the
    request being served, if any, stays), its position and the subscriber's name."""
    metadata = event.metadata or {}
    return log_context(
        request_id=metadata.get("request_id") or None,
        correlation_id=metadata.get("correlation_id", ""),
        causation_id=metadata.get("causation_id", ""),
        event_position=event.position,
        subscriber=subscriber,
    )


def start_request(request_id: str) -> None:
    """Records logged from here on, in this thread or task, carry this request id (and no
    correlation id until one is known)."""
    for field in CONTEXT_FIELDS:
        _context[field].set("")
    _context["request_id"].set(request_id)


def end_request(**kwargs: Any) -> None:
    """After the response is sent (request_finished): nothing the thread logs next carries the
    request's fields. Later than the middleware, so Django's own log of a 4xx/5xx answer,
    written after every middleware returned, still carries them."""
    for field in CONTEXT_FIELDS:
        _context[field].set("")


def set_correlation_id(correlation_id: str) -> None:
    """Once a request knows its business transaction (the order), its records carry it."""
    _context["correlation_id"].set(str(correlation_id))


def current_context() -> dict[str, str]:
    """The fields records logged now would carry."""
    return {field: variable.get() for field, variable in _context.items()}


class LogContextFilter(logging.Filter):
    """Copies the current event's or request's fields onto every record (empty when unset);
    never drops a record. Set on handlers, so records of every logger get them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for field, variable in _context.items():
            if not hasattr(record, field):
                setattr(record, field, variable.get())
        return True


class TextFormatter(logging.Formatter):
    """Readable lines for development and tests: the message, then the non-empty context fields
    as a compact suffix, e.g. `[request_id=ab12 correlation_id=o-1]`."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(
            f"{field}={value}" for field in CONTEXT_FIELDS if (value := getattr(record, field, ""))
        )
        if not fields:
            return line
        # After the first line: an exception's traceback keeps its own lines below.
        first, newline, rest = line.partition("\n")
        return f"{first} [{fields}]{newline}{rest}"
