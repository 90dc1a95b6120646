"""Partitioned subscribers.

Each event gets `partition_hash`, the hash of its partition key (its correlation id, else its
aggregate id), computed here for the events already stored, as the store computes it on append
(eventstore.store.partition_hash). Filling the column rewrites events, so the append-only
triggers are dropped for this migration and created again after it (see 0005).

Each checkpoint becomes partition 0 of 1 of its subscriber: `EVENTSTORE_PARTITIONS=1` goes on
exactly as before, and a larger count starts every partition from that checkpoint.
"""

import importlib
import zlib

from django.db import migrations, models

append_only = importlib.import_module("eventstore.migrations.0005_event_append_only")


def _hash(key):
    return zlib.crc32(key.encode()) & 0x7FFFFFFF


def fill_partition_hashes(apps, schema_editor):
    """One UPDATE per distinct key: events with a correlation id, then those without."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT correlation_id FROM eventstore_event WHERE correlation_id <> ''"
        )
        correlated = [(_hash(key), key) for (key,) in cursor.fetchall()]
        cursor.executemany(
            "UPDATE eventstore_event SET partition_hash = %s WHERE correlation_id = %s", correlated
        )
        cursor.execute(
            "SELECT DISTINCT aggregate_id FROM eventstore_event WHERE correlation_id = ''"
        )
        uncorrelated = [(_hash(key), key) for (key,) in cursor.fetchall()]
        cursor.executemany(
            "UPDATE eventstore_event SET partition_hash = %s "
            "WHERE correlation_id = '' AND aggregate_id = %s",
            uncorrelated,
        )


def name_checkpoints(apps, schema_editor):
    """Each existing checkpoint becomes its subscriber's partition 0 of 1."""
    schema_editor.execute(
        "UPDATE eventstore_checkpoint SET subscriber = name, name = name || '#0/1'"
    )


def unname_checkpoints(apps, schema_editor):
    schema_editor.execute(
        "DELETE FROM eventstore_checkpoint WHERE NOT (partitions = 1 AND partition = 0)"
    )
    schema_editor.execute("UPDATE eventstore_checkpoint SET name = subscriber")


class Migration(migrations.Migration):
    dependencies = [
        ("eventstore", "0005_event_append_only"),
    ]

    operations = [
        migrations.RunPython(append_only.unguard_the_log, append_only.guard_the_log),
        migrations.AddField(
            model_name="event",
            name="partition_hash",
            field=models.IntegerField(db_default=0, editable=False),
        ),
        migrations.RunPython(fill_partition_hashes, migrations.RunPython.noop),
        migrations.RunPython(append_only.guard_the_log, append_only.unguard_the_log),
        migrations.AddField(
            model_name="checkpoint",
            name="subscriber",
            field=models.CharField(default="", max_length=128),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="checkpoint",
            name="partition",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="checkpoint",
            name="partitions",
            field=models.PositiveIntegerField(
                default=1, help_text="How many partitions the subscriber was split into."
            ),
        ),
        migrations.AddField(
            model_name="checkpoint",
            name="handled_before",
            field=models.JSONField(
                blank=True,
                help_text="After a change of the partition count: the previous partitions' "
                "positions; an event at or before its previous partition's position was handled "
                "already.",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="checkpoint",
            name="name",
            field=models.CharField(
                help_text="subscriber#partition/partitions",
                max_length=160,
                primary_key=True,
                serialize=False,
            ),
        ),
        migrations.AlterField(
            model_name="checkpoint",
            name="position",
            field=models.BigIntegerField(
                default=0, help_text="Position of the last event of this partition handled."
            ),
        ),
        migrations.RunPython(name_checkpoints, unname_checkpoints),
        migrations.AlterModelOptions(
            name="checkpoint",
            options={"ordering": ["subscriber", "partitions", "partition"]},
        ),
        migrations.AddConstraint(
            model_name="checkpoint",
            constraint=models.UniqueConstraint(
                fields=("subscriber", "partitions", "partition"),
                name="eventstore_checkpoint_partition_uniq",
            ),
        ),
    ]
