"""Index the events of one business transaction (an order) by an indexed correlation_id column."""

from django.db import migrations, models


def copy_correlation_ids(apps, schema_editor):
    """Fill the new column from the metadata of events stored before it existed."""
    Event = apps.get_model("eventstore", "Event")
    after = 0
    while True:
        page = list(
            Event.objects.filter(position__gt=after)
            .order_by("position")
            .values_list("position", "metadata")[:2000]
        )
        if not page:
            return
        for position, metadata in page:
            value = (metadata or {}).get("correlation_id")
            if value not in (None, ""):
                Event.objects.filter(position=position).update(correlation_id=str(value)[:128])
        after = page[-1][0]


class Migration(migrations.Migration):
    dependencies = [
        ("eventstore", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="correlation_id",
            field=models.CharField(blank=True, default="", editable=False, max_length=128),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                fields=["correlation_id", "position"], name="eventstore_event_corr_idx"
            ),
        ),
        migrations.RunPython(copy_correlation_ids, migrations.RunPython.noop, elidable=True),
    ]
