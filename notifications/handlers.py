"""Notifications' reactions to the order's outcomes."""

from eventstore.store import RecordedEvent
from eventstore.subscriptions import Subscriber
from notifications import events
from notifications.services import order_notify

ACTOR = "service:notifications"


class OrderOutcomeNotifier(Subscriber):
    """Tells the customer when their order is confirmed, completed or cancelled."""

    name = "notifications.orders"
    event_types = frozenset(
        {events.ORDER_CONFIRMED, events.ORDER_COMPLETED, events.ORDER_CANCELLED}
    )

    def handle(self, event: RecordedEvent) -> None:
        order_notify(
            event_type=event.event_type,
            payload=event.payload,
            metadata=event.caused_metadata(ACTOR),
        )
