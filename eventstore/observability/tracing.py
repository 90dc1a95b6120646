"""Traces that follow an order across processes: OpenTelemetry spans, off unless configured.

The event log carries the trace. An append made while a span is active stores the W3C trace
context (`traceparent`, `tracestate`) in each event's metadata, next to `correlation_id`; a
subscriber that handles the event starts its span as a child of that context, wherever and
whenever it runs (inline after the commit, a Celery worker, `process_events`, a retried call to
the outside world). So one order's request and every reaction to it share one trace.

Tracing is off until `configure` is given a tracer provider (`config.telemetry` does, when the
OTEL_* environment asks for it; tests install their own): then every helper here is a no-op,
and nothing is written to metadata.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind

from eventstore.records import TRACE_KEYS, RecordedEvent

_tracer: trace.Tracer | None = None


def configure(provider: trace.TracerProvider | None) -> None:
    """Trace with `provider` from now on (None: stop tracing)."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer("eventstore")


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return _tracer is not None


# What every helper returns when tracing is off: it costs next to nothing on hot paths (each
# append, each event a subscriber handles).
_OFF = nullcontext()


def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: Mapping[str, Any] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> AbstractContextManager[Span | None]:
    """A span around the block (None when tracing is off), child of the active span, or of the
    trace context stored in `parent` (an event's metadata) when it holds one; then linked to
    the active span, so the work that picked the event up stays findable."""
    if _tracer is None:
        return _OFF
    return _span(_tracer, name, attributes, parent, kind)


@contextmanager
def _span(
    tracer: trace.Tracer,
    name: str,
    attributes: Mapping[str, Any] | None,
    parent: Mapping[str, Any] | None,
    kind: SpanKind,
) -> Iterator[Span]:
    context = None
    links = None
    if parent is not None and "traceparent" in parent:
        context = propagate.extract({key: parent[key] for key in TRACE_KEYS if key in parent})
        active = trace.get_current_span().get_span_context()
        links = [Link(active)] if active.is_valid else None
    with tracer.start_as_current_span(
        name, context=context, kind=kind, attributes=_clean(attributes), links=links
    ) as current:
        yield current


def event_span(name: str, event: RecordedEvent, **attributes: Any):
    """`span` for work done because of `event`: a child of the trace context it was appended
    in, with the event's type, position and correlation id."""
    if _tracer is None:
        return _OFF
    return span(
        name,
        {
            "eventstore.event_type": event.event_type,
            "eventstore.position": event.position,
            "eventstore.correlation_id": event.correlation_id,
            **attributes,
        },
        parent=event.metadata,
    )


def trace_context() -> dict[str, str]:
    """The active span's trace context as metadata entries ({} with no active span, or when
    tracing is off)."""
    if _tracer is None or not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {key: carrier[key] for key in TRACE_KEYS if key in carrier}


def set_attributes(current: Span | None, **attributes: Any) -> None:
    """Add attributes to a span from `span` (nothing when tracing is off)."""
    if current is not None:
        current.set_attributes(_clean(attributes))


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Attributes without the None values OpenTelemetry refuses."""
    if not attributes:
        return None
    return {key: value for key, value in attributes.items() if value is not None}
