"""Migrations of the event store: data migrations, run against the historical models they were
written for, and the database triggers that keep the log append-only."""

import importlib
import uuid
from contextlib import contextmanager
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from eventstore.models import Checkpoint, Event
from eventstore.store import partition_hash
from tests.factories import NewEventFactory

pytestmark = pytest.mark.django_db

correlation_migration = importlib.import_module("eventstore.migrations.0002_event_correlation_id")
guard_migration = importlib.import_module("eventstore.migrations.0005_event_append_only")


def _editor(cursor):
    """What the guard migration's functions use of a schema editor, on the test's transaction."""
    return SimpleNamespace(connection=connection, execute=cursor.execute)


@contextmanager
def unguarded_log():
    """Within the block, the log takes raw updates (its append-only triggers are dropped), as a
    migration that rewrites events sees it; the triggers are back after it."""
    with connection.cursor() as cursor:
        guard_migration.unguard_the_log(None, _editor(cursor))
        try:
            yield
        finally:
            guard_migration.guard_the_log(None, _editor(cursor))


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

    # 0002 ran before the log was guarded (0005): lift the guard, as it was then.
    with connection.cursor() as cursor:
        guard_migration.unguard_the_log(None, _editor(cursor))
        correlation_migration.copy_correlation_ids(state.apps, None)
        guard_migration.guard_the_log(None, _editor(cursor))

    filled = list(
        HistoricalEvent.objects.filter(aggregate_id=order_id)
        .order_by("version")
        .values_list("correlation_id", flat=True)
    )
    assert filled == [order_id, "", order_id]


def _stored_event(store):
    """One event in the log, appended the ordinary way."""
    return store.append_to_stream("thing", "t1", [NewEventFactory()], expected_version=0)[0]


def _raw_sql(sql, params=None):
    """Run one statement in a savepoint, so that a refused one leaves the test usable."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_the_database_refuses_a_raw_update_of_an_event(store):
    event = _stored_event(store)

    with pytest.raises(IntegrityError, match="append-only"):
        _raw_sql(
            f"UPDATE {Event._meta.db_table} SET event_type = %s WHERE position = %s",
            ["Rewritten", event.position],
        )

    stored = Event.objects.get(position=event.position)
    assert (stored.event_type, stored.payload) == (event.event_type, event.payload)


def test_the_database_refuses_a_raw_delete_of_an_event(store):
    _stored_event(store)

    with pytest.raises(IntegrityError, match="append-only"):
        _raw_sql(f"DELETE FROM {Event._meta.db_table}")

    assert Event.objects.count() == 1


def test_reversing_the_guard_migration_lets_raw_changes_through_again(store):
    event = _stored_event(store)
    with connection.cursor() as cursor:
        editor = _editor(cursor)
        guard_migration.unguard_the_log(None, editor)
        cursor.execute(f"DELETE FROM {Event._meta.db_table} WHERE position = %s", [event.position])
        assert not Event.objects.exists()

        guard_migration.guard_the_log(None, editor)
        _stored_event(store)
        with pytest.raises(IntegrityError, match="append-only"):
            _raw_sql(f"DELETE FROM {Event._meta.db_table}")


def test_rebuilding_and_verifying_read_models_never_touch_the_log(store):
    _stored_event(store)
    output = StringIO()

    call_command("rebuild_projections", stdout=output)
    call_command("verify_projections", stdout=output)

    assert Event.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_flushing_the_test_database_empties_the_log_and_keeps_it_guarded(store):
    # pytest-django flushes after every transactional test: PostgreSQL truncates (no row
    # trigger fires); the SQLite test backend lifts the guard around its DELETEs only.
    _stored_event(store)

    call_command("flush", interactive=False, verbosity=0)

    assert not Event.objects.exists()
    _stored_event(store)
    with pytest.raises(IntegrityError, match="append-only"):
        _raw_sql(f"DELETE FROM {Event._meta.db_table}")
    assert Event.objects.count() == 1


partitions_migration = importlib.import_module("eventstore.migrations.0006_partitions")


def test_the_partitions_migration_hashes_the_key_of_every_event_stored_before_it():
    state = MigrationExecutor(connection).loader.project_state(
        ("eventstore", "0005_event_append_only")
    )
    HistoricalEvent = state.apps.get_model("eventstore", "Event")
    now = timezone.now()
    # Rows as an older release wrote them: no partition_hash (the column's default, 0).
    HistoricalEvent.objects.bulk_create(
        [
            HistoricalEvent(
                event_id=uuid.uuid4(),
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                version=1,
                event_type="E",
                payload={},
                metadata={"correlation_id": correlation} if correlation else {},
                correlation_id=correlation,
                recorded_at=now,
            )
            for aggregate_type, aggregate_id, correlation in [
                ("order", "o1", "o1"),
                ("payment", "o1", "o1"),
                ("product", "sku-1", ""),
            ]
        ]
    )

    with connection.cursor() as cursor:
        editor = _editor(cursor)
        guard_migration.unguard_the_log(None, editor)
        partitions_migration.fill_partition_hashes(None, editor)
        guard_migration.guard_the_log(None, editor)

    stored = Event.objects.order_by("position")
    hashes = [(event.aggregate_type, event.partition_hash) for event in stored]
    assert hashes == [
        ("order", partition_hash({"correlation_id": "o1"}, "o1")),
        ("payment", partition_hash({"correlation_id": "o1"}, "o1")),
        ("product", partition_hash({}, "sku-1")),
    ]
    assert len({h for _, h in hashes}) == 2


def test_the_partitions_migration_makes_each_checkpoint_partition_0_of_1():
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO eventstore_checkpoint (name, subscriber, partition, partitions, "
            "position, last_error, updated_at) VALUES ('orders.saga', '', 0, 1, 42, '', %s)",
            [timezone.now()],
        )
        partitions_migration.name_checkpoints(None, _editor(cursor))

    [row] = Checkpoint.objects.all()
    assert (row.name, row.subscriber, row.partition, row.partitions, row.position) == (
        "orders.saga#0/1",
        "orders.saga",
        0,
        1,
        42,
    )
