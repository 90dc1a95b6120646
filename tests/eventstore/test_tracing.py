"""The trace context travels in events' metadata: stored at append while tracing is on, carried
to caused events, and continued by whoever handles the event, wherever it runs."""

import pytest
from opentelemetry import context, trace
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    StatusCode,
    TraceFlags,
    TraceState,
)

from eventstore.follower.subscriptions import Subscriber, catch_up
from eventstore.observability import tracing
from eventstore.store import NewEvent, StreamAppend

pytestmark = pytest.mark.django_db

TRACE_KEYS = {"traceparent", "tracestate"}


class Recorder(Subscriber):
    """Notes the span active while it handles each event; fails on the types it is told to."""

    name = "tests.recorder"
    event_types = frozenset({"ThingHappened", "ThingBroke"})

    def __init__(self):
        self.spans = []

    def handle(self, event):
        self.spans.append(trace.get_current_span())
        if event.event_type == "ThingBroke":
            raise ValueError("broken")


def span_id_in(metadata) -> int:
    return int(metadata["traceparent"].split("-")[2], 16)


def trace_id_in(metadata) -> int:
    return int(metadata["traceparent"].split("-")[1], 16)


def remote_parent(trace_state: TraceState | None = None) -> SpanContext:
    """A trace context as another process would have sent it."""
    return SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=trace_state,
    )


def test_without_tracing_an_append_stores_no_trace_context(store):
    [event] = store.append_to_stream(
        "thing", "t-1", [NewEvent("ThingHappened", {}, {"actor": "a"})]
    )

    assert event.metadata == {"actor": "a"}
    assert store.get(event.event_id).metadata == {"actor": "a"}
    assert tracing.trace_context() == {}


def test_an_append_is_a_span_and_its_events_carry_that_span_as_their_parent(spans, store):
    recorded = store.append(
        StreamAppend("thing", "t-1", [NewEvent("ThingHappened", {}, {"actor": "a"})]),
        StreamAppend(
            "other", "o-1", [NewEvent("ThingHappened", {}), NewEvent("ThingHappened", {})]
        ),
    )

    [append] = spans.get_finished_spans()
    assert append.name == "eventstore.append"
    assert append.attributes["eventstore.streams"] == ("thing/t-1", "other/o-1")
    assert append.attributes["eventstore.event_count"] == 3
    for event in recorded:
        stored = store.get(event.event_id)
        assert stored.metadata == event.metadata
        assert span_id_in(stored.metadata) == append.context.span_id
        assert trace_id_in(stored.metadata) == append.context.trace_id
    assert recorded[0].metadata["actor"] == "a"


def test_an_append_joins_the_active_trace_and_keeps_its_tracestate(spans, store):
    parent = remote_parent(TraceState([("vendor", "opaque")]))
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        [event] = store.append_to_stream("thing", "t-1", [NewEvent("ThingHappened", {})])
    finally:
        context.detach(token)

    [append] = spans.get_finished_spans()
    assert append.parent.span_id == parent.span_id
    assert trace_id_in(event.metadata) == parent.trace_id
    assert event.metadata["tracestate"] == "vendor=opaque"


def test_a_caused_event_carries_the_trace_context_forward(store):
    cause = NewEvent(
        "ThingHappened",
        {},
        {"correlation_id": "c-1", "traceparent": "00-ab-cd-01", "tracestate": "v=1"},
    )
    [recorded] = store.append_to_stream("thing", "t-1", [cause])

    assert recorded.caused_metadata("tests") == {
        "causation_id": str(recorded.event_id),
        "actor": "tests",
        "correlation_id": "c-1",
        "traceparent": "00-ab-cd-01",
        "tracestate": "v=1",
    }


def test_a_handler_continues_the_trace_its_event_was_appended_in(spans, store, subscribe):
    recorder = subscribe(Recorder())
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(remote_parent())))
    try:
        [event] = store.append_to_stream("thing", "t-1", [NewEvent("ThingHappened", {})])
    finally:
        context.detach(token)
    spans.clear()

    # Caught up with no span active, as a worker process would.
    catch_up(recorder)

    finished = {span.name: span for span in spans.get_finished_spans()}
    batch, handled = finished["eventstore.subscriber_batch"], finished["handle ThingHappened"]
    assert batch.parent is None
    assert batch.attributes["eventstore.subscriber"] == "tests.recorder"
    assert batch.attributes["eventstore.events"] == 1
    assert handled.context.trace_id == remote_parent().trace_id
    assert handled.parent.span_id == span_id_in(event.metadata)
    assert [link.context.span_id for link in handled.links] == [batch.context.span_id]
    assert handled.attributes["eventstore.position"] == event.position
    assert handled.attributes["eventstore.subscriber"] == "tests.recorder"
    assert recorder.spans[0].get_span_context() == handled.context


def test_an_event_without_trace_context_is_handled_within_the_batch(
    spans, store, subscribe, monkeypatch
):
    recorder = subscribe(Recorder())
    with monkeypatch.context() as off:
        off.setattr(tracing, "_tracer", None)
        [event] = store.append_to_stream("thing", "t-1", [NewEvent("ThingHappened", {})])
    assert TRACE_KEYS.isdisjoint(event.metadata)

    catch_up(recorder)

    finished = {span.name: span for span in spans.get_finished_spans()}
    batch, handled = finished["eventstore.subscriber_batch"], finished["handle ThingHappened"]
    assert handled.parent.span_id == batch.context.span_id
    assert handled.links == ()


def test_a_failing_handler_marks_its_span_and_the_batch_with_the_error(spans, store, subscribe):
    recorder = subscribe(Recorder())
    store.append_to_stream("thing", "t-1", [NewEvent("ThingBroke", {})])
    spans.clear()

    result = catch_up(recorder)

    assert result.error == "ValueError: broken"
    finished = {span.name: span for span in spans.get_finished_spans()}
    assert finished["handle ThingBroke"].status.status_code == StatusCode.ERROR
    assert finished["eventstore.subscriber_batch"].attributes["eventstore.error"] == result.error
