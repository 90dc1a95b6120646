"""Notifications' command handlers: record a notification once, then deliver it by email.

Recording (`notification_send`, `order_notify`) appends only the intent, `NotificationSent`,
with the email's subject and body already rendered. Delivery (`notification_deliver`) runs
later, with no transaction open, from the `notifications.delivery` effect subscriber: it sends
the email through Django's mail framework (EMAIL_BACKEND) under a Message-ID that is the same on
every attempt, then records `NotificationDelivered`. A crash between the two sends the same
email again (at least once); a delivered notification is never sent again.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from opentelemetry.trace import SpanKind

from eventstore.api import (
    ConcurrencyError,
    Repository,
    derived_event_id,
    require_no_transaction,
    retry_on_conflict,
    rows,
    tracing,
    unit_of_work,
)
from notifications import events, webpush
from notifications.aggregates import (
    EmailNotAccepted,
    Notification,
    NotificationError,
    NotificationUndeliverable,
    PushSubscription,
)
from notifications.events import type_in_words
from notifications.models import OrderOwner
from notifications.models import PushSubscription as PushSubscriptionRow

notifications: Repository[Notification] = Repository(Notification)

Metadata = Mapping[str, Any] | None

EMAIL = "email"  # the channel every notification goes by

# The templates of a notification's email: notifications/email/<name>_subject.txt and _body.txt.
EMAIL_TEMPLATE = "notifications/email/{name}_{part}.txt"
GENERIC_TEMPLATE = "generic"

# The notification type for each order outcome (also its email templates' name), and the short
# message the API shows.
ORDER_OUTCOMES = {
    events.ORDER_CONFIRMED: (
        "order_confirmed",
        "Your order {order_id} is confirmed. Total: {total_amount}.",
    ),
    events.ORDER_COMPLETED: (
        "order_completed",
        "Your order {order_id} is complete. Thank you for your purchase.",
    ),
    events.ORDER_CANCELLED: ("order_cancelled", "Your order {order_id} was cancelled: {reason}."),
    events.ORDER_REFUNDED: (
        "order_refunded",
        "Your order {order_id} was cancelled and {total_amount} refunded.",
    ),
}

# The reason an order in fulfilment is cancelled with when someone asked for it (orders'
# `cancel_reason`): the saga stops before the payment, so nothing was charged.
CANCEL_REQUESTED = "cancel_requested"
# How a reason reads in an email, where its code would not.
REASON_WORDS = {CANCEL_REQUESTED: "as requested"}


# What a cancellation's email says of the customer's money. The saga asks for the payment only
# once the stock is reserved and priced, so a cancellation without a total (or for a stock
# reason) came before any payment; a refused charge took nothing; a charge the saga did not keep
# is refunded (payment_conflict), and so is one that goes through after the saga gave up on it
# (payment_timeout, or any other reason). The reasons are orders' `cancel_reason` (API.md).
STOCK_REASONS = frozenset({"insufficient_stock", "unknown_product", "inventory_timeout"})
REFUSED_PAYMENT_REASONS = frozenset(
    {"card_declined", "insufficient_funds", "invalid_token", "processing_error", "token_expired"}
)
REFUNDED_PAYMENT_REASONS = frozenset({"payment_conflict"})


def cancelled_order_payment(payload: Mapping[str, Any]) -> str:
    """What became of the payment of a cancelled order (an OrderCancelled payload):
    "not_requested", "refused", "refunded", or "refunded_if_taken" (whether a late charge
    went through is not known yet)."""
    reason = payload.get("reason")
    never_priced = "total_amount" in payload and payload["total_amount"] is None
    if reason in STOCK_REASONS or reason == CANCEL_REQUESTED or never_priced:
        return "not_requested"
    if reason in REFUSED_PAYMENT_REASONS:
        return "refused"
    if reason in REFUNDED_PAYMENT_REASONS:
        return "refunded"
    return "refunded_if_taken"


def email_render(*, template: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """The subject (one line) and plain-text body of the named email templates. Template tags
    leave blank lines behind: the body keeps at most one blank line in a row."""
    subject = render_to_string(EMAIL_TEMPLATE.format(name=template, part="subject"), context)
    body = render_to_string(EMAIL_TEMPLATE.format(name=template, part="body"), context)
    lines = [line.rstrip() for line in body.strip().splitlines()]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return " ".join(subject.split()), body + "\n"


class OrderNotOfCustomer(NotificationError):
    """A notification names an order that is unknown or belongs to another customer."""


def notification_send_checked(
    *, customer_id: str, type: str, message: str, order_id: str = "", metadata: Metadata = None
) -> Notification:
    """Record a notification someone wrote (staff, through the API), refusing one about an
    order that is not the customer's: it would show in another customer's order history.

    Raises OrderNotOfCustomer (nothing recorded) for an unknown order or another customer's.
    """
    if order_id:
        owner = OrderOwner.objects.filter(order_id=order_id).values_list("customer_id", flat=True)
        if list(owner) != [customer_id]:
            raise OrderNotOfCustomer(f"Customer {customer_id!r} has no order {order_id!r}.")
    return notification_send(
        customer_id=customer_id, type=type, message=message, order_id=order_id, metadata=metadata
    )


@retry_on_conflict
def notification_send(
    *,
    customer_id: str,
    type: str,
    message: str,
    order_id: str = "",
    notification_id: str | None = None,
    subject: str | None = None,
    body: str | None = None,
    metadata: Metadata = None,
) -> Notification:
    """Record one notification, to be emailed to the customer after commit (see
    `notification_deliver`); a repeat of `notification_id` records nothing.

    Without `subject` and `body`, the generic email is rendered: the type in words as subject,
    the message as body.
    """
    if subject is None or body is None:
        subject, body = email_render(
            template=GENERIC_TEMPLATE,
            context={"type": type, "type_in_words": type_in_words(type), "message": message},
        )
    with unit_of_work():
        # Recorded without looking first: the store refuses a second NotificationSent of one
        # id (its event id is derived from it), and a stream that holds one under another event
        # id (recorded before ids were derived) is refused by its version.
        notification = notifications.new(notification_id or str(uuid.uuid4()))
        notification.send(
            customer_id=customer_id,
            order_id=order_id,
            type=type,
            channel=EMAIL,
            message=message,
            subject=subject,
            body=body,
        )
        [asked] = notification.pending_events
        try:
            [recorded] = notifications.save(notification, metadata=metadata)
        except ConcurrencyError:
            recorded = None
        if recorded is None or recorded.payload != asked.payload:
            # Recorded before: the store kept the first one, which is the notification.
            stored = notifications.load_or_new(notification.id)
            if not stored.sent:
                raise NotificationError(f"Notification {notification.id!r} cannot be recorded")
            return stored
    return notification


def order_notify(
    *, event_type: str, payload: Mapping[str, Any], metadata: Metadata = None
) -> Notification:
    """Tell the customer their order was confirmed, completed, cancelled or refunded: once per
    order and outcome, however often the order's event is delivered."""
    if event_type not in ORDER_OUTCOMES:
        raise NotificationError(f"No notification for {event_type}")
    kind, template = ORDER_OUTCOMES[event_type]
    order_id = str(payload["order_id"])
    reason = str(payload.get("reason") or "")
    reason = REASON_WORDS.get(reason) or reason.replace("_", " ") or "no reason given"
    message = template.format(
        order_id=order_id,
        total_amount=payload.get("total_amount") or "see your order",
        reason=reason,
    )
    subject, body = email_render(
        template=kind,
        context={
            "order_id": order_id,
            # Order events stored before they carried their items have none: the email says so.
            "items": list(payload.get("items") or []),
            "total_amount": payload.get("total_amount") or "",
            "reason": reason,
            # The reason given with a refunded order's cancellation, as it was written.
            "note": str(payload.get("reason") or "") if event_type == events.ORDER_REFUNDED else "",
            "payment": (
                cancelled_order_payment(payload) if event_type == events.ORDER_CANCELLED else ""
            ),
        },
    )
    return notification_send(
        customer_id=str(payload["customer_id"]),
        type=kind,
        message=message,
        order_id=order_id,
        notification_id=str(derived_event_id(events.NOTIFICATION, order_id, kind)),
        subject=subject,
        body=body,
        metadata=metadata,
    )


