"""Notifications' event types: its public contract, with their payloads in docs/EVENTS.md."""

from typing import Any

NOTIFICATION = "notification"  # aggregate type (stream name)
ORDER = "order"  # orders' aggregate type, whose OrderCreated names the order's customer

# Emitted on a notification's stream.
# Recorded, to be delivered (the name predates real delivery and stays for the stored log).
NOTIFICATION_SENT = "NotificationSent"
# The email went to the customer's address (once per notification).
NOTIFICATION_DELIVERED = "NotificationDelivered"
# One delivery attempt failed; `parked`: no further automatic attempt.
NOTIFICATION_DELIVERY_FAILED = "NotificationDeliveryFailed"

# A push notification went to one of the customer's browsers (once per notification and
# subscription); a failed push attempt (`parked`: no further automatic attempt).
NOTIFICATION_PUSHED = "NotificationPushed"
NOTIFICATION_PUSH_FAILED = "NotificationPushFailed"

PUSH_SUBSCRIPTION = "push_subscription"  # aggregate type: one browser's Web Push subscription
# Emitted on a push subscription's stream: a customer's browser subscribed; the subscription
# ended (`reason`: "unsubscribed" by the customer, or "gone" when the push service said so).
PUSH_SUBSCRIPTION_ADDED = "PushSubscriptionAdded"
PUSH_SUBSCRIPTION_REMOVED = "PushSubscriptionRemoved"

# Consumed: which customer each order belongs to (OrderOwner), and the order's outcomes, each
# told to the customer once.
ORDER_CREATED = "OrderCreated"
ORDER_CONFIRMED = "OrderConfirmed"
ORDER_COMPLETED = "OrderCompleted"
ORDER_CANCELLED = "OrderCancelled"
# A completed order cancelled: its payment refunded and its units back in stock.
ORDER_REFUNDED = "OrderRefunded"


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
