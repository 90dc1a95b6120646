"""Deliveries as Standard Webhooks says, verified by the `standardwebhooks` library: signature,
stable webhook-id, retries on the schedule, 410, auto-disable, rotation, redeliver, replay."""

from __future__ import annotations

import email.utils
import ipaddress
import json
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from eventstore.models import Event
from tests.factories import StaffUserFactory, append_event
from tests.webhooks.conftest import Receiver
from webhooks import events, services
from webhooks.handlers import WebhookDispatcher
from webhooks.metrics import deliveries as delivery_counter
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db

ITEMS = [{"product_id": "p1", "quantity": 2, "unit_price": "5.00"}]


def order_cancelled(order_id="o1", reason="payment_failed"):
    return append_event(
        "order",
        order_id,
        event_type="OrderCancelled",
        payload={
            "order_id": order_id,
            "customer_id": "c1",
            "items": ITEMS,
            "total_amount": "10.00",
            "reason": reason,
        },
    )


def verify(secret, headers, body):
    return Webhook(secret).verify(body, headers)


def test_a_public_event_is_delivered_signed_to_each_endpoint_that_wants_it(receiver):
    wants = services.endpoint_create(url=receiver.url, event_types=["order.cancelled"])
    services.endpoint_create(url=receiver.url, event_types=["order.created"])
    event = order_cancelled()

    WebhookDispatcher().perform(event, attempt=1)

    [(headers, body)] = receiver.requests
    payload = verify(wants.secret, headers, body)
    assert payload["type"] == "order.cancelled"
    assert payload["data"]["reason"] == "payment_failed"
    assert payload["data"]["order_id"] == "o1"
    assert headers["webhook-id"] == f"msg_{event.event_id.hex}"
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    [attempt] = delivery.attempt_log.all()
    assert (attempt.status_code, attempt.response_excerpt) == (200, "answer 200")


def test_a_tampered_body_or_a_stale_timestamp_fails_verification(receiver):
    endpoint = services.endpoint_create(url=receiver.url, event_types=[])
    WebhookDispatcher().perform(order_cancelled(), attempt=1)
    [(headers, body)] = receiver.requests

    with pytest.raises(WebhookVerificationError):
        verify(endpoint.secret, headers, body.replace(b"payment_failed", b"nothing"))
    stale = {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 3600)}
    with pytest.raises(WebhookVerificationError):
        verify(endpoint.secret, stale, body)


def test_during_a_rotation_both_secrets_sign_and_after_it_only_the_new_one(receiver, settings):
    endpoint = services.endpoint_create(url=receiver.url, event_types=[])
    old = endpoint.secret
    new = services.endpoint_rotate_secret(endpoint_id=endpoint.pk).secret
    WebhookDispatcher().perform(order_cancelled("o1"), attempt=1)
    [(headers, body)] = receiver.requests
    assert verify(old, headers, body) == verify(new, headers, body)

    Endpoint.objects.filter(pk=endpoint.pk).update(previous_secret_until=timezone.now())
    WebhookDispatcher().perform(order_cancelled("o2"), attempt=1)
    headers, body = receiver.requests[1]
    verify(new, headers, body)
    with pytest.raises(WebhookVerificationError):
        verify(old, headers, body)


