"""Notifications' read-model updaters, run inline in the appending transaction."""

from collections.abc import Iterable
from typing import Any

from eventstore import rows
from eventstore.projections import Projection
from eventstore.store import RecordedEvent
from notifications import events
from notifications.aggregates import Delivery
from notifications.models import OrderOwner, SentNotification


def _delivery_of(row: dict[str, Any]) -> Delivery:
    return Delivery(
        status=row["delivery_status"],
        attempts=row["delivery_attempts"],
        error=row["delivery_error"],
    )


class SentNotificationProjection(Projection):
    """One SentNotification row per notification recorded, with its delivery as the log tells
    it (the aggregate's own rule, `Delivery.after`)."""

    name = "notifications.sent"
    models = (SentNotification,)
    event_types = frozenset(
        {
            events.NOTIFICATION_SENT,
            events.NOTIFICATION_DELIVERED,
            events.NOTIFICATION_DELIVERY_FAILED,
        }
    )

    def apply(self, event: RecordedEvent) -> None:
        self.apply_batch([event])

    def apply_batch(self, batch: Iterable[RecordedEvent]) -> None:
        """One write per notification per batch (a rebuild meets a notification's recording
        and its delivery in one batch)."""
        handled = [event for event in batch if self.handles(event)]
        recorded = {e.aggregate_id for e in handled if e.event_type == events.NOTIFICATION_SENT}
        stored = rows.in_bulk(
            SentNotification, {e.aggregate_id for e in handled if e.aggregate_id not in recorded}
        )
        writes = rows.RowBatch(SentNotification)
        current = {
            notification_id: {
                "delivery_status": row.delivery_status,
                "delivery_attempts": row.delivery_attempts,
                "delivery_error": row.delivery_error,
            }
            for notification_id, row in stored.items()
        }
        for event in handled:
            notification_id = event.aggregate_id
            if event.event_type == events.NOTIFICATION_SENT:
                current[notification_id] = self._recorded(event)
                writes.insert(notification_id, dict(current[notification_id]))
                continue
            row = current.get(notification_id)
            if row is None:  # pragma: no cover - a delivery always follows its recording
                continue
            delivery = _delivery_of(row).after(event.event_type, event.payload)
            changes = {
                "delivery_status": delivery.status,
                "delivery_attempts": delivery.attempts,
                "delivery_error": delivery.error,
            }
            if event.event_type == events.NOTIFICATION_DELIVERED:
                changes["delivered_at"] = event.recorded_at
            row.update(changes)  # the next event's delivery starts from it
            writes.change(notification_id, changes)
        writes.flush()

    @staticmethod
    def _recorded(event: RecordedEvent) -> dict[str, Any]:
        payload = event.payload
        delivery = Delivery().after(event.event_type, payload)
        return {
            "notification_id": event.aggregate_id,
            "customer_id": payload["customer_id"],
            "order_id": payload["order_id"],
            "type": payload["type"],
            "channel": payload["channel"],
            "message": payload["message"],
            "sent_at": event.recorded_at,
            "position": event.position,
            "delivery_status": delivery.status,
            "delivery_attempts": delivery.attempts,
            "delivered_at": event.recorded_at if delivery.status == Delivery.DELIVERED else None,
            "delivery_error": "",
        }


class OrderOwnerProjection(Projection):
    """The customer of every order, from orders' OrderCreated events."""

    name = "notifications.order_owners"
    models = (OrderOwner,)
    event_types = frozenset({events.ORDER_CREATED})

    def handles(self, event: RecordedEvent) -> bool:
        return event.aggregate_type == events.ORDER and super().handles(event)

    def apply(self, event: RecordedEvent) -> None:
        OrderOwner.objects.update_or_create(
            order_id=event.aggregate_id,
            defaults={
                "customer_id": str(event.payload["customer_id"]),
                "created_at": event.recorded_at,
            },
        )
