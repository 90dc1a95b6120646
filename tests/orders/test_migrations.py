"""Orders' data migrations, run against the historical models they were written for."""

import importlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from orders.models import SagaSummary
from orders.services import order_cancel

pytestmark = pytest.mark.django_db

saga_log_migration = importlib.import_module("orders.migrations.0004_saga_log_entries")


def as_written_before(entries):
    """Entries as the read model wrote them before it kept the aggregate's log: `attempts`,
    no `tries`."""
    old = []
    for entry in entries:
        entry = {key: value for key, value in entry.items() if key != "tries"}
        if "attempt" in entry:
            entry["attempts"] = entry.pop("attempt")
        old.append(entry)
    return old


def test_saga_rows_written_before_take_the_aggregates_log_and_keep_their_times(
    place_waiting, switched_off, expire_overdue, product, place, run_after_commit, settings
):
    settings.SAGA_COMPENSATION_ATTEMPTS = 2
    compensating = place_waiting()
    with switched_off("inventory.requests"):
        for _ in range(3):  # the payment fails, its release is sent twice, then given up
            expire_overdue()
    completed = place()
    with switched_off("payments.requests"):
        with run_after_commit():
            order_cancel(order_id=completed)
        expire_overdue()  # the cancellation's refund is sent again
    live = {row.pk: (row.steps, row.compensations) for row in SagaSummary.objects.all()}
    assert len(live) == 3
    for pk, (steps, compensations) in live.items():
        SagaSummary.objects.filter(pk=pk).update(
            steps=as_written_before(steps), compensations=as_written_before(compensations)
        )
    state = MigrationExecutor(connection).loader.project_state(("orders", "0004_saga_log_entries"))

    saga_log_migration.rewrite_saga_logs(state.apps, None)

    assert {row.pk: (row.steps, row.compensations) for row in SagaSummary.objects.all()} == live
    [release] = SagaSummary.objects.get(pk=compensating).compensations
    assert (release["name"], release["attempt"], release["tries"]) == ("release_inventory", 2, 2)
    refund = SagaSummary.objects.get(pk=f"cancellation/{completed}").steps[0]
    assert (refund["name"], refund["attempt"], refund["tries"]) == ("refund_payment", 2, 2)
