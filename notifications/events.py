"""Notifications' event types and payloads: its public contract (ARCHITECTURE.md, event catalog)."""

from typing import Any, NotRequired, TypedDict

NOTIFICATION = "notification"  # aggregate type (stream name)
ORDER = "order"  # orders' aggregate type, whose OrderCreated names the order's customer

# Emitted on a notification's stream.
# Recorded, to be delivered (the name predates real delivery and stays for the stored log).
NOTIFICATION_SENT = "NotificationSent"
# The email went to the customer's address (once per notification).
NOTIFICATION_DELIVERED = "NotificationDelivered"
# One delivery attempt failed; `parked`: no further automatic attempt.
NOTIFICATION_DELIVERY_FAILED = "NotificationDeliveryFailed"

# Consumed: which customer each order belongs to (OrderOwner), and the order's outcomes, each
# told to the customer once.
ORDER_CREATED = "OrderCreated"
ORDER_CONFIRMED = "OrderConfirmed"
ORDER_COMPLETED = "OrderCompleted"
ORDER_CANCELLED = "OrderCancelled"


def type_in_words(type: str) -> str:
    """A notification type as a reader would write it: "order_confirmed" -> "Order confirmed"."""
    return type.replace("_", " ").strip().capitalize()


def notification_sent_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Upcaster of NotificationSent 1 -> 2. Version 1 was handed to the configured sender in the
    commit that recorded it: it is delivered already. Its email reads as the type in words over
    the message."""
    return {
        **payload,
        "subject": type_in_words(payload["type"]),
        "body": payload["message"],
        "delivered_when_recorded": True,
    }


class NotificationSentPayload(TypedDict):
    notification_id: str
    customer_id: str
    order_id: str  # "" for a notification about no order
    type: str  # order_confirmed, order_completed, order_cancelled, or a staff-chosen type
    channel: str  # "email"
    message: str  # the short text the API shows
    # The email, rendered when the notification is recorded so every attempt sends the same
    # text (schema version 2).
    subject: str
    body: str
    # Only on events stored at schema version 1, before delivery was real: the sender of the
    # time (NOTIFICATIONS_SENDER) had the message when it was recorded, so it counts as
    # delivered and is never emailed again (see `notification_sent_v1_to_v2`).
    delivered_when_recorded: NotRequired[bool]


class NotificationDeliveredPayload(TypedDict):
    notification_id: str
    message_id: str  # the email's Message-ID header (the address is not stored in the log)
    attempt: int  # the call that succeeded, counted since the delivery was last (re)started


class NotificationDeliveryFailedPayload(TypedDict):
    notification_id: str
    attempt: int
    error: str  # "<exception type>: <message>", trimmed
    parked: bool  # no more automatic attempts until staff retry it


class OrderItem(TypedDict):
    product_id: str
    quantity: int
    unit_price: str | None  # None until inventory priced the line


class OrderCreatedPayload(TypedDict):
    """The fields notifications reads from OrderCreated."""

    order_id: str
    customer_id: str


class OrderOutcomePayload(TypedDict, total=False):
    """The fields notifications reads from OrderConfirmed, OrderCompleted and OrderCancelled.
    Events stored before `items` was added have none."""

    order_id: str
    customer_id: str
    items: list[OrderItem]
    total_amount: str | None  # None on a cancelled order that was never priced
    reason: str  # OrderCancelled
