"""Notifications' event types and payloads: its public contract (ARCHITECTURE.md, event catalog)."""

from typing import TypedDict

NOTIFICATION = "notification"  # aggregate type (stream name)

# Emitted on a notification's stream.
NOTIFICATION_SENT = "NotificationSent"

# Consumed: the order's outcomes, each told to the customer once.
ORDER_CONFIRMED = "OrderConfirmed"
ORDER_COMPLETED = "OrderCompleted"
ORDER_CANCELLED = "OrderCancelled"


class NotificationSentPayload(TypedDict):
    notification_id: str
    customer_id: str
    order_id: str  # "" for a notification about no order
    type: str  # order_confirmed, order_completed, order_cancelled, or a staff-chosen type
    channel: str  # "email"
    message: str


class OrderOutcomePayload(TypedDict, total=False):
    """The fields notifications reads from OrderConfirmed, OrderCompleted and OrderCancelled."""

    order_id: str
    customer_id: str
    total_amount: str  # OrderConfirmed
    reason: str  # OrderCancelled
