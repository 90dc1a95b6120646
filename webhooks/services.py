"""Webhooks' use cases: endpoints (create, rotate), signing (Standard Webhooks), delivery with
its retry schedule, auto-disable, redeliver and replay (in the background).

Every HTTP request is made with no database transaction open (`require_no_transaction`), after
its delivery was claimed: the claim moves `next_attempt_at` out by EVENTSTORE_EFFECT_LEASE, so a
worker that dies mid-request leaves the delivery to be sent again, with the same `webhook-id`.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
import ssl
import threading
import time
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError
from django.db.models import F, Q
from django.utils import timezone

from eventstore.api import (
    RecordedEvent,
    Repository,
    event_store,
    require_no_transaction,
    retry_on_conflict,
    unit_of_work,
    vault_erase,
    vault_put,
    vault_retain,
    vault_take,
)
from webhooks import events
from webhooks.aggregates import EndpointError, WebhookEndpoint
from webhooks.metrics import deliveries as delivery_counter
from webhooks.models import Attempt, Delivery, Endpoint, Replay

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
    """The secrets a delivery is signed with now, taken from the vault: the current one, and
    the one before it while the rotation window lasts."""
    refs = [endpoint.secret_ref]
    if (
        endpoint.previous_secret_ref
        and endpoint.previous_secret_until
        and now < endpoint.previous_secret_until
    ):
        refs.append(endpoint.previous_secret_ref)
    return [secret for secret in (vault_take(ref, now=now) for ref in refs) if secret]


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
            if not is_public(address):
                raise UnsafeURL(f"the URL's host resolves to a non-public address ({address})")
    return addresses


# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, IPv4-compatible).
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `address` is global and not multicast, and so is any IPv4 address an IPv6 one
    carries (mapped, 6to4, Teredo, NAT64, IPv4-compatible), which a gateway would reach."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo:
            embedded.append(address.teredo[1])
        if address in NAT64 or address in IPV4_COMPATIBLE:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        return all(is_public(inner) for inner in embedded if inner is not None)
    return True


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


endpoints: Repository[WebhookEndpoint] = Repository(WebhookEndpoint)

# Secrets live as long as their endpoint (erased when it is deleted, or when a rotation's window
# has passed); the vault's retention is only an upper bound.
SECRET_RETENTION = timedelta(days=100 * 365)


class EndpointNotFound(EndpointError):
    """No such endpoint (never registered, or deleted)."""


def _vault_secret(secret: str) -> str:
    return vault_put(kind=events.SECRET_KIND, secret=secret, retention=SECRET_RETENTION)


def _loaded(endpoint_id) -> WebhookEndpoint:
    endpoint = endpoints.load_or_new(str(endpoint_id))
    if not endpoint.exists:
        raise EndpointNotFound(f"No webhook endpoint {endpoint_id!r}")
    return endpoint


def _row(endpoint_id, secret: str | None = None) -> Endpoint:
    row = Endpoint.objects.get(pk=endpoint_id)
    row.secret = secret  # shown once, in the answer that made it
    return row


def endpoint_create(
    *, url: str, event_types: list[str] = (), description: str = "", enabled: bool = True
) -> Endpoint:
    """Register an endpoint (WebhookEndpointRegistered) with a new secret, kept in the vault;
    the row, whose `secret` attribute holds the secret (shown once)."""
    event_types = validate_event_types(event_types)
    endpoint_check_url(url)
    secret = new_secret()
    with unit_of_work():
        endpoint = endpoints.new(str(uuid.uuid4()))
        endpoint.register(
            url=url,
            event_types=event_types,
            description=description,
            enabled=enabled,
            secret_ref=_vault_secret(secret),
        )
        endpoints.save(endpoint)
    return _row(endpoint.id, secret)


def endpoint_check_url(url: str) -> None:
    """ValidationError naming the URL unless it may receive webhooks (`check_url`)."""
    try:
        check_url(url)
    except UnsafeURL as error:
        raise ValidationError({"url": str(error)}) from None


@retry_on_conflict
def endpoint_change(*, endpoint_id, enabled: bool | None = None, **changes) -> Endpoint:
    """Change the endpoint's url, event types or description (WebhookEndpointChanged), and
    enable or disable it (by staff) when `enabled` says so; the row."""
    if "url" in changes:
        endpoint_check_url(changes["url"])
    if "event_types" in changes:
        changes["event_types"] = validate_event_types(changes["event_types"])
    with unit_of_work():
        endpoint = _loaded(endpoint_id)
        endpoint.change(**changes)
        if enabled is True:
            endpoint.enable()
        elif enabled is False:
            endpoint.disable(cause=events.DISABLED_BY_STAFF, reason="disabled by staff")
        endpoints.save(endpoint)
    return _row(endpoint_id)


@retry_on_conflict
def endpoint_rotate_secret(*, endpoint_id) -> Endpoint:
    """Give the endpoint a new secret (WebhookSecretRotated); the old one is signed with too for
    WEBHOOKS_ROTATION_WINDOW seconds, then erased from the vault. The row, whose `secret`
    attribute holds the new secret (shown once)."""
    secret = new_secret()
    until = timezone.now() + timedelta(seconds=float(settings.WEBHOOKS_ROTATION_WINDOW))
    with unit_of_work():
        endpoint = _loaded(endpoint_id)
        superseded = endpoint.previous_secret_ref
        endpoint.rotate_secret(secret_ref=_vault_secret(secret), previous_until=until.isoformat())
        endpoints.save(endpoint)
        vault_retain(endpoint.previous_secret_ref, until=until)
        vault_erase(superseded)
    return _row(endpoint_id, secret)


@retry_on_conflict
def endpoint_delete(*, endpoint_id) -> None:
    """Delete the endpoint (WebhookEndpointDeleted), its deliveries and its secrets."""
    with unit_of_work():
        endpoint = _loaded(endpoint_id)
        refs = (endpoint.secret_ref, endpoint.previous_secret_ref)
        endpoint.delete()
        endpoints.save(endpoint)
        for ref in refs:
            vault_erase(ref)


@retry_on_conflict
def _record_disabled(endpoint_id, cause: str, reason: str) -> bool:
    with unit_of_work():
        endpoint = endpoints.load_or_new(str(endpoint_id))
        if not endpoint.exists or not endpoint.disable(cause=cause, reason=reason):
            return False
        endpoints.save(endpoint)
    return True


def endpoint_disable(endpoint: Endpoint, reason: str, *, cause: str) -> None:
    """Disable the endpoint (WebhookEndpointDisabled, with its cause: gone, failing or staff)
    and email the staff, once however many workers find it."""
    disabled = _record_disabled(endpoint.pk, cause, reason)
    endpoint.enabled, endpoint.disabled_reason = False, reason
    if not disabled:
        return
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
        endpoints = [e for e in enabled_endpoints() if e.receives(event, kind)]
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
    # WEBHOOKS_TIMEOUT bounds the whole attempt, however slowly the receiver trickles bytes:
    # at the deadline the socket is shut, which ends any read or write waiting on it.
    expired = threading.Event()
    deadline = threading.Timer(total, _shut, args=(connection, expired))
    deadline.daemon = True
    try:
        connection.connect()
        deadline.start()
        connection.sock.settimeout(total)
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = response.read(EXCERPT_BYTES).decode("utf-8", "replace")
        return Answer(response.status, excerpt, retry_after_seconds(response), "")
    except (OSError, http.client.HTTPException) as error:
        if expired.is_set():
            return Answer(None, "", None, f"timed out after {total:g} s ({type(error).__name__})")
        return Answer(None, "", None, f"{type(error).__name__}: {error}"[:500])
    finally:
        deadline.cancel()
        connection.close()


def _shut(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    expired.set()
    with contextlib.suppress(OSError, AttributeError):
        connection.sock.shutdown(socket.SHUT_RDWR)


def retry_after_seconds(response: http.client.HTTPResponse) -> float | None:
    """The answer's Retry-After in seconds from now (given in seconds or as an HTTP date), or
    None when absent or unreadable."""
    value = (response.getheader("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


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
            outcome = "refused" if answer.error.startswith("refused:") else "retry"
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
        endpoint_disable(endpoint, "the endpoint answered 410 Gone", cause=events.DISABLED_GONE)
    elif outcome in ("retry", "refused", "failed"):
        endpoint.refresh_from_db(fields=["failing_since", "enabled"])
        limit = timedelta(seconds=float(settings.WEBHOOKS_DISABLE_AFTER))
        if (
            endpoint.enabled
            and endpoint.failing_since
            and timezone.now() - endpoint.failing_since >= limit
        ):
            endpoint_disable(
                endpoint,
                f"every delivery failed since {endpoint.failing_since.isoformat()}",
                cause=events.DISABLED_FAILING,
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


# Events one worker pass reads for replays at most (the rest waits for the next pass).
REPLAY_BATCH = 500


def replay_start(
    endpoint: Endpoint,
    *,
    after_position: int = 0,
    to_position: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Replay:
    """Ask for every public event the endpoint wants of a position or time range, whatever its
    age, to be sent to it again (same `webhook-id` as the first time): the worker's passes read
    the range in batches (`replay_continue`) and send them, in log order."""
    last = event_store.last_position()
    end = last if to_position is None else min(to_position, last)
    return Replay.objects.create(
        endpoint=endpoint,
        after_position=after_position,
        to_position=max(end, after_position),
        since=since,
        until=until,
        reached=after_position,
        status=Replay.Status.DONE if end <= after_position else Replay.Status.RUNNING,
    )


def replay_step(replay: Replay, *, limit: int = REPLAY_BATCH) -> int:
    """Read the replay's next batch of the log and owe its endpoint the events it wants again;
    how many events were read. Safe in several workers at once: the batch is recorded only
    where the replay still stood where it was read from (its deliveries are owed once)."""
    endpoint = Endpoint.objects.filter(pk=replay.endpoint_id).first()
    page = event_store.read_page(
        after_position=replay.reached, limit=limit, event_types=list(events.PUBLIC_TYPES)
    )
    page = [event for event in page if event.position <= replay.to_position]
    owed = 0
    for event in page:
        if (replay.since and event.recorded_at < replay.since) or (
            replay.until and event.recorded_at > replay.until
        ):
            continue
        kind = events.public_type(event)
        if endpoint is None or kind is None or not endpoint.wants(kind):
            continue
        for delivery in owe_deliveries(event, [endpoint]):
            redeliver(delivery)
        owed += 1
    reached = page[-1].position if len(page) == limit else replay.to_position
    finished = reached >= replay.to_position or endpoint is None
    Replay.objects.filter(pk=replay.pk, reached=replay.reached).update(
        reached=reached,
        events=F("events") + owed,
        status=Replay.Status.DONE if finished else Replay.Status.RUNNING,
        finished_at=timezone.now() if finished else None,
    )
    return len(page)


def replay_continue(*, budget: int = REPLAY_BATCH) -> int:
    """Move the running replays on, oldest first, reading at most about `budget` events in
    all; how many were read."""
    read = 0
    for replay in Replay.objects.filter(status=Replay.Status.RUNNING).order_by("created_at"):
        if read >= budget:
            break
        read += replay_step(replay, limit=max(1, budget - read))
    return read


def pending_for(event_id: uuid.UUID):
    """The pending deliveries of an event, due now."""
    return Delivery.objects.select_related("endpoint").filter(
        Q(next_attempt_at__lte=timezone.now()), event_id=event_id, status=Delivery.Status.PENDING
    )