def message_id_for(notification_id: str) -> str:
    """The Message-ID of a notification's email: the same on every attempt, so a repeat after
    a crash is recognisably the same message. Its domain is DEFAULT_FROM_EMAIL's."""
    _, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    _, at, domain = address.rpartition("@")
    return f"<{notification_id}@{domain if at and domain else 'localhost'}>"


def customer_email(customer_id: str) -> str:
    """The email address of the customer: their user account's (customer id = user pk).

    Raises NotificationUndeliverable when there is no such account or it has no address.
    """
    user_model = get_user_model()
    try:
        user = rows.in_bulk(user_model, [customer_id])
    except (ValueError, TypeError, ValidationError):  # not even a possible primary key
        user = {}
    if not user:
        raise NotificationUndeliverable(f"Customer {customer_id!r} has no user account")
    [account] = user.values()
    address = (getattr(account, user_model.get_email_field_name()) or "").strip()
    if not address:
        raise NotificationUndeliverable(f"Customer {customer_id!r} has no email address")
    return address


def notification_deliver(
    *, notification_id: str, attempt: int, metadata: Metadata = None
) -> Notification:
    """Email a recorded notification to its customer and record `NotificationDelivered`; a
    delivered notification is not sent again. Must run with no transaction open.

    Raises NotificationUndeliverable (no account, no address: retrying cannot help) and
    whatever the email backend raises (a retry may help); neither records anything.
    """
    notification = notifications.load(notification_id)
    if notification.is_delivered:
        return notification
    message_id = message_id_for(notification.id)
    email = EmailMessage(
        subject=notification.subject,
        body=notification.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[customer_email(notification.customer_id)],
        headers={"Message-ID": message_id},
    )
    require_no_transaction("Sending an email")
    with tracing.span(
        "notifications.email.send",
        {"notifications.notification_id": notification.id, "notifications.attempt": attempt},
        kind=SpanKind.CLIENT,
    ):
        sent = email.send(fail_silently=False)
    if not sent:
        raise EmailNotAccepted(f"The email backend sent no message for {notification.id!r}")
    notification.delivered(message_id=message_id, attempt=attempt)
    try:
        notifications.save(notification, metadata=metadata)
    except ConcurrencyError:
        # The stream moved while the email went out (a late failure record of an attempt whose
        # lease ran out, or this very delivery recorded by another worker): record the
        # delivery on the fresh state, unless it is there already.
        return _delivery_recorded(
            notification_id=notification.id,
            message_id=message_id,
            attempt=attempt,
            metadata=metadata,
        )
    return notification


