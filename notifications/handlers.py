"""Notifications' reactions: the order's outcomes are recorded as notifications, and every
recorded notification is emailed (at least once, with no transaction open: eventstore.effects)."""

from eventstore.effects import EffectSubscriber
from eventstore.store import RecordedEvent
from eventstore.subscriptions import Subscriber
from notifications import events
from notifications.aggregates import NotificationUndeliverable
from notifications.services import (
    notification_deliver,
    notification_delivery_failed,
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
