"""Endpoints become event-sourced: their secrets move to the vault (the rows keep references),
and each endpoint registered before gets the events that make its row: WebhookEndpointRegistered,
then WebhookSecretRotated while an old secret still signs, then WebhookEndpointDisabled when it
is disabled. A delivery's endpoint no longer cascades: the endpoints table is a projection."""

from datetime import timedelta

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

SECRET_KIND = "webhook_secret"
RETENTION = timedelta(days=100 * 365)


def vault_the_secrets(apps, schema_editor):
    from eventstore.vault import vault_put, vault_retain

    Endpoint = apps.get_model("webhooks", "Endpoint")
    now = timezone.now()
    for endpoint in Endpoint.objects.order_by("created_at"):
        endpoint.secret_ref = vault_put(kind=SECRET_KIND, secret=endpoint.secret, retention=RETENTION)
        until = endpoint.previous_secret_until
        if endpoint.previous_secret and until and until > now:
            endpoint.previous_secret_ref = vault_put(
                kind=SECRET_KIND, secret=endpoint.previous_secret, retention=RETENTION
            )
            vault_retain(endpoint.previous_secret_ref, until=until)
        else:
            endpoint.previous_secret_ref, endpoint.previous_secret_until = "", None
        endpoint.save(update_fields=["secret_ref", "previous_secret_ref", "previous_secret_until"])


def disabled_cause(reason):
    if "410" in reason:
        return "gone"
    if "failed since" in reason:
        return "failing"
    return "staff"


def record_the_endpoints(apps, schema_editor):
    from eventstore.store import NewEvent, event_store

    Endpoint = apps.get_model("webhooks", "Endpoint")
    for endpoint in list(Endpoint.objects.order_by("created_at")):
        endpoint_id = str(endpoint.pk)
        recorded = [
            NewEvent(
                "WebhookEndpointRegistered",
                {
                    "endpoint_id": endpoint_id,
                    "url": endpoint.url,
                    "event_types": list(endpoint.event_types),
                    "description": endpoint.description,
                    "enabled": True,
                    # After a rotation, the secret it was registered with is the previous one.
                    "secret_ref": endpoint.previous_secret_ref or endpoint.secret_ref,
                    "created_at": endpoint.created_at.isoformat(),
                },
            )
        ]
        if endpoint.previous_secret_ref:
            recorded.append(
                NewEvent(
                    "WebhookSecretRotated",
                    {
                        "endpoint_id": endpoint_id,
                        "secret_ref": endpoint.secret_ref,
                        "previous_secret_ref": endpoint.previous_secret_ref,
                        "previous_secret_until": endpoint.previous_secret_until.isoformat(),
                    },
                )
            )
        if not endpoint.enabled:
            reason = endpoint.disabled_reason or "disabled by staff"
            recorded.append(
                NewEvent(
                    "WebhookEndpointDisabled",
                    {
                        "endpoint_id": endpoint_id,
                        "url": endpoint.url,
                        "cause": disabled_cause(reason),
                        "reason": reason,
                    },
                )
            )
        event_store.append_to_stream("webhook_endpoint", endpoint_id, recorded, expected_version=0)
        # The projection wrote the row again; the deliveries' failing period goes on.
        Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=endpoint.failing_since)


class Migration(migrations.Migration):

    dependencies = [
        ("webhooks", "0001_initial"),
        ("eventstore", "0010_vaulted_secret_encrypted"),
    ]

    operations = [
        migrations.AddField(
            model_name="endpoint",
            name="previous_secret_ref",
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name="endpoint",
            name="secret_ref",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="delivery",
            name="endpoint",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="deliveries",
                to="webhooks.endpoint",
            ),
        ),
        migrations.AlterField(
            model_name="endpoint",
            name="created_at",
            field=models.DateTimeField(editable=False),
        ),
        migrations.RunPython(vault_the_secrets, migrations.RunPython.noop),
        migrations.RemoveField(model_name="endpoint", name="previous_secret"),
        migrations.RemoveField(model_name="endpoint", name="secret"),
        migrations.RunPython(record_the_endpoints, migrations.RunPython.noop),
    ]