@retry_on_conflict
def _delivery_recorded(
    *, notification_id: str, message_id: str, attempt: int, metadata: Metadata
) -> Notification:
    """Record the delivery of an email that went out, on the notification as it now stands."""
    with unit_of_work():
        notification = notifications.load(notification_id)
        if not notification.is_delivered:
            notification.delivered(message_id=message_id, attempt=attempt)
            notifications.save(notification, metadata=metadata)
    return notification


@retry_on_conflict
def notification_delivery_failed(
    *,
    notification_id: str,
    attempt: int,
    error: BaseException,
    parked: bool,
    metadata: Metadata = None,
) -> Notification:
    """Record a failed delivery attempt (`parked`: no automatic attempt follows, staff must
    check); nothing when the notification was delivered meanwhile."""
    with unit_of_work():
        notification = notifications.load(notification_id)
        if notification.is_delivered:
            return notification
        notification.delivery_failed(
            attempt=attempt, error=f"{type(error).__name__}: {error}", parked=parked
        )
        notifications.save(notification, metadata=metadata)
    return notification


# --- Web Push -------------------------------------------------------------------------------

push_subscriptions: Repository[PushSubscription] = Repository(PushSubscription)

# Where a push's click leads: the order in the API (relative to the site that served the page).
ORDER_URL = "/api/orders/{order_id}/"


class PushSubscriptionTaken(NotificationError):
    """The endpoint is subscribed by another customer (a browser shared between accounts must
    unsubscribe first)."""


class PushEndpointRefused(NotificationError):
    """An endpoint pushes may not go to (not a URL, or a private, loopback or link-local
    address)."""


class PushKeysRefused(NotificationError):
    """Keys of the right size that are no P-256 public key."""


class PushSubscriptionNotFound(NotificationError):
    """No live push subscription of that id for that customer."""


