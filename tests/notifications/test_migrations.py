"""Notifications' data migrations, run against the historical models they were written for."""

import importlib
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from notifications.models import OrderOwner

pytestmark = pytest.mark.django_db

order_owner_migration = importlib.import_module("notifications.migrations.0003_order_owner")


def test_the_order_owner_migration_records_the_customer_of_every_order_placed_before_it():
    state = MigrationExecutor(connection).loader.project_state(
        ("notifications", "0003_order_owner")
    )
    HistoricalEvent = state.apps.get_model("eventstore", "Event")
    now = timezone.now()

    def event(aggregate_type, aggregate_id, event_type, payload):
        return HistoricalEvent(
            event_id=uuid.uuid4(),
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            version=1,
            event_type=event_type,
            payload=payload,
            metadata={},
            recorded_at=now,
        )

    HistoricalEvent.objects.bulk_create(
        [
            event("order", "o1", "OrderCreated", {"order_id": "o1", "customer_id": "c1"}),
            event("order", "o2", "OrderCreated", {"order_id": "o2", "customer_id": 2}),
            event("saga", "s1", "SagaStarted", {"order_id": "o1"}),
        ]
    )

    order_owner_migration.fill_from_the_log(state.apps, None)

    assert dict(OrderOwner.objects.values_list("order_id", "customer_id")) == {
        "o1": "c1",
        "o2": "2",
    }
