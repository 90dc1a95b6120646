"""Order snapshots of state version 1 held the raw payment token: they are erased (a snapshot
is a cache; the next load rebuilds the order from its events, where the token reads masked)."""

from django.db import migrations


def erase_order_snapshots_with_tokens(apps, schema_editor):
    Snapshot = apps.get_model("eventstore", "Snapshot")
    Snapshot.objects.filter(aggregate_type="order", state_version__lt=2).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("eventstore", "0004_vaultedsecret"),
        ("orders", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(erase_order_snapshots_with_tokens, migrations.RunPython.noop),
    ]
