"""Concurrent appends on PostgreSQL.

Each event gets `transaction_id`, and followers read the log in (transaction_id, position)
order up to the oldest transaction still running, instead of every append holding the log's
table lock (see PostgresRecorder.follow_condition). The events already stored were appended under
that lock, so their positions are in commit order: they keep transaction id 0 and come first,
in position order. Each checkpoint gets transaction id 0 with its position, which is exactly
where it stood.

Adding the column remakes the table on SQLite, which drops its triggers, so the append-only
triggers are dropped for this migration and created again after it (see 0005).
"""

import importlib

from django.db import migrations, models

append_only = importlib.import_module("eventstore.migrations.0005_event_append_only")


class Migration(migrations.Migration):
    dependencies = [
        ("eventstore", "0006_partitions"),
    ]

    operations = [
        migrations.RunPython(append_only.unguard_the_log, append_only.guard_the_log),
        migrations.AddField(
            model_name="event",
            name="transaction_id",
            field=models.BigIntegerField(db_default=0, editable=False),
        ),
        migrations.RunPython(append_only.guard_the_log, append_only.unguard_the_log),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                fields=["transaction_id", "position"], name="eventstore_event_follow_idx"
            ),
        ),
        migrations.AddField(
            model_name="checkpoint",
            name="transaction_id",
            field=models.BigIntegerField(
                default=0,
                db_default=0,
                help_text="Transaction id of the last event of this partition handled.",
            ),
        ),
        migrations.AlterField(
            model_name="checkpoint",
            name="handled_before",
            field=models.JSONField(
                blank=True,
                help_text="After a change of the partition count: the previous partitions' "
                "[transaction id, position] pairs; an event at or before its previous "
                "partition's pair was handled already.",
                null=True,
            ),
        ),
    ]
