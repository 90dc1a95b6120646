"""Web Push, the browsers' push protocol: the VAPID key (RFC 8292), subscription checks, and one
encrypted push (RFC 8291, aes128gcm) through pywebpush, its outcome sorted for the caller."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import re
import socket
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.utils import timezone
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

logger = logging.getLogger(__name__)

# Sizes of a subscription's keys once decoded: an uncompressed P-256 point and the auth secret.
P256DH_BYTES = 65
AUTH_BYTES = 16
# A push's plaintext stays well under the 4096 bytes a push service must accept (RFC 8030
# 7.2), leaving room for the aes128gcm header and padding.
PAYLOAD_MAX_BYTES = 3000
# How long a push service keeps an undelivered push for an offline browser (seconds).
PUSH_TTL = 24 * 60 * 60


class PushNotConfigured(Exception):
    """No VAPID key is configured (VAPID_PRIVATE_KEY): push delivery is off."""


class PushSubscriptionGone(Exception):
    """The push service answered 404 or 410: the subscription no longer exists."""


class PushRejected(Exception):
    """The push service refused the push for good (a 4xx other than 404, 410, 429)."""


class PushRetryLater(Exception):
    """The push service asked to be tried again later (429, 5xx); `retry_after` is its
    Retry-After, if it gave one."""

    def __init__(self, message: str, *, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadEndpoint(ValueError):
    """An endpoint pushes may not be sent to."""


def b64url_decode(value: str) -> bytes:
    """Bytes of unpadded (or padded) base64url text; ValueError when it is not that."""
    if not isinstance(value, str) or not value or set(value) - set(_B64URL_ALPHABET):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))


_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url, as Web Push writes keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def check_p256dh(value: str) -> None:
    """ValueError unless `value` is the base64url of an uncompressed P-256 public point."""
    raw = b64url_decode(value)
    if len(raw) != P256DH_BYTES:
        raise ValueError(f"must be {P256DH_BYTES} bytes")
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def check_auth(value: str) -> None:
    """ValueError unless `value` is the base64url of a 16-byte auth secret."""
    if len(b64url_decode(value)) != AUTH_BYTES:
        raise ValueError(f"must be {AUTH_BYTES} bytes")


def check_endpoint(endpoint: str) -> None:
    """BadEndpoint unless pushes may go to `endpoint`: https to a public host. Plain http to a
    loopback address only with NOTIFICATIONS_PUSH_ALLOW_LOOPBACK (tests, local push services).
    Hosts given as IP addresses are checked; names are left to the push service's certificate."""
    try:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
    except ValueError as error:  # e.g. an unclosed IPv6 bracket
        raise BadEndpoint("The endpoint is not a valid URL.") from error
    if not host or not re.fullmatch(r"[a-z0-9.:_-]+", host):
        raise BadEndpoint("The endpoint must name a host.")
    loopback = host == "localhost" or _is_address(host, "is_loopback")
    if (
        loopback
        and settings.NOTIFICATIONS_PUSH_ALLOW_LOOPBACK
        and parts.scheme in {"http", "https"}
    ):
        return
    if parts.scheme != "https":
        raise BadEndpoint("The endpoint must be an https URL.")
    if loopback or _is_address(host, "is_private") or _is_address(host, "is_link_local"):
        raise BadEndpoint("The endpoint must be on a public host.")


def check_resolved_endpoint(endpoint: str) -> None:
    """check_endpoint, and BadEndpoint when the endpoint's host name resolves to a private,
    loopback or link-local address (a name pointing inside the network); PushRetryLater when it
    does not resolve now."""
    check_endpoint(endpoint)
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").strip("[]")
    if settings.NOTIFICATIONS_PUSH_ALLOW_LOOPBACK and (
        host == "localhost" or _is_address(host, "is_loopback")
    ):
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, parts.port or 443)}
    except OSError as error:
        raise PushRetryLater(f"The endpoint's host does not resolve: {error}") from error
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_private or ip.is_loopback or ip.is_link_local:
            raise BadEndpoint("The endpoint's host resolves to a non-public address.")


