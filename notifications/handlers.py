"""Notifications' reactions: the order's outcomes are recorded as notifications, and every
recorded notification is emailed and pushed to the customer's browsers (at least once, with no
transaction open: eventstore.follower.effects)."""

from eventstore.api import EffectSubscriber, RecordedEvent, Subscriber, owe_calls
from notifications import events, webpush
from notifications.aggregates import NotificationUndeliverable
from notifications.services import (
    customers_with_live_push,
    has_live_push_subscription,
    notification_deliver,
    notification_delivery_failed,
    notification_push,
    notification_push_failed,
    order_notify,
)

ACTOR = "service:notifications"


class OrderOutcomeNotifier(Subscriber):
    """Tells the customer when their order is confirmed, completed, cancelled or refunded."""

    name = "notifications.orders"
    event_types = frozenset(
        {
            events.ORDER_CONFIRMED,
            events.ORDER_COMPLETED,
            events.ORDER_CANCELLED,
            events.ORDER_REFUNDED,
        }
    )

    def handle(self, event: RecordedEvent) -> None:
        order_notify(
            event_type=event.event_type,
            payload=event.payload,
            metadata=event.caused_metadata(ACTOR),
        )


class NotificationDeliverer(EffectSubscriber):
    """Emails each recorded notification to its customer after the record commits.

    At least once: a failing mail server is tried again with backoff, then the delivery is
    parked (delivery status `failed`); a crash after sending sends the same email again, under
    the same Message-ID. Once `NotificationDelivered` is recorded nothing is sent again. A
    customer without an account or an email address is parked at once.
    """

    name = "notifications.delivery"
    event_types = frozenset({events.NOTIFICATION_SENT})
    permanent_errors = (NotificationUndeliverable,)

    def owes(self, event: RecordedEvent) -> bool:
        # Recorded before delivery was real: the sender of the time had it already.
        return super().owes(event) and not event.payload.get("delivered_when_recorded")

    def perform(self, event: RecordedEvent, *, attempt: int) -> None:
        notification_deliver(
            notification_id=event.aggregate_id,
            attempt=attempt,
            metadata=event.caused_metadata(ACTOR),
        )

    def failed(self, event: RecordedEvent, *, error: Exception, attempt: int, parked: bool) -> None:
        notification_delivery_failed(
            notification_id=event.aggregate_id,
            attempt=attempt,
            error=error,
            parked=parked,
            metadata=event.caused_metadata(ACTOR),
        )


class NotificationPusher(EffectSubscriber):
    """Pushes each recorded notification to its customer's browsers (Web Push) after the record
    commits, beside the email.

    Owed only while push is configured and the customer has a live subscription. Each
    subscription is pushed once: `NotificationPushed` is recorded after each accepted push and a
    retry skips the subscriptions it reached; a crash before that record pushes again under the
    same Topic, which replaces the undelivered copy. 429 and 5xx are retried (after the push
    service's Retry-After when longer than the backoff), any other refusal parks at once.
    """

    name = "notifications.push"
    event_types = frozenset({events.NOTIFICATION_SENT})
    permanent_errors = (webpush.PushRejected, webpush.BadEndpoint, webpush.PushNotConfigured)

    def owes(self, event: RecordedEvent) -> bool:
        return self._may_owe(event) and has_live_push_subscription(
            str(event.payload["customer_id"])
        )

    def handle_batch(self, events: list[RecordedEvent]) -> None:
        # The catch-up, a safety net: it asks the database afresh, once for the whole batch, so
        # a subscription the check at append missed (made in another process a moment before)
        # still gets its push.
        candidates = [event for event in events if self._may_owe(event)]
        live = customers_with_live_push(str(event.payload["customer_id"]) for event in candidates)
        owe_calls([(self, e) for e in candidates if str(e.payload["customer_id"]) in live])

    def _may_owe(self, event: RecordedEvent) -> bool:
        """Whether `event` is a notification that may be pushed, whoever its customer."""
        return (
            super().owes(event)
            and not event.payload.get("delivered_when_recorded")
            and webpush.push_configured()
        )

    def perform(self, event: RecordedEvent, *, attempt: int) -> None:
        notification_push(
            notification_id=event.aggregate_id,
            attempt=attempt,
            metadata=event.caused_metadata(ACTOR),
        )

    def failed(self, event: RecordedEvent, *, error: Exception, attempt: int, parked: bool) -> None:
        notification_push_failed(
            notification_id=event.aggregate_id,
            attempt=attempt,
            error=error,
            parked=parked,
            metadata=event.caused_metadata(ACTOR),
        )