def push_subscription_id(endpoint: str) -> str:
    """The subscription id of an endpoint: the same for every registration of it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, endpoint))


@retry_on_conflict
def push_subscription_add(
    *,
    customer_id: str,
    endpoint: str,
    p256dh: str,
    auth: str,
    expiration_time: int | None = None,
    metadata: Metadata = None,
) -> tuple[PushSubscription, bool]:
    """Record a browser's push subscription for the customer; (subscription, created). An
    endpoint the customer subscribed already answers that subscription, recording nothing.

    Raises PushEndpointRefused, PushKeysRefused, PushSubscriptionTaken (nothing recorded).
    """
    try:
        webpush.check_registered_endpoint(endpoint)
    except webpush.BadEndpoint as error:
        raise PushEndpointRefused(str(error)) from error
    try:
        webpush.check_p256dh(p256dh)
        webpush.check_auth(auth)
    except ValueError as error:
        raise PushKeysRefused("p256dh must be an uncompressed P-256 public key.") from error
    with unit_of_work():
        subscription = push_subscriptions.load_or_new(push_subscription_id(endpoint))
        if subscription.active:
            if subscription.customer_id != customer_id:
                raise PushSubscriptionTaken("This endpoint is subscribed by another customer.")
            return subscription, False
        subscription.add(
            customer_id=customer_id,
            endpoint=endpoint,
            p256dh=p256dh,
            auth=auth,
            expiration_time=expiration_time,
        )
        push_subscriptions.save(subscription, metadata=metadata)
        forget_push_answer(customer_id)
    return subscription, True


@retry_on_conflict
def push_subscription_remove(
    *, subscription_id: str, reason: str, customer_id: str | None = None, metadata: Metadata = None
) -> PushSubscription:
    """End a live subscription (`reason`: "unsubscribed" or "gone"); with `customer_id`, only
    that customer's. Raises PushSubscriptionNotFound when there is no such live subscription."""
    with unit_of_work():
        subscription = push_subscriptions.load_or_new(subscription_id)
        if not subscription.active or customer_id not in (None, subscription.customer_id):
            raise PushSubscriptionNotFound(f"No push subscription {subscription_id!r}.")
        subscription.remove(reason=reason)
        push_subscriptions.save(subscription, metadata=metadata)
        forget_push_answer(subscription.customer_id)
    return subscription


def live_push_subscriptions(customer_id: str):
    """The customer's push subscriptions that pushes go to."""
    return PushSubscriptionRow.objects.filter(
        customer_id=customer_id, status=PushSubscriptionRow.Status.ACTIVE
    ).order_by("created_at", "subscription_id")


# Whether a customer has a live push subscription is asked of every notification, at its append
# and again as its calls are made: this process remembers each answer for PUSH_ANSWER_SECONDS,
# so one order's notifications ask the database at most once. A subscription added or ended in
# this process forgets its customer's answer at once. One added in another process may be missed
# for that long by the check at append; the push subscriber's catch-up (which asks afresh, once
# per batch) then owes the push, a few seconds later (EVENTSTORE_FOLLOW_WAIT, the sweep).
PUSH_ANSWER_SECONDS = 60.0
PUSH_ANSWERS_KEPT = 10_000
_push_answers: dict[str, tuple[bool, float]] = {}


def has_live_push_subscription(customer_id: str) -> bool:
    """Whether the customer has a live push subscription, as this process last saw it (at most
    PUSH_ANSWER_SECONDS ago)."""
    now = time.monotonic()
    remembered = _push_answers.get(customer_id)
    if remembered is not None and remembered[1] > now:
        return remembered[0]
    return bool(customers_with_live_push([customer_id]))


def customers_with_live_push(customer_ids: Iterable[str]) -> set[str]:
    """Which of the customers have a live push subscription, asked of the database (one
    statement); the answers are remembered for `has_live_push_subscription`."""
    customer_ids = set(customer_ids)
    if not customer_ids:
        return set()
    live = set(
        PushSubscriptionRow.objects.filter(
            customer_id__in=customer_ids, status=PushSubscriptionRow.Status.ACTIVE
        )
        .values_list("customer_id", flat=True)
        .distinct()
    )
    if len(_push_answers) + len(customer_ids) > PUSH_ANSWERS_KEPT:
        _push_answers.clear()
    until = time.monotonic() + PUSH_ANSWER_SECONDS
    _push_answers.update((customer, (customer in live, until)) for customer in customer_ids)
    return live


