"""Endpoints are event-sourced: every change is an event of the endpoint's stream, the table is
its projection (rebuilt and verified like every read model), the secrets are in the vault and
never in the log, and endpoints registered before get their events by migration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from eventstore.models import Event, VaultedSecret
from eventstore.projections import get_projections
from eventstore.replay import rebuild, verify
from eventstore.vault import vault_take
from tests.factories import append_event
from webhooks import events, services
from webhooks.handlers import WebhookDispatcher
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db


def endpoint_events(endpoint_id) -> list[tuple[str, dict]]:
    return [
        (event.event_type, event.payload)
        for event in Event.objects.filter(
            aggregate_type=events.ENDPOINT, aggregate_id=str(endpoint_id)
        ).order_by("position")
    ]


def order_created(order_id="o1"):
    return append_event(
        "order",
        order_id,
        event_type="OrderCreated",
        payload={"order_id": order_id, "customer_id": "c1", "items": [], "total_amount": "1.00"},
    )


def test_every_change_of_an_endpoint_is_an_event_and_its_row_the_projection(receiver):
    created = services.endpoint_create(url=receiver.url, description="ERP")
    services.endpoint_change(
        endpoint_id=created.pk, description="ERP (test)", event_types=["order.created"]
    )
    rotated = services.endpoint_rotate_secret(endpoint_id=created.pk)
    services.endpoint_change(endpoint_id=created.pk, enabled=False)
    services.endpoint_change(endpoint_id=created.pk, enabled=True)

    recorded = endpoint_events(created.pk)
    assert [kind for kind, _ in recorded] == [
        events.WEBHOOK_ENDPOINT_REGISTERED,
        events.WEBHOOK_ENDPOINT_CHANGED,
        events.WEBHOOK_SECRET_ROTATED,
        events.WEBHOOK_ENDPOINT_DISABLED,
        events.WEBHOOK_ENDPOINT_ENABLED,
    ]
    assert recorded[1][1] == {
        "endpoint_id": str(created.pk),
        "description": "ERP (test)",
        "event_types": ["order.created"],
    }
    assert recorded[3][1]["cause"] == events.DISABLED_BY_STAFF
    # The secrets are in the vault, encrypted; the log holds their references only.
    log = str([payload for _, payload in recorded])
    assert created.secret not in log and rotated.secret not in log
    assert not VaultedSecret.objects.filter(secret__contains=created.secret[6:]).exists()
    row = Endpoint.objects.get()
    assert vault_take(row.secret_ref) == rotated.secret
    assert vault_take(row.previous_secret_ref) == created.secret
    assert (row.description, row.event_types, row.enabled) == (
        "ERP (test)",
        ["order.created"],
        True,
    )

    differences, _ = verify(get_projections(["webhooks.endpoints"]))
    assert differences == []


def test_a_rebuild_gives_the_rows_back_and_keeps_the_deliveries(receiver):
    endpoint = services.endpoint_create(url=receiver.url)
    services.endpoint_rotate_secret(endpoint_id=endpoint.pk)
    WebhookDispatcher().perform(order_created(), attempt=1)
    before = list(Endpoint.objects.values())

    rebuild(get_projections(["webhooks.endpoints"]))

    assert list(Endpoint.objects.values()) == before
    assert Delivery.objects.get().endpoint_id == endpoint.pk


def test_deleting_an_endpoint_deletes_its_deliveries_and_erases_its_secrets(staff_client, receiver):
    endpoint = services.endpoint_create(url=receiver.url)
    services.endpoint_rotate_secret(endpoint_id=endpoint.pk)
    WebhookDispatcher().perform(order_created(), attempt=1)
    row = Endpoint.objects.get()

    answer = staff_client.delete(f"/api/webhooks/endpoints/{endpoint.pk}/")

    assert answer.status_code == 204
    assert not Endpoint.objects.exists() and not Delivery.objects.exists()
    assert vault_take(row.secret_ref) is None and vault_take(row.previous_secret_ref) is None
    assert endpoint_events(endpoint.pk)[-1][0] == events.WEBHOOK_ENDPOINT_DELETED
    assert staff_client.delete(f"/api/webhooks/endpoints/{endpoint.pk}/").status_code == 404
    differences, _ = verify(get_projections(["webhooks.endpoints"]))
    assert differences == []


def test_a_superseded_secret_stops_signing_and_leaves_the_vault_after_its_window(receiver):
    endpoint = services.endpoint_create(url=receiver.url)
    first = services.endpoint_rotate_secret(endpoint_id=endpoint.pk)
    row = Endpoint.objects.get()
    later = row.previous_secret_until + timedelta(seconds=1)
    assert services.signing_secrets(row, later) == [first.secret]
    assert vault_take(row.previous_secret_ref, now=later) is None  # past its retention

    services.endpoint_rotate_secret(endpoint_id=endpoint.pk)
    assert not VaultedSecret.objects.filter(pk=row.previous_secret_ref).exists()


def test_disabling_records_the_cause_once_however_often_it_is_found(receiver):
    endpoint = services.endpoint_create(url=receiver.url)
    services.endpoint_disable(
        endpoint, "the endpoint answered 410 Gone", cause=events.DISABLED_GONE
    )
    services.endpoint_disable(
        endpoint, "the endpoint answered 410 Gone", cause=events.DISABLED_GONE
    )
    disabled = [p for k, p in endpoint_events(endpoint.pk) if k == events.WEBHOOK_ENDPOINT_DISABLED]
    assert [p["cause"] for p in disabled] == [events.DISABLED_GONE]
    assert Endpoint.objects.get().disabled_reason == "the endpoint answered 410 Gone"


def test_changing_an_unknown_or_deleted_endpoint_is_refused(receiver):
    endpoint = services.endpoint_create(url=receiver.url)
    services.endpoint_delete(endpoint_id=endpoint.pk)
    with pytest.raises(services.EndpointNotFound):
        services.endpoint_change(endpoint_id=endpoint.pk, description="x")
    with pytest.raises(services.EndpointNotFound):
        services.endpoint_rotate_secret(endpoint_id=endpoint.pk)


@pytest.mark.django_db(transaction=True)
def test_the_migration_records_the_endpoints_registered_before_and_vaults_their_secrets():
    executor = MigrationExecutor(connection)
    executor.migrate([("webhooks", "0001_initial")])
    old = executor.loader.project_state(("webhooks", "0001_initial")).apps
    OldEndpoint = old.get_model("webhooks", "Endpoint")
    now = timezone.now()
    rotated = OldEndpoint.objects.create(
        url="https://erp.example/hooks",
        event_types=["order.created"],
        secret="whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3",
        previous_secret="whsec_b2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xk",
        previous_secret_until=now + timedelta(hours=1),
        failing_since=now,
    )
    gone = OldEndpoint.objects.create(
        url="https://old.example/hooks",
        secret="whsec_Z29uZWdvbmVnb25lZ29uZWdvbmVnb25l",
        enabled=False,
        disabled_reason="the endpoint answered 410 Gone",
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    first = Endpoint.objects.get(pk=rotated.pk)
    assert vault_take(first.secret_ref) == rotated.secret
    assert vault_take(first.previous_secret_ref) == rotated.previous_secret
    assert first.failing_since == now and first.created_at == rotated.created_at
    assert [k for k, _ in endpoint_events(rotated.pk)] == [
        events.WEBHOOK_ENDPOINT_REGISTERED,
        events.WEBHOOK_SECRET_ROTATED,
    ]
    second = Endpoint.objects.get(pk=gone.pk)
    assert (second.enabled, second.disabled_reason) == (False, gone.disabled_reason)
    [(_, disabled)] = endpoint_events(gone.pk)[1:]
    assert disabled["cause"] == events.DISABLED_GONE
    log = str(list(Event.objects.values_list("payload", flat=True)))
    assert rotated.secret not in log and gone.secret not in log
    differences, _ = verify(get_projections(["webhooks.endpoints"]))
    assert differences == []


def test_the_admin_changes_and_deletes_endpoints_through_their_events(admin_client, receiver):
    endpoint = services.endpoint_create(url=receiver.url, description="ERP")
    change = reverse("admin:webhooks_endpoint_change", args=[endpoint.pk])
    answer = admin_client.post(
        change, {"url": receiver.url, "event_types": ["order.created"], "description": "ERP 2"}
    )
    assert answer.status_code == 302
    row = Endpoint.objects.get()
    assert (row.enabled, row.description, row.event_types) == (False, "ERP 2", ["order.created"])
    kinds = [kind for kind, _ in endpoint_events(endpoint.pk)]
    assert kinds[1:] == [events.WEBHOOK_ENDPOINT_CHANGED, events.WEBHOOK_ENDPOINT_DISABLED]

    delete = reverse("admin:webhooks_endpoint_delete", args=[endpoint.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Endpoint.objects.exists()
    assert endpoint_events(endpoint.pk)[-1][0] == events.WEBHOOK_ENDPOINT_DELETED
