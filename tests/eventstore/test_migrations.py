"""Data migrations of the event store, run against the historical models they were written for."""

import importlib
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db

correlation_migration = importlib.import_module("eventstore.migrations.0002_event_correlation_id")


def test_the_correlation_id_migration_fills_the_column_of_events_stored_before_it():
    state = MigrationExecutor(connection).loader.project_state(
        ("eventstore", "0002_event_correlation_id")
    )
    HistoricalEvent = state.apps.get_model("eventstore", "Event")
    order_id = str(uuid.uuid4())
    now = timezone.now()
    # Rows as an older release wrote them: the correlation id only in the metadata.
    HistoricalEvent.objects.bulk_create(
        [
            HistoricalEvent(
                event_id=uuid.uuid4(),
                aggregate_type="order",
                aggregate_id=order_id,
                version=version,
                event_type="E",
                payload={},
                metadata=metadata,
                correlation_id="",
                recorded_at=now,
            )
            for version, metadata in enumerate(
                [{"correlation_id": order_id}, {"actor": "staff"}, {"correlation_id": order_id}],
                start=1,
            )
        ]
    )

    correlation_migration.copy_correlation_ids(state.apps, None)

    filled = list(
        HistoricalEvent.objects.filter(aggregate_id=order_id)
        .order_by("version")
        .values_list("correlation_id", flat=True)
    )
    assert filled == [order_id, "", order_id]