def forget_push_answer(customer_id: str) -> None:
    """Forget what `has_live_push_subscription` remembers of the customer: now, and once the
    current transaction commits (an answer read meanwhile, before the change was visible, would
    otherwise be kept)."""
    _push_answers.pop(customer_id, None)
    transaction.on_commit(lambda: _push_answers.pop(customer_id, None))


def forget_push_answers() -> None:
    """Forget every remembered answer (tests)."""
    _push_answers.clear()


# A push's body stays within Web Push's size limit whatever the message (webpush.payload_bytes);
# the email carries the whole text.
PUSH_BODY_MAX_BYTES = 1500


def _shortened(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8 (at a character boundary), marked with "…"."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - 3].decode(errors="ignore") + "…"


def push_payload(notification: Notification) -> dict[str, Any]:
    """What a push carries: small JSON for the service worker to show (title, body, order)."""
    order_id = notification.order_id
    return {
        "notification_id": notification.id,
        "title": notification.subject,
        "body": _shortened(notification.message, PUSH_BODY_MAX_BYTES),
        "order_id": order_id,
        "url": ORDER_URL.format(order_id=order_id) if order_id else "",
    }


def notification_push(
    *, notification_id: str, attempt: int, metadata: Metadata = None
) -> Notification:
    """Push a recorded notification to each live push subscription of its customer it has not
    reached yet, recording `NotificationPushed` after each accepted push; a subscription the
    push service reports gone is ended and skipped. Must run with no transaction open.

    Raises, after trying every subscription: PushRetryLater when one may succeed later (the
    longest Retry-After among them), else PushRejected; nothing is recorded for those.
    """
    notification = notifications.load(notification_id)
    payload = push_payload(notification)
    retry: webpush.PushRetryLater | None = None
    rejected: Exception | None = None
    for subscription in live_push_subscriptions(notification.customer_id):
        if subscription.subscription_id in notification.pushed_to:
            continue
        require_no_transaction("Sending a push")
        try:
            with tracing.span(
                "notifications.push.send",
                {
                    "notifications.notification_id": notification.id,
                    "notifications.attempt": attempt,
                },
                kind=SpanKind.CLIENT,
            ):
                webpush.push_send(
                    endpoint=subscription.endpoint,
                    p256dh=subscription.p256dh,
                    auth=subscription.auth,
                    payload=payload,
                    topic=webpush.topic_for(notification.id, subscription.subscription_id),
                )
        except webpush.PushSubscriptionGone:
            _push_subscription_gone(subscription.subscription_id, metadata)
            continue
        except webpush.PushRetryLater as error:
            if retry is None or (error.retry_after or timedelta(0)) > (
                retry.retry_after or timedelta(0)
            ):
                retry = error
            continue
        except (webpush.PushRejected, webpush.BadEndpoint) as error:
            rejected = error
            continue
        notification = _push_recorded(
            notification_id=notification.id,
            subscription_id=subscription.subscription_id,
            attempt=attempt,
            metadata=metadata,
        )
    if retry is not None:
        raise retry
    if rejected is not None:
        raise rejected
    return notification


def _push_subscription_gone(subscription_id: str, metadata: Metadata) -> None:
    with contextlib.suppress(PushSubscriptionNotFound):  # ended meanwhile
        push_subscription_remove(subscription_id=subscription_id, reason="gone", metadata=metadata)


@retry_on_conflict
def _push_recorded(
    *, notification_id: str, subscription_id: str, attempt: int, metadata: Metadata
) -> Notification:
    """Record that a push service accepted the notification for a subscription, unless it is
    recorded already."""
    with unit_of_work():
        notification = notifications.load(notification_id)
        if subscription_id not in notification.pushed_to:
            notification.pushed(subscription_id=subscription_id, attempt=attempt)
            notifications.save(notification, metadata=metadata)
    return notification


@retry_on_conflict
def notification_push_failed(
    *,
    notification_id: str,
    attempt: int,
    error: BaseException,
    parked: bool,
    metadata: Metadata = None,
) -> Notification:
    """Record a failed push attempt (`parked`: no automatic attempt follows)."""
    with unit_of_work():
        notification = notifications.load(notification_id)
        notification.push_failed(
            attempt=attempt, error=f"{type(error).__name__}: {error}", parked=parked
        )
        notifications.save(notification, metadata=metadata)
    return notification
