"""Notification: one message to a customer, sent once, rebuilt only from events."""

from __future__ import annotations

from typing import Any

from eventstore.aggregates import Aggregate, applies
from notifications import events


class NotificationError(Exception):
    """A command the notifications service refuses; nothing was written."""


class Notification(Aggregate):
    """A message on one channel to one customer, possibly about one order."""

    aggregate_type = events.NOTIFICATION

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.sent = False
        self.customer_id = ""
        self.order_id = ""
        self.type = ""
        self.channel = ""
        self.message = ""

    def send(
        self, *, customer_id: str, order_id: str, type: str, channel: str, message: str
    ) -> None:
        """Record the message as sent; a notification is sent only once."""
        if self.sent:
            raise NotificationError(f"Notification {self.id!r} was sent already")
        if not customer_id or not type or not message:
            raise NotificationError("customer_id, type and message are required")
        self.record(
            events.NOTIFICATION_SENT,
            {
                "notification_id": self.id,
                "customer_id": customer_id,
                "order_id": order_id,
                "type": type,
                "channel": channel,
                "message": message,
            },
        )

    @applies(events.NOTIFICATION_SENT)
    def _sent(self, payload: dict[str, Any]) -> None:
        self.sent = True
        self.customer_id = payload["customer_id"]
        self.order_id = payload["order_id"]
        self.type = payload["type"]
        self.channel = payload["channel"]
        self.message = payload["message"]