def test_failures_are_retried_on_the_schedule_with_the_same_webhook_id(receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = "5,300"
    endpoint = services.endpoint_create(url=receiver.url, event_types=[])
    receiver.answer(500)
    receiver.answer(503, **{"Retry-After": "900"})
    receiver.answer(400)
    WebhookDispatcher().perform(order_cancelled(), attempt=1)
    delivery = Delivery.objects.get()
    assert delivery.status == "pending"
    assert timedelta(seconds=4) < delivery.next_attempt_at - timezone.now() <= timedelta(seconds=5)

    assert services.deliver_due() == 0  # not due yet
    Delivery.objects.update(next_attempt_at=timezone.now())
    assert services.deliver_due() == 1
    delivery.refresh_from_db()
    # Retry-After is honoured when longer than the schedule's 300 s.
    assert delivery.next_attempt_at - timezone.now() > timedelta(seconds=800)

    Delivery.objects.update(next_attempt_at=timezone.now())
    services.deliver_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert len({h["webhook-id"] for h, _ in receiver.requests}) == 1
    verify(endpoint.secret, *receiver.requests[2])


def test_410_disables_the_endpoint_records_it_and_emails_the_staff(receiver):
    StaffUserFactory(email="ops@example.com")
    endpoint = services.endpoint_create(url=receiver.url, event_types=[])
    receiver.answer(410)
    WebhookDispatcher().perform(order_cancelled(), attempt=1)

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    [disabled] = Event.objects.filter(event_type=events.WEBHOOK_ENDPOINT_DISABLED)
    assert disabled.payload["endpoint_id"] == str(endpoint.pk)
    [email] = mail.outbox
    assert email.to == ["ops@example.com"]
    WebhookDispatcher().perform(order_cancelled("o2"), attempt=1)
    assert len(receiver.requests) == 1  # nothing more is sent to it


def test_an_endpoint_failing_longer_than_the_setting_is_disabled(receiver, settings):
    settings.WEBHOOKS_DISABLE_AFTER = 3600
    endpoint = services.endpoint_create(url=receiver.url, event_types=[])
    receiver.answer(500)
    WebhookDispatcher().perform(order_cancelled("o1"), attempt=1)
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is not None

    Endpoint.objects.update(failing_since=timezone.now() - timedelta(hours=2))
    receiver.answer(500)
    WebhookDispatcher().perform(order_cancelled("o2"), attempt=1)
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert Event.objects.filter(event_type=events.WEBHOOK_ENDPOINT_DISABLED).count() == 1


def test_a_success_ends_the_failing_period(receiver):
    endpoint = services.endpoint_create(url=receiver.url, event_types=[])
    receiver.answer(500)
    WebhookDispatcher().perform(order_cancelled("o1"), attempt=1)
    WebhookDispatcher().perform(order_cancelled("o2"), attempt=1)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_performing_again_sends_nothing_twice_and_keeps_one_delivery(receiver):
    services.endpoint_create(url=receiver.url, event_types=[])
    event = order_cancelled()
    WebhookDispatcher().perform(event, attempt=1)
    WebhookDispatcher().perform(event, attempt=2)
    assert len(receiver.requests) == 1
    assert Delivery.objects.count() == 1


def test_redeliver_sends_again_with_the_same_webhook_id(receiver):
    endpoint = services.endpoint_create(url=receiver.url, event_types=[])
    WebhookDispatcher().perform(order_cancelled(), attempt=1)
    services.redeliver(Delivery.objects.get())
    services.deliver_due()
    first, second = receiver.requests
    assert first[0]["webhook-id"] == second[0]["webhook-id"]
    assert verify(endpoint.secret, *first) == verify(endpoint.secret, *second)


def test_replay_sends_a_position_range_in_order_with_the_first_webhook_ids(receiver):
    first = order_cancelled("o1")
    second = order_cancelled("o2")
    order_cancelled("o3")
    endpoint = services.endpoint_create(url=receiver.url, event_types=["order.cancelled"])
    services.endpoint_create(url=receiver.url, event_types=["order.created"])

    replay = services.replay_start(
        endpoint, after_position=first.position - 1, to_position=second.position
    )
    assert services.replay_continue() == 2
    services.deliver_due()

    replay.refresh_from_db()
    assert (replay.status, replay.events, replay.reached) == ("done", 2, second.position)
    ids = [headers["webhook-id"] for headers, _ in receiver.requests]
    assert ids == [f"msg_{first.event_id.hex}", f"msg_{second.event_id.hex}"]
    services.replay_start(endpoint, after_position=first.position - 1, to_position=first.position)
    services.replay_continue()
    services.deliver_due()
    assert receiver.requests[-1][0]["webhook-id"] == ids[0]
    assert Delivery.objects.count() == 2


def test_a_long_replay_is_read_in_batches_over_several_passes(receiver, monkeypatch):
    sent = [order_cancelled(f"o{n}") for n in range(5)]
    endpoint = services.endpoint_create(url=receiver.url)
    replay = services.replay_start(endpoint, after_position=sent[0].position - 1)
    monkeypatch.setattr(services, "REPLAY_BATCH", 2)

    progress = []
    for _ in range(3):
        services.replay_continue(budget=2)
        replay.refresh_from_db()
        progress.append((replay.status, replay.events))
    assert progress == [("running", 2), ("running", 4), ("done", 5)]
    services.replay_continue(budget=2)  # nothing left: nothing owed twice
    services.deliver_due()
    assert [h["webhook-id"] for h, _ in receiver.requests] == [
        f"msg_{event.event_id.hex}" for event in sent
    ]


def test_a_replay_of_a_time_range_owes_only_the_events_recorded_in_it(receiver):
    early, late = order_cancelled("o1"), order_cancelled("o2")
    endpoint = services.endpoint_create(url=receiver.url)
    services.replay_start(endpoint, since=late.recorded_at, until=late.recorded_at)
    services.replay_continue()
    assert list(Delivery.objects.values_list("event_id", flat=True)) == [late.event_id]
    assert early.event_id != late.event_id


def test_stock_shortage_names_the_missing_products():
    event = append_event(
        "reservation",
        event_type="InventoryReservationFailed",
        payload={
            "reservation_id": "r1",
            "reason": "insufficient_stock",
            "details": [{"product_id": "p1", "requested": 5, "available": 2}],
        },
    )
    payload = events.public_payload(event)
    assert payload["type"] == "stock.shortage"
    assert payload["data"]["products"] == [
        {"product_id": "p1", "requested": 5, "available": 2, "missing": 3}
    ]
    json.dumps(payload, default=str)


def test_private_addresses_and_plain_http_are_refused_unless_allowed(settings):
    settings.WEBHOOKS_ALLOW_HTTP = settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(ValidationError):
        services.endpoint_create(url="http://example.com/hooks", event_types=[])
    with pytest.raises(ValidationError):
        services.endpoint_create(url="https://127.0.0.1/hooks", event_types=[])
    with pytest.raises(ValidationError):
        services.endpoint_create(url="https://example.com/", event_types=["order.shipped"])


def rebinding_resolver(monkeypatch, host, first, then):
    """Resolve `host` to `first` once, to `then` afterwards (a DNS rebinding attack); the
    calls made, by host."""
    real, calls = socket.getaddrinfo, []

    def resolve(name, port, *args, **kwargs):
        if name != host:
            return real(name, port, *args, **kwargs)
        calls.append(name)
        address = first if len(calls) == 1 else then
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return calls


def test_a_delivery_connects_to_the_address_it_checked_not_to_a_second_resolution(
    receiver, monkeypatch
):
    """The host resolves to the receiver when checked, then to another listener on the same
    port: the request reaches the checked address, with the URL's host in its Host header."""
    other = Receiver("127.0.0.2", receiver.port)
    try:
        url = f"http://hooks.example:{receiver.port}/hooks"
        calls = rebinding_resolver(monkeypatch, "hooks.example", "127.0.0.1", "127.0.0.2")
        answer = services.post(url, {"content-type": "application/json"}, b"{}")
        assert answer.status == 200, answer.error
        [(headers, _)] = receiver.requests
        assert headers["host"] == f"hooks.example:{receiver.port}"
        assert other.requests == [] and len(calls) == 1
    finally:
        other.close()


def test_a_delivery_resolving_to_a_private_address_is_refused_unconnected(receiver, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    answer = services.post(receiver.url, {}, b"{}")
    assert answer.status is None and answer.error.startswith("refused:")
    assert receiver.requests == []


def test_https_names_the_host_for_sni_while_connecting_to_the_checked_address(receiver):
    """The TLS layer is asked for the URL's host name (SNI, certificate check) on a socket
    connected to the checked address (here a context that records it and speaks plain HTTP)."""

    class RecordingContext:
        names: list[str] = []

        def wrap_socket(self, sock, server_hostname):
            self.names.append(server_hostname)
            return sock

    context = RecordingContext()
    connection = services.PinnedHTTPSConnection(
        "hooks.example", receiver.port, address="127.0.0.1", timeout=5, context=context
    )
    connection.request("POST", "/hooks", body=b"{}")
    assert connection.getresponse().status == 200
    connection.close()
    assert context.names == ["hooks.example"]
    assert receiver.requests[0][0]["host"] == f"hooks.example:{receiver.port}"


def test_the_total_timeout_ends_an_answer_trickled_byte_by_byte(settings):
    """A receiver that sends its answer a byte every 0.1 s never lets a read time out; the
    attempt still ends at WEBHOOKS_TIMEOUT."""
    settings.WEBHOOKS_ALLOW_HTTP = settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOKS_TIMEOUT = 0.5
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\n" * 100:
                if stop.is_set():
                    return
                conn.sendall(bytes([byte]))
                time.sleep(0.1)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        answer = services.post(f"http://127.0.0.1:{listener.getsockname()[1]}/", {}, b"{}")
    finally:
        stop.set()
        listener.close()
    assert time.monotonic() - started < 2
    assert answer.status is None and answer.error.startswith("timed out after 0.5 s")


def test_retry_after_as_an_http_date_is_honoured(receiver, settings):
    settings.WEBHOOKS_RETRY_SCHEDULE = "5,5"
    services.endpoint_create(url=receiver.url)
    later = email.utils.format_datetime(timezone.now() + timedelta(hours=1), usegmt=True)
    receiver.answer(429, **{"Retry-After": later})
    WebhookDispatcher().perform(order_cancelled(), attempt=1)
    wait = Delivery.objects.get().next_attempt_at - timezone.now()
    assert timedelta(minutes=58) < wait <= timedelta(hours=1)


@pytest.mark.parametrize(
    "address",
    ["::ffff:127.0.0.1", "64:ff9b::a00:1", "2002:c0a8:101::1", "::127.0.0.1", "fe80::1", "ff02::1"],
)
def test_ipv6_addresses_that_reach_private_ipv4_ones_are_not_public(address):
    assert not services.is_public(ipaddress.ip_address(address))


def test_a_refused_url_is_counted_as_refused_and_retried(receiver, settings):
    services.endpoint_create(url=receiver.url)
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False  # the host now resolves to a refused one
    refused = delivery_counter.labels("refused")._value.get()
    WebhookDispatcher().perform(order_cancelled(), attempt=1)
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and receiver.requests == []
    assert delivery.attempt_log.get().error.startswith("refused:")
    assert delivery_counter.labels("refused")._value.get() == refused + 1
