"""Log records name the event a subscriber was handling (or the request), in JSON or text."""

import json
import logging

import pytest
from pythonjsonlogger.json import JsonFormatter

from eventstore.follower.subscriptions import Subscriber, catch_up
from eventstore.observability.logs import (
    LogContextFilter,
    TextFormatter,
    current_context,
    log_context,
)
from tests.factories import append_event

logger = logging.getLogger("tests.eventstore.test_logs")

EMPTY = {
    "request_id": "",
    "correlation_id": "",
    "causation_id": "",
    "event_position": "",
    "subscriber": "",
}


class Logger(Subscriber):
    """Logs one line per event it handles, and fails on payloads that ask it to."""

    name = "tests.logger"
    event_types = frozenset({"ThingHappened"})

    def handle(self, event):
        logger.info("handling %s", event.event_type)
        if event.payload.get("fail"):
            raise ValueError("asked to fail")


@pytest.fixture
def captured(caplog):
    """caplog, its handler filtered as the project's console handler is."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(LogContextFilter())
    return caplog


def context_of(record):
    """The context fields a record carries."""
    return {field: getattr(record, field) for field in EMPTY}


def record(message="hello", exc_info=None):
    """A record as the logging machinery builds it, passed through the context filter."""
    made = logging.LogRecord("tests", logging.WARNING, __file__, 1, message, (), exc_info)
    LogContextFilter().filter(made)
    return made


@pytest.mark.django_db
def test_a_record_logged_inside_a_subscribers_handle_carries_the_events_fields(captured, subscribe):
    subscriber = subscribe(Logger())
    event = append_event(metadata={"correlation_id": "order-1", "causation_id": "cause-1"})

    catch_up(subscriber)

    [handled] = [r for r in captured.records if r.getMessage() == "handling ThingHappened"]
    assert context_of(handled) == {
        **EMPTY,
        "correlation_id": "order-1",
        "causation_id": "cause-1",
        "event_position": str(event.position),
        "subscriber": "tests.logger",
    }
    assert current_context() == EMPTY


@pytest.mark.django_db
def test_a_subscribers_failure_is_logged_with_the_failing_events_fields(captured, subscribe):
    subscriber = subscribe(Logger())
    event = append_event(payload={"fail": True}, metadata={"correlation_id": "order-2"})

    catch_up(subscriber)

    [failure] = [r for r in captured.records if r.levelno == logging.ERROR]
    assert failure.exc_info is not None
    assert (failure.correlation_id, failure.event_position, failure.subscriber) == (
        "order-2",
        str(event.position),
        "tests.logger",
    )


def test_records_outside_any_event_or_request_carry_empty_fields():
    assert context_of(record()) == EMPTY


def test_a_nested_context_is_undone_on_the_way_out_even_after_an_exception():
    with log_context(request_id="r-1", correlation_id="order-1"):
        with pytest.raises(RuntimeError), log_context(correlation_id="order-2", subscriber="s"):
            assert context_of(record())["correlation_id"] == "order-2"
            raise RuntimeError
        assert context_of(record()) == {**EMPTY, "request_id": "r-1", "correlation_id": "order-1"}
    assert current_context() == EMPTY


def test_the_json_formatter_writes_one_parseable_line_per_record_with_the_context():
    formatter = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        raise ValueError("line one\nline two")
    except ValueError as error:
        exc_info = (type(error), error, error.__traceback__)
    with log_context(request_id="r-1", correlation_id="order-1"):
        records = [record("plain"), record("multi\nline", exc_info=exc_info)]

    lines = [formatter.format(made) for made in records]

    assert all("\n" not in line for line in lines)
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "plain"
    assert first["levelname"] == "WARNING"
    assert {field: first[field] for field in EMPTY} == {
        **EMPTY,
        "request_id": "r-1",
        "correlation_id": "order-1",
    }
    assert second["message"] == "multi\nline"
    assert "ValueError: line one" in second["exc_info"]


def test_the_text_formatter_adds_the_set_fields_as_a_compact_suffix():
    formatter = TextFormatter("%(levelname)s %(name)s: %(message)s")
    with log_context(request_id="r-1", event_position=7):
        line = formatter.format(record())

    assert line == "WARNING tests: hello [request_id=r-1 event_position=7]"
    assert formatter.format(record()) == "WARNING tests: hello"


def test_the_text_formatter_keeps_a_traceback_below_the_suffixed_line():
    formatter = TextFormatter("%(message)s")
    try:
        raise ValueError("boom")
    except ValueError as error:
        with log_context(subscriber="s"):
            made = record(exc_info=(type(error), error, error.__traceback__))

    first, *rest = formatter.format(made).splitlines()
    assert first == "hello [subscriber=s]"
    assert rest[-1] == "ValueError: boom"


@pytest.mark.django_db
def test_a_record_logged_while_handling_an_event_carries_the_request_id_in_its_metadata(
    captured, subscribe
):
    subscriber = subscribe(Logger())
    append_event(metadata={"correlation_id": "order-1", "request_id": "req-1"})

    with log_context(request_id="req-of-the-worker"):
        catch_up(subscriber)

    [handled] = [r for r in captured.records if r.getMessage() == "handling ThingHappened"]
    assert (handled.request_id, handled.correlation_id) == ("req-1", "order-1")


@pytest.mark.django_db
def test_an_event_without_a_request_id_leaves_the_current_one_on_records(captured, subscribe):
    subscriber = subscribe(Logger())
    append_event(metadata={"correlation_id": "order-1"})

    with log_context(request_id="req-serving"):  # e.g. handled inline, after a request's commit
        catch_up(subscriber)

    [handled] = [r for r in captured.records if r.getMessage() == "handling ThingHappened"]
    assert handled.request_id == "req-serving"
