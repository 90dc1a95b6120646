"""Notifications' read-model updater, run inline in the appending transaction."""

from eventstore import rows
from eventstore.projections import Projection
from eventstore.store import RecordedEvent
from notifications import events
from notifications.models import SentNotification


class SentNotificationProjection(Projection):
    """One SentNotification row per notification sent."""

    name = "notifications.sent"
    models = (SentNotification,)
    event_types = frozenset({events.NOTIFICATION_SENT})

    def apply(self, event: RecordedEvent) -> None:
        payload = event.payload
        rows.insert(
            SentNotification,
            notification_id=event.aggregate_id,
            customer_id=payload["customer_id"],
            order_id=payload["order_id"],
            type=payload["type"],
            channel=payload["channel"],
            message=payload["message"],
            sent_at=event.recorded_at,
            position=event.position,
        )
