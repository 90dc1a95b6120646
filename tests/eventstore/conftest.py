"""Fixtures for the event store's suites."""

import io
from datetime import timedelta
from unittest.mock import patch

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from eventstore.follower import subscriptions
from eventstore.models import Stream
from eventstore.projections import StreamProjection
from eventstore.store import event_store
from tests.factories import NewEventFactory, StreamAppendFactory


@pytest.fixture
def stream_rows():
    """A function giving the Stream read model without surrogate keys, in a stable order."""

    def rows():
        fields = StreamProjection().compared_fields(Stream)
        return list(Stream.objects.order_by("aggregate_type", "aggregate_id").values(*fields))

    return rows


@pytest.fixture(autouse=True)
def only_test_subscribers():
    """Run each event store test with an empty subscriber registry, so the services'
    subscribers neither react to its made-up events nor show up in its results."""
    with subscriptions.registry.emptied():
        yield


@pytest.fixture
def run():
    """A function that runs a management command and returns what it wrote to stdout and
    stderr."""

    def run(command, *args, **options):
        stdout, stderr = io.StringIO(), io.StringIO()
        call_command(command, *args, stdout=stdout, stderr=stderr, **options)
        return stdout.getvalue(), stderr.getvalue()

    return run


@pytest.fixture
def run_failing():
    """A function that runs a command expected to fail and returns its CommandError and what it
    wrote to stdout and stderr."""

    def run_failing(command, *args, **options):
        stdout, stderr = io.StringIO(), io.StringIO()
        with pytest.raises(CommandError) as raised:
            call_command(command, *args, stdout=stdout, stderr=stderr, **options)
        return raised.value, stdout.getvalue(), stderr.getvalue()

    return run_failing


@pytest.fixture
def populate():
    """A function that appends events to several streams, some of them in one append, and
    returns every event."""

    def populate():
        order = StreamAppendFactory(
            aggregate_type="order",
            events=[
                NewEventFactory(event_type="OrderPlaced"),
                NewEventFactory(event_type="OrderConfirmed"),
            ],
        )
        payment = StreamAppendFactory(aggregate_type="payment")
        recorded = event_store.append(order, payment)
        # An hour later, so the order stream's first and last recorded times surely differ.
        an_hour_later = recorded[0].recorded_at + timedelta(hours=1)
        with patch.object(timezone, "now", return_value=an_hour_later):
            recorded += event_store.append_to_stream(
                "order",
                order.aggregate_id,
                [NewEventFactory(event_type="OrderCompleted")],
                expected_version=2,
            )
            recorded += event_store.append(StreamAppendFactory(aggregate_type="inventory"))
        return recorded

    return populate
