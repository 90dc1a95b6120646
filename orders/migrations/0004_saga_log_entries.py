"""The saga read model keeps each step and compensation as the Saga aggregate's log does: a
compensation's `attempts` becomes `attempt`, beside `tries`, and a retried step's entry is the
aggregate's too. Rows written before are rewritten from their saga's events by the aggregate's
rule (SagaLog); the events are not touched, and the entries' times are kept."""

from django.db import migrations, models

# Where a row's entry keeps what the aggregate's log does not: its name and times.
ROW_ONLY = ("name", "started_at", "requested_at", "finished_at")


def rewrite_saga_logs(apps, schema_editor):
    from orders.aggregates import SagaLog  # the rule itself, pure Python (no model)

    Event = apps.get_model("eventstore", "Event")
    SagaSummary = apps.get_model("orders", "SagaSummary")
    for row in SagaSummary.objects.order_by("pk").iterator():
        log = SagaLog()
        stream = Event.objects.filter(
            aggregate_type="saga" if row.kind == "fulfilment" else row.kind,
            aggregate_id=row.order_id,
        )
        for event_type, payload in stream.order_by("version").values_list("event_type", "payload"):
            log.apply(event_type, payload)
        steps = _rewritten(row.steps, log.steps)
        compensations = _rewritten(row.compensations, log.compensations)
        if (steps, compensations) != (row.steps, row.compensations):
            SagaSummary.objects.filter(pk=row.pk).update(steps=steps, compensations=compensations)


def _rewritten(entries, logged):
    """The row's entries with the log's bookkeeping and their own name and times (an entry
    not begun is left as it is)."""
    return [
        {
            **{key: value for key, value in entry.items() if key in ROW_ONLY},
            **logged[entry["name"]],
        }
        if entry["name"] in logged
        else entry
        for entry in entries
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("eventstore", "0010_vaulted_secret_encrypted"),
        ("orders", "0003_cancellation"),
    ]

    operations = [
        migrations.AlterField(
            model_name="sagasummary",
            name="compensations",
            field=models.JSONField(
                default=list,
                help_text=(
                    "[{name, status, error, attempt, tries, started_at, requested_at, "
                    "finished_at}]"
                ),
            ),
        ),
        migrations.RunPython(rewrite_saga_logs, migrations.RunPython.noop, elidable=True),
    ]
