"""Public event types (the versioned schema receivers see, docs/WEBHOOKS.md) and the internal
events they are made from, read by type name: no service is imported."""

from __future__ import annotations

from typing import Any

from eventstore.api import RecordedEvent
from httpapi.representations import represent

SCHEMA_VERSION = "2026-12-01"

# The webhooks app's own stream and events (docs/EVENTS.md): an endpoint is an aggregate, its
# table a projection. Its signing secrets are kept in the vault (kind SECRET_KIND); events
# carry their references only.
ENDPOINT = "webhook_endpoint"
WEBHOOK_ENDPOINT_REGISTERED = "WebhookEndpointRegistered"
WEBHOOK_ENDPOINT_CHANGED = "WebhookEndpointChanged"
WEBHOOK_SECRET_ROTATED = "WebhookSecretRotated"
WEBHOOK_ENDPOINT_DISABLED = "WebhookEndpointDisabled"
WEBHOOK_ENDPOINT_ENABLED = "WebhookEndpointEnabled"
WEBHOOK_ENDPOINT_DELETED = "WebhookEndpointDeleted"
ENDPOINT_EVENT_TYPES = frozenset(
    {
        WEBHOOK_ENDPOINT_REGISTERED,
        WEBHOOK_ENDPOINT_CHANGED,
        WEBHOOK_SECRET_ROTATED,
        WEBHOOK_ENDPOINT_DISABLED,
        WEBHOOK_ENDPOINT_ENABLED,
        WEBHOOK_ENDPOINT_DELETED,
    }
)
SECRET_KIND = "webhook_secret"

# Why an endpoint was disabled (`cause` of WebhookEndpointDisabled).
DISABLED_GONE = "gone"  # it answered 410
DISABLED_FAILING = "failing"  # no success for WEBHOOKS_DISABLE_AFTER
DISABLED_BY_STAFF = "staff"
DISABLED_CAUSES = (DISABLED_GONE, DISABLED_FAILING, DISABLED_BY_STAFF)

# Internal event type -> public event type.
PUBLIC_TYPES = {
    "OrderCreated": "order.created",
    "OrderCompleted": "order.completed",
    "OrderCancelled": "order.cancelled",
    "OrderRefunded": "order.refunded",
    "PaymentRefunded": "payment.refunded",
    "InventoryReservationFailed": "stock.shortage",
}
PUBLIC_EVENT_TYPES = sorted(PUBLIC_TYPES.values())


def public_type(event: RecordedEvent) -> str | None:
    """The public type of `event`, None when it is not public (a stock reservation that failed
    for an unknown product is no shortage)."""
    if (
        event.event_type == "InventoryReservationFailed"
        and event.payload.get("reason") != "insufficient_stock"
    ):
        return None
    return PUBLIC_TYPES.get(event.event_type)


def public_data(event: RecordedEvent) -> dict[str, Any]:
    """The `data` of the public event: the API's representation where there is one."""
    payload = event.payload
    kind = public_type(event)
    if kind is not None and kind.startswith("order."):
        order = represent("order", str(payload.get("order_id") or event.aggregate_id))
        data = order or {
            "order_id": payload.get("order_id"),
            "customer_id": payload.get("customer_id"),
            "items": payload.get("items", []),
            "total_amount": payload.get("total_amount"),
        }
        if kind in ("order.cancelled", "order.refunded"):
            data = {**data, "reason": payload.get("reason", "")}
        return data
    if kind == "payment.refunded":
        return {
            "payment_id": payload.get("payment_id"),
            "order_id": event.correlation_id,
            "amount": payload.get("amount"),
        }
    if kind == "stock.shortage":
        return {
            "order_id": event.correlation_id,
            "products": [
                {
                    "product_id": line.get("product_id"),
                    "requested": line.get("requested"),
                    "available": line.get("available"),
                    "missing": max(
                        0, int(line.get("requested", 0)) - int(line.get("available", 0))
                    ),
                }
                for line in payload.get("details", [])
            ],
        }
    return dict(payload)


def public_payload(event: RecordedEvent) -> dict[str, Any]:
    """`{"type", "timestamp", "data"}` for a public event."""
    return {
        "type": public_type(event),
        "timestamp": event.recorded_at.isoformat().replace("+00:00", "Z"),
        "schema_version": SCHEMA_VERSION,
        "data": public_data(event),
    }