def check_registered_endpoint(endpoint: str) -> None:
    """What a new subscription's endpoint must pass: check_resolved_endpoint, except that a host
    name that does not resolve at the moment is let through (delivery resolves it again)."""
    with contextlib.suppress(PushRetryLater):
        check_resolved_endpoint(endpoint)


def _is_address(host: str, kind: str) -> bool:
    try:
        return bool(getattr(ipaddress.ip_address(host.strip("[]")), kind))
    except ValueError:
        return False


_told_off = False


def push_configured() -> bool:
    """Whether push delivery is on (a VAPID key is set). Without a key, the first time this
    process is asked it logs a warning that pushes are not sent (emails still are)."""
    global _told_off
    if settings.VAPID_PRIVATE_KEY:
        return True
    if not _told_off:
        _told_off = True
        logger.warning(
            "Push delivery is off: VAPID_PRIVATE_KEY is not set, so notifications are emailed "
            "only (`manage.py vapid_keys` makes a key pair)."
        )
    return False


def vapid() -> Vapid:
    """The configured VAPID key; PushNotConfigured when there is none."""
    if not settings.VAPID_PRIVATE_KEY:
        raise PushNotConfigured("VAPID_PRIVATE_KEY is not set: push delivery is off")
    return Vapid.from_raw(settings.VAPID_PRIVATE_KEY.encode())


def public_key() -> str:
    """The VAPID public key as a browser's `subscribe({applicationServerKey})` takes it:
    base64url of the uncompressed point."""
    key = vapid().public_key
    return b64url_encode(
        key.public_bytes(
            encoding=serialization.Encoding.X962,
            format=serialization.PublicFormat.UncompressedPoint,
        )
    )


def topic_for(notification_id: str, subscription_id: str) -> str:
    """The Topic header of one notification's push to one subscription: 32 base64url
    characters (RFC 8030 5.4), the same on every attempt, so a resend replaces an undelivered
    copy at the push service instead of adding one."""
    digest = hashlib.sha256(f"{notification_id}:{subscription_id}".encode()).digest()
    return b64url_encode(digest[:24])


def payload_bytes(payload: Mapping[str, Any]) -> str:
    """The push's JSON text; ValueError when it is over PAYLOAD_MAX_BYTES."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > PAYLOAD_MAX_BYTES:
        raise ValueError(f"A push payload must be at most {PAYLOAD_MAX_BYTES} bytes")
    return text


def retry_after(value: str | None) -> timedelta | None:
    """A Retry-After header (seconds or an HTTP date) as a delay, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(timedelta(0), when - timezone.now())


def push_send(
    *, endpoint: str, p256dh: str, auth: str, payload: Mapping[str, Any], topic: str
) -> int:
    """Encrypt `payload` for the subscription and post it to its push service, signed with
    the VAPID key; the push service's status (201/202, or 200 from some) when it accepted it.

    Raises PushSubscriptionGone (404, 410), PushRetryLater (429, 5xx, a connection failure or
    timeout), PushRejected (any other answer), BadEndpoint, PushNotConfigured.
    """
    check_resolved_endpoint(endpoint)
    origin = urlsplit(endpoint)
    try:
        response = webpush(
            subscription_info={"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
            data=payload_bytes(payload),
            vapid_private_key=vapid(),
            # `aud` is the push service's origin; pywebpush sets `exp` to 12 hours from now.
            vapid_claims={
                "sub": settings.VAPID_SUBJECT,
                "aud": f"{origin.scheme}://{origin.netloc}",
            },
            ttl=PUSH_TTL,
            headers={"Topic": topic, "Urgency": "normal"},
            timeout=float(settings.NOTIFICATIONS_PUSH_TIMEOUT),
        )
    except WebPushException as error:
        status = error.status_code
        if status is None:
            raise PushRetryLater(str(error.message)) from error
        message = f"The push service answered {status}"
        if status in (404, 410):
            raise PushSubscriptionGone(message) from error
        if status == 429 or status >= 500:
            raise PushRetryLater(message, retry_after=retry_after(error.retry_after)) from error
        raise PushRejected(message) from error
    except requests.RequestException as error:
        raise PushRetryLater(f"{type(error).__name__}: {error}") from error
    return response.status_code
