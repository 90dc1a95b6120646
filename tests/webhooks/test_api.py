"""The webhooks API and admin, staff only: the secret shown once, rotation, the delivery log,
redeliver and replay."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from tests.factories import append_event
from webhooks import services
from webhooks.handlers import WebhookDispatcher, deliver_due_on_worker_pass
from webhooks.models import Delivery, Endpoint, Replay

pytestmark = pytest.mark.django_db


def order_created(order_id="o1"):
    return append_event(
        "order",
        order_id,
        event_type="OrderCreated",
        payload={"order_id": order_id, "customer_id": "c1", "items": [], "total_amount": "1.00"},
    )


def test_staff_create_an_endpoint_and_see_its_secret_once(staff_client, receiver):
    answer = staff_client.post(
        "/api/webhooks/endpoints/",
        {"url": receiver.url, "event_types": ["order.created"], "description": "ERP"},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    secret = answer.json()["secret"]
    assert secret.startswith("whsec_")
    endpoint_id = answer.json()["endpoint_id"]
    shown = staff_client.get(f"/api/webhooks/endpoints/{endpoint_id}/").json()
    assert "secret" not in shown
    assert shown["event_types"] == ["order.created"]

    WebhookDispatcher().perform(order_created(), attempt=1)
    [(headers, body)] = receiver.requests
    assert Webhook(secret).verify(body, headers)["type"] == "order.created"


def test_bad_endpoints_are_refused_and_nothing_is_written(staff_client, settings):
    settings.WEBHOOKS_ALLOW_HTTP = settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    for body in (
        {"url": "https://127.0.0.1/hooks"},
        {"url": "ftp://example.com/"},
        {"url": "https://example.com/", "event_types": ["order.shipped"]},
    ):
        answer = staff_client.post("/api/webhooks/endpoints/", body, format="json")
        assert answer.status_code in (400, 422), body
    assert not Endpoint.objects.exists()


def test_customers_cannot_manage_endpoints(customer_client):
    assert customer_client.get("/api/webhooks/endpoints/").status_code == 403
    assert customer_client.get("/api/webhooks/deliveries/").status_code == 403


def test_rotate_secret_answers_the_new_secret(staff_client, receiver):
    endpoint = services.endpoint_create(url=receiver.url)
    answer = staff_client.post(f"/api/webhooks/endpoints/{endpoint.pk}/rotate-secret/")
    assert answer.status_code == 200
    new = answer.json()["secret"]
    assert new.startswith("whsec_") and new != endpoint.secret
    assert answer.json()["previous_secret_until"]
    endpoint.refresh_from_db()
    assert services.signing_secrets(endpoint, timezone.now()) == [new, endpoint.secret]


def test_the_delivery_log_shows_each_attempt_and_redelivers(staff_client, receiver):
    endpoint = services.endpoint_create(url=receiver.url)
    receiver.answer(500)
    WebhookDispatcher().perform(order_created(), attempt=1)
    [delivery] = staff_client.get(
        "/api/webhooks/deliveries/", {"endpoint": str(endpoint.pk)}
    ).json()["results"]
    assert delivery["status"] == "pending"
    [attempt] = delivery["attempt_log"]
    assert (attempt["status_code"], attempt["response_excerpt"]) == (500, "answer 500")

    answer = staff_client.post(f"/api/webhooks/deliveries/{delivery['id']}/redeliver/")
    assert answer.status_code == 202
    services.deliver_due()
    assert Delivery.objects.get().status == "delivered"


def test_replay_through_the_api_runs_in_the_background_with_its_progress(staff_client, receiver):
    first = order_created("o1")
    order_created("o2")
    endpoint = services.endpoint_create(url=receiver.url)
    answer = staff_client.post(
        f"/api/webhooks/endpoints/{endpoint.pk}/replay/",
        {"after_position": first.position - 1, "to_position": first.position},
        format="json",
    )
    assert answer.status_code == 202
    replay = answer.json()
    assert (replay["status"], replay["events"], replay["progress"]) == ("running", 0, 0.0)
    assert not Delivery.objects.exists()  # nothing done inside the request

    deliver_due_on_worker_pass()

    shown = staff_client.get(f"/api/webhooks/replays/{replay['replay_id']}/").json()
    assert (shown["status"], shown["events"], shown["progress"]) == ("done", 1, 1.0)
    assert [h["webhook-id"] for h, _ in receiver.requests] == [f"msg_{first.event_id.hex}"]
    listed = staff_client.get("/api/webhooks/replays/", {"endpoint": str(endpoint.pk)}).json()
    assert [r["replay_id"] for r in listed["results"]] == [replay["replay_id"]]


def test_a_bad_replay_range_is_refused_and_nothing_is_asked(staff_client, receiver):
    endpoint = services.endpoint_create(url=receiver.url)
    for body in ({"after_position": -1}, {"to_position": 0}, {"since": "yesterday"}):
        answer = staff_client.post(
            f"/api/webhooks/endpoints/{endpoint.pk}/replay/", body, format="json"
        )
        assert answer.status_code == 400, body
    assert not Replay.objects.exists()


def test_the_admin_creates_an_endpoint_and_shows_its_secret_once(admin_client, receiver):
    answer = admin_client.post(
        reverse("admin:webhooks_endpoint_add"),
        {"url": receiver.url, "event_types": ["order.created"], "enabled": "on"},
        follow=True,
    )
    endpoint = Endpoint.objects.get()
    [secret] = services.signing_secrets(endpoint, timezone.now())
    assert secret in answer.content.decode()
    page = admin_client.get(reverse("admin:webhooks_endpoint_change", args=[endpoint.pk]))
    assert secret not in page.content.decode()


def test_the_admin_asks_for_a_replay_and_shows_its_progress(admin_client, receiver):
    event = order_created()
    endpoint = services.endpoint_create(url=receiver.url)
    url = reverse("admin:webhooks_endpoint_replay", args=[endpoint.pk])
    assert admin_client.get(url).status_code == 200
    answer = admin_client.post(url, {"after_position": event.position - 1}, follow=True)
    assert answer.status_code == 200
    assert "0%" in answer.content.decode()  # the replays page, before the worker's pass
    assert not Delivery.objects.exists()

    deliver_due_on_worker_pass()

    replay = Replay.objects.get()
    page = admin_client.get(reverse("admin:webhooks_replay_changelist")).content.decode()
    assert (replay.status, replay.events) == ("done", 1) and "100%" in page
    assert Delivery.objects.get(endpoint=endpoint).status == "delivered"
    assert admin_client.get(reverse("admin:webhooks_delivery_changelist")).status_code == 200
    delivery = Delivery.objects.get()
    assert (
        admin_client.get(reverse("admin:webhooks_delivery_change", args=[delivery.pk])).status_code
        == 200
    )
    assert (
        admin_client.get(reverse("admin:webhooks_replay_change", args=[replay.pk])).status_code
        == 200
    )


def test_enabling_an_endpoint_again_starts_its_failures_afresh(staff_client, receiver):
    endpoint = services.endpoint_create(url=receiver.url)
    receiver.answer(410)
    WebhookDispatcher().perform(order_created(), attempt=1)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.failing_since

    answer = staff_client.patch(
        f"/api/webhooks/endpoints/{endpoint.pk}/", {"enabled": True}, format="json"
    )
    assert answer.status_code == 200
    assert (answer.json()["failing_since"], answer.json()["disabled_reason"]) == (None, "")


def test_the_admin_redelivers_a_delivery_with_its_webhook_id(admin_client, receiver):
    endpoint = services.endpoint_create(url=receiver.url)
    receiver.answer(400)
    WebhookDispatcher().perform(order_created(), attempt=1)
    delivery = Delivery.objects.get()
    Delivery.objects.update(status=Delivery.Status.FAILED, next_attempt_at=None)

    answer = admin_client.post(
        reverse("admin:webhooks_delivery_changelist"),
        {"action": "redeliver", "_selected_action": [delivery.pk]},
        follow=True,
    )
    assert answer.status_code == 200
    assert Delivery.objects.get().status == "pending"
    assert services.deliver_due() == 1
    first, second = receiver.requests
    assert first[0]["webhook-id"] == second[0]["webhook-id"] == delivery.webhook_id
    assert Webhook(endpoint.secret).verify(second[1], second[0])["type"] == "order.created"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def test_redelivering_to_a_disabled_endpoint_is_refused(staff_client, receiver):
    endpoint = services.endpoint_create(url=receiver.url)
    WebhookDispatcher().perform(order_created(), attempt=1)
    services.endpoint_change(endpoint_id=endpoint.pk, enabled=False)
    delivery = Delivery.objects.get()
    answer = staff_client.post(f"/api/webhooks/deliveries/{delivery.pk}/redeliver/")
    assert answer.status_code == 409
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
