"""Notifications' command handlers: record a notification once, then hand it to the sender.

The sender runs after the recording transaction commits, so a rolled-back notification is
never delivered; a notification id seen before is not recorded or delivered again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import partial
from typing import Any

from django.db import transaction

from eventstore.aggregates import Repository, derived_event_id, retry_on_conflict
from notifications import events
from notifications.aggregates import Notification, NotificationError
from notifications.sender import get_sender

notifications: Repository[Notification] = Repository(Notification)

Metadata = Mapping[str, Any] | None

# The notification type and message for each order outcome.
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
}


@retry_on_conflict
def notification_send(
    *,
    customer_id: str,
    type: str,
    message: str,
    order_id: str = "",
    notification_id: str | None = None,
    metadata: Metadata = None,
) -> Notification:
    """Record and send one notification by email; a repeat of `notification_id` does nothing."""
    sender = get_sender()
    with transaction.atomic():
        notification = notifications.load_or_new(notification_id or str(uuid.uuid4()))
        if notification.sent:
            return notification
        notification.send(
            customer_id=customer_id,
            order_id=order_id,
            type=type,
            channel=sender.channel,
            message=message,
        )
        notifications.save(notification, metadata=metadata)
        transaction.on_commit(
            partial(
                sender.send,
                notification_id=notification.id,
                customer_id=customer_id,
                message=message,
            ),
            # A failed delivery is logged and does not stop other callbacks of the same commit.
            robust=True,
        )
    return notification


def order_notify(
    *, event_type: str, payload: Mapping[str, Any], metadata: Metadata = None
) -> Notification:
    """Tell the customer their order was confirmed, completed or cancelled: once per order and
    outcome, however often the order's event is delivered."""
    if event_type not in ORDER_OUTCOMES:
        raise NotificationError(f"No notification for {event_type}")
    kind, template = ORDER_OUTCOMES[event_type]
    order_id = str(payload["order_id"])
    message = template.format(
        order_id=order_id,
        total_amount=payload.get("total_amount", "see your order"),
        reason=str(payload.get("reason") or "no reason given").replace("_", " "),
    )
    return notification_send(
        customer_id=str(payload["customer_id"]),
        type=kind,
        message=message,
        order_id=order_id,
        notification_id=str(derived_event_id(events.NOTIFICATION, order_id, kind)),
        metadata=metadata,
    )
