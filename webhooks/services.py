"""Webhooks' use cases: endpoints (create, rotate), signing (Standard Webhooks), delivery with
its retry schedule, auto-disable, redeliver and replay.

Every HTTP request is made with no database transaction open (`require_no_transaction`), after
its delivery was claimed: the claim moves `next_attempt_at` out by EVENTSTORE_EFFECT_LEASE, so a
worker that dies mid-request leaves the delivery to be sent again, with the same `webhook-id`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
import ssl
import time
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError
from django.db.models import Q
from django.utils import timezone

from eventstore.effects import require_no_transaction
from eventstore.records import RecordedEvent
from eventstore.store import NewEvent, event_store
from webhooks import events
from webhooks.metrics import deliveries as delivery_counter
from webhooks.models import Attempt, Delivery, Endpoint

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
EXCERPT_BYTES = 1024

# --- secrets and signatures -------------------------------------------------------------------


def new_secret() -> str:
    """`whsec_` + base64 of SECRET_BYTES random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks signature: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`,
    keyed with the secret's bytes (base64 after the `whsec_` prefix)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signing_secrets(endpoint: Endpoint, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the one before it while
    the rotation window lasts."""
    found = [endpoint.secret]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_until
        and now < endpoint.previous_secret_until
    ):
        found.append(endpoint.previous_secret)
    return found


def signature_header(endpoint: Endpoint, webhook_id: str, timestamp: int, body: bytes) -> str:
    now = timezone.now()
    return " ".join(sign(s, webhook_id, timestamp, body) for s in signing_secrets(endpoint, now))


# --- URLs -------------------------------------------------------------------------------------


class UnsafeURL(ValueError):
    """The URL may not receive webhooks (scheme, or an address that is not public)."""


def check_url(url: str) -> list[str]:
    """The addresses `url`'s host resolves to, once, all of them checked; raise UnsafeURL
    unless `url` is https (http too where WEBHOOKS_ALLOW_HTTP) and every address is public
    (any where WEBHOOKS_ALLOW_PRIVATE_ADDRESSES). A delivery connects to these addresses only
    (`post`), so a second resolution cannot slip another address in (DNS rebinding)."""
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise UnsafeURL("the URL has a space or a control character")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as error:
        raise UnsafeURL(f"not a URL: {error}") from None
    allowed = {"https", "http"} if settings.WEBHOOKS_ALLOW_HTTP else {"https"}
    if parts.scheme not in allowed:
        raise UnsafeURL(f"the URL's scheme must be {' or '.join(sorted(allowed))}")
    if not parts.hostname:
        raise UnsafeURL("the URL names no host")
    try:
        infos = socket.getaddrinfo(parts.hostname, _port(parts), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as error:
        raise UnsafeURL(f"the URL's host does not resolve: {error}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES:
        for found in addresses:
            address = ipaddress.ip_address(found)
            if not address.is_global or address.is_multicast:
                raise UnsafeURL(f"the URL's host resolves to a non-public address ({address})")
    return addresses


def _port(parts) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


class PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to one checked address; the Host header still names the URL's host."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def _socket(self) -> socket.socket:
        return socket.create_connection((self.address, self.port), self.timeout)

    def connect(self) -> None:
        self.sock = self._socket()


class PinnedHTTPSConnection(PinnedHTTPConnection):
    """An HTTPS connection to one checked address; SNI and the certificate's check use the
    URL's host name."""

    default_port = http.client.HTTPS_PORT

    def __init__(self, host: str, port: int, *, address: str, timeout: float, context=None):
        super().__init__(host, port, address=address, timeout=timeout)
        self.context = context or ssl.create_default_context()

    def connect(self) -> None:
        self.sock = self.context.wrap_socket(self._socket(), server_hostname=self.host)


# --- endpoints -----------------------------------------------------------------------------


def enabled_endpoints() -> list[Endpoint]:
    """The enabled endpoints, read now (one statement)."""
    return list(Endpoint.objects.filter(enabled=True))


def validate_event_types(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(events.PUBLIC_EVENT_TYPES))
    if unknown:
        raise ValidationError({"event_types": f"unknown event types: {', '.join(unknown)}"})
    return sorted(set(event_types))


def endpoint_create(
    *, url: str, event_types: list[str] = (), description: str = "", enabled: bool = True
) -> Endpoint:
    """A new enabled endpoint with a new secret (read it from the result: it is shown once)."""
    event_types = validate_event_types(event_types)
    endpoint_check_url(url)
    return Endpoint.objects.create(
        url=url,
        event_types=event_types,
        description=description,
        enabled=enabled,
        secret=new_secret(),
    )


def endpoint_check_url(url: str) -> None:
    """ValidationError naming the URL unless it may receive webhooks (`check_url`)."""
    try:
        check_url(url)
    except UnsafeURL as error:
        raise ValidationError({"url": str(error)}) from None


def endpoint_rotate_secret(endpoint: Endpoint) -> str:
    """Give the endpoint a new secret; the old one is signed with too for
    WEBHOOKS_ROTATION_WINDOW seconds. The new secret (shown once)."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = timezone.now() + timedelta(
        seconds=float(settings.WEBHOOKS_ROTATION_WINDOW)
    )
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_until"])
    return endpoint.secret


# What enabling a disabled endpoint again resets: its failures start counting afresh.
ENABLED_AGAIN = {"disabled_reason": "", "failing_since": None}


def endpoint_disable(endpoint: Endpoint, reason: str) -> None:
    """Disable the endpoint, record it (WebhookEndpointDisabled) and email the staff."""
    changed = Endpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
        enabled=False, disabled_reason=reason
    )
    endpoint.enabled, endpoint.disabled_reason = False, reason
    if not changed:
        return
    event_store.append_to_stream(
        events.ENDPOINT,
        str(endpoint.pk),
        [
            NewEvent(
                events.WEBHOOK_ENDPOINT_DISABLED,
                {"endpoint_id": str(endpoint.pk), "url": endpoint.url, "reason": reason},
            )
        ],
    )
    staff = get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
    recipients = list(staff.values_list("email", flat=True))
    if recipients:
        send_mail(
            f"Webhook endpoint disabled: {endpoint.url}",
            f"The webhook endpoint {endpoint.url} ({endpoint.pk}) was disabled: {reason}.\n"
            "Enable it again in the admin once it answers; its failed deliveries can then be "
            "redelivered or replayed.",
            settings.DEFAULT_FROM_EMAIL,
            recipients,
            fail_silently=True,
        )


# --- deliveries -------------------------------------------------------------------------------


def _body(event: RecordedEvent) -> str:
    return json.dumps(events.public_payload(event), separators=(",", ":"), default=str)


def owe_deliveries(event: RecordedEvent, endpoints=None) -> list[Delivery]:
    """The deliveries of a public event to every enabled endpoint that wants it (or to
    `endpoints`), one per (endpoint, event) however often this runs; due now when new."""
    kind = events.public_type(event)
    if kind is None:
        return []
    if endpoints is None:
        endpoints = [e for e in enabled_endpoints() if e.wants(kind)]
    body = None
    found = []
    for endpoint in endpoints:
        delivery = Delivery.objects.filter(endpoint=endpoint, event_id=event.event_id).first()
        if delivery is None:
            body = body or _body(event)
            try:
                delivery = Delivery.objects.create(
                    endpoint=endpoint,
                    event_id=event.event_id,
                    position=event.position,
                    event_type=kind,
                    body=body,
                    next_attempt_at=timezone.now(),
                )
            except IntegrityError:  # another worker owed it first
                delivery = Delivery.objects.get(endpoint=endpoint, event_id=event.event_id)
        found.append(delivery)
    return found


def claim(delivery: Delivery) -> bool:
    """Take the due pending delivery for one attempt (its next attempt moved out by the lease),
    unless another worker did."""
    now = timezone.now()
    lease = timedelta(seconds=float(settings.EVENTSTORE_EFFECT_LEASE))
    taken = Delivery.objects.filter(
        pk=delivery.pk,
        status=Delivery.Status.PENDING,
        next_attempt_at=delivery.next_attempt_at,
        next_attempt_at__lte=now,
    ).update(next_attempt_at=now + lease)
    if taken:
        delivery.next_attempt_at = now + lease
    return bool(taken)


def retry_schedule() -> list[float]:
    """Seconds to wait after each failed attempt (WEBHOOKS_RETRY_SCHEDULE)."""
    return [float(s) for s in str(settings.WEBHOOKS_RETRY_SCHEDULE).split(",") if s.strip()]


class Answer:
    def __init__(self, status: int | None, excerpt: str, retry_after: float | None, error: str):
        self.status, self.excerpt, self.retry_after, self.error = (
            status,
            excerpt,
            retry_after,
            error,
        )


def post(url: str, headers: dict[str, str], body: bytes) -> Answer:
    """POST `body` to the address the URL's host was just resolved to and checked (`check_url`),
    following no redirect, within the connect and total timeouts; reads at most EXCERPT_BYTES of
    the answer."""
    require_no_transaction("A webhook delivery")
    try:
        addresses = check_url(url)
    except UnsafeURL as error:
        return Answer(None, "", None, f"refused: {error}")
    parts = urlsplit(url)
    connection_class = PinnedHTTPSConnection if parts.scheme == "https" else PinnedHTTPConnection
    total = float(settings.WEBHOOKS_TIMEOUT)
    connection = connection_class(
        parts.hostname,
        _port(parts),
        address=addresses[0],
        timeout=float(settings.WEBHOOKS_CONNECT_TIMEOUT),
    )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.connect()
        connection.sock.settimeout(total)
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = response.read(EXCERPT_BYTES).decode("utf-8", "replace")
        retry_after = response.getheader("Retry-After")
        try:
            wait = float(retry_after) if retry_after else None
        except ValueError:
            wait = None
        return Answer(response.status, excerpt, wait, "")
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, "", None, f"{type(error).__name__}: {error}"[:500])
    finally:
        connection.close()


def attempt_delivery(delivery: Delivery) -> str:
    """Make one claimed attempt of the delivery and record it; the delivery's new status."""
    endpoint = delivery.endpoint
    body = delivery.body.encode()
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "order-processing-webhooks",
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(endpoint, delivery.webhook_id, timestamp, body),
    }
    started = timezone.now()
    clock = time.monotonic()
    answer = post(endpoint.url, headers, body)
    duration_ms = int((time.monotonic() - clock) * 1000)
    Attempt.objects.create(
        delivery=delivery,
        attempted_at=started,
        status_code=answer.status,
        duration_ms=duration_ms,
        response_excerpt=answer.excerpt,
        error=answer.error,
    )
    delivery.attempts += 1
    status = answer.status
    if status is not None and 200 <= status < 300:
        outcome = "delivered"
        delivery.status, delivery.next_attempt_at = Delivery.Status.DELIVERED, None
        Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
    elif status == 410:
        outcome = "gone"
        delivery.status, delivery.next_attempt_at = Delivery.Status.FAILED, None
    else:
        schedule = retry_schedule()
        if delivery.attempts > len(schedule):
            outcome = "failed"
            delivery.status, delivery.next_attempt_at = Delivery.Status.FAILED, None
        else:
            outcome = "retry"
            wait = schedule[delivery.attempts - 1]
            if (status == 429 or (status or 0) >= 500) and answer.retry_after is not None:
                wait = max(wait, answer.retry_after)
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=wait)
    if outcome != "delivered":
        Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(
            failing_since=started
        )
    delivery.save(update_fields=["status", "attempts", "next_attempt_at", "updated_at"])
    delivery_counter.labels(outcome).inc()
    if status == 410:
        endpoint_disable(endpoint, "the endpoint answered 410 Gone")
    elif outcome in ("retry", "failed"):
        endpoint.refresh_from_db(fields=["failing_since", "enabled"])
        limit = timedelta(seconds=float(settings.WEBHOOKS_DISABLE_AFTER))
        if (
            endpoint.enabled
            and endpoint.failing_since
            and timezone.now() - endpoint.failing_since >= limit
        ):
            endpoint_disable(
                endpoint, f"every delivery failed since {endpoint.failing_since.isoformat()}"
            )
    return delivery.status


def deliver(deliveries) -> int:
    """Attempt each delivery that is due, pending and whose endpoint is enabled, once claimed;
    how many attempts were made."""
    made = 0
    for delivery in deliveries:
        if delivery.endpoint.enabled and claim(delivery):
            attempt_delivery(delivery)
            made += 1
    return made


def deliver_due(*, limit: int = 100) -> int:
    """Attempt the pending deliveries that are due (retries, redeliveries, replays)."""
    due = (
        Delivery.objects.select_related("endpoint")
        .filter(
            status=Delivery.Status.PENDING,
            next_attempt_at__lte=timezone.now(),
            endpoint__enabled=True,
        )
        .order_by("next_attempt_at")[:limit]
    )
    return deliver(list(due))


def redeliver(delivery: Delivery) -> None:
    """Make the delivery due again now, with the same `webhook-id`, whatever its status."""
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.PENDING, next_attempt_at=timezone.now(), updated_at=timezone.now()
    )


def replay(
    endpoint: Endpoint,
    *,
    after_position: int = 0,
    to_position: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Owe the endpoint every public event it wants of a position or time range, whatever its
    age, again where it was delivered (same `webhook-id` as the first time): how many. The
    worker sends them, in log order."""
    count = 0
    for event in event_store.read_all(
        after_position=after_position, event_types=list(events.PUBLIC_TYPES)
    ):
        if to_position is not None and event.position > to_position:
            break
        if (since and event.recorded_at < since) or (until and event.recorded_at > until):
            continue
        kind = events.public_type(event)
        if kind is None or not endpoint.wants(kind):
            continue
        for delivery in owe_deliveries(event, [endpoint]):
            redeliver(delivery)
        count += 1
    return count


def pending_for(event_id: uuid.UUID):
    """The pending deliveries of an event, due now."""
    return Delivery.objects.select_related("endpoint").filter(
        Q(next_attempt_at__lte=timezone.now()), event_id=event_id, status=Delivery.Status.PENDING
    )
