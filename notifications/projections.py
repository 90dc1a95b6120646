"""Notifications' read-model updaters, run inline in the appending transaction."""

from collections.abc import Iterable
from typing import Any

from eventstore.api import Projection, RecordedEvent, rows
from notifications import events
from notifications.aggregates import Delivery, PushDelivery
from notifications.models import OrderOwner, PushSubscription, SentNotification

PUSH_EVENTS = frozenset({events.NOTIFICATION_PUSHED, events.NOTIFICATION_PUSH_FAILED})


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
            events.NOTIFICATION_PUSHED,
            events.NOTIFICATION_PUSH_FAILED,
        }
    )

    def apply(self, event: RecordedEvent) -> None:
        self.apply_batch([event])

    def apply_batch(self, batch: Iterable[RecordedEvent]) -> None:
        """One write per notification per batch (a rebuild meets a notification's recording
        and its delivery in one batch). A delivery event's change is the aggregate's rule from
        a blank delivery: its status and error replace the row's, its attempts add to them, so
        a stored row is changed without being read first."""
        writes = rows.RowBatch(SentNotification)
        for event in batch:
            if not self.handles(event):
                continue
            notification_id = event.aggregate_id
            if event.event_type == events.NOTIFICATION_SENT:
                writes.insert(notification_id, self._recorded(event))
                continue
            if event.event_type in PUSH_EVENTS:
                push = PushDelivery().after(event.event_type, event.payload)
                writes.change(
                    notification_id,
                    {"push_status": push.status, "push_error": push.error},
                    add={"push_attempts": push.attempts, "pushed": push.pushed},
                )
                continue
            step = Delivery().after(event.event_type, event.payload)
            changes = {"delivery_status": step.status, "delivery_error": step.error}
            if event.event_type == events.NOTIFICATION_DELIVERED:
                changes["delivered_at"] = event.recorded_at
            writes.change(notification_id, changes, add={"delivery_attempts": step.attempts})
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
            "push_status": PushDelivery.NONE,
            "push_attempts": 0,
            "pushed": 0,
            "push_error": "",
        }


class OrderOwnerProjection(Projection):
    """The customer of every order, from orders' OrderCreated events."""

    name = "notifications.order_owners"
    models = (OrderOwner,)
    aggregate_type = events.ORDER
    event_types = frozenset({events.ORDER_CREATED})

    def apply(self, event: RecordedEvent) -> None:
        rows.upsert(
            OrderOwner,
            order_id=event.aggregate_id,
            customer_id=str(event.payload["customer_id"]),
            created_at=event.recorded_at,
        )


class PushSubscriptionProjection(Projection):
    """One PushSubscription row per subscribed endpoint, with whether it is still live."""

    name = "notifications.push_subscriptions"
    models = (PushSubscription,)
    event_types = frozenset({events.PUSH_SUBSCRIPTION_ADDED, events.PUSH_SUBSCRIPTION_REMOVED})

    def apply(self, event: RecordedEvent) -> None:
        payload = event.payload
        if event.event_type == events.PUSH_SUBSCRIPTION_ADDED:
            rows.upsert(
                PushSubscription,
                subscription_id=event.aggregate_id,
                customer_id=payload["customer_id"],
                endpoint=payload["endpoint"],
                p256dh=payload["p256dh"],
                auth=payload["auth"],
                expiration_time=payload.get("expiration_time"),
                status=PushSubscription.Status.ACTIVE,
                created_at=event.recorded_at,
                removed_at=None,
            )
            return
        rows.update(
            PushSubscription,
            event.aggregate_id,
            status=payload["reason"],
            removed_at=event.recorded_at,
        )
