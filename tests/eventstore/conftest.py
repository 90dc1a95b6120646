"""Fixtures for the event store's suites."""

import pytest

from eventstore import subscriptions
from eventstore.models import Stream
from eventstore.projections import StreamProjection


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
