"""Fixtures for the event store's suites."""

import pytest

from eventstore.models import Stream


@pytest.fixture
def stream_rows():
    """A function giving the Stream read model without surrogate keys, in a stable order."""

    def rows():
        return list(
            Stream.objects.order_by("aggregate_type", "aggregate_id").values(
                "aggregate_type",
                "aggregate_id",
                "version",
                "last_event_type",
                "last_position",
                "first_recorded_at",
                "last_recorded_at",
            )
        )

    return rows
