"""Orders' event types: its public contract, with their payloads in docs/EVENTS.md.

Three streams: `order/<order_id>` holds the order's own state changes; `saga/<order_id>` holds the
fulfilment saga's progress and the requests it sends to the other services, and
`cancellation/<order_id>` the same for the cancellation saga of a completed order. Every event of an
order's fulfilment carries metadata `correlation_id` = the order id.
"""

import hashlib
import hmac
from typing import Any, TypedDict

from django.conf import settings

from eventstore.api import vault_describe

# Aggregate types (stream names).
ORDER = "order"
SAGA = "saga"
# A completed order's cancellation saga: the same engine and bookkeeping as the fulfilment's.
CANCELLATION = "cancellation"

# Emitted on an order's stream, one per transition of its state machine.
ORDER_CREATED = "OrderCreated"
ORDER_INVENTORY_RESERVED = "OrderInventoryReserved"
ORDER_INVENTORY_FAILED = "OrderInventoryFailed"
ORDER_PAYMENT_PROCESSED = "OrderPaymentProcessed"
ORDER_PAYMENT_FAILED = "OrderPaymentFailed"
ORDER_INVENTORY_RELEASED = "OrderInventoryReleased"
ORDER_CONFIRMED = "OrderConfirmed"
ORDER_COMPLETED = "OrderCompleted"
ORDER_CANCELLED = "OrderCancelled"
# A customer or staff asked to cancel; a completed order then refunds and returns its stock.
ORDER_CANCELLATION_REQUESTED = "OrderCancellationRequested"
ORDER_REFUNDED = "OrderRefunded"

# Emitted on a saga's stream: its own progress ...
SAGA_STARTED = "SagaStarted"
SAGA_STEP_SUCCEEDED = "SagaStepSucceeded"
SAGA_STEP_FAILED = "SagaStepFailed"
SAGA_COMPENSATION_SUCCEEDED = "SagaCompensationSucceeded"
SAGA_COMPENSATION_FAILED = "SagaCompensationFailed"
SAGA_COMPLETED = "SagaCompleted"
SAGA_COMPENSATED = "SagaCompensated"
# A step that is retried rather than failed went unanswered too often: staff must check.
SAGA_STEP_STALLED = "SagaStepStalled"
# ... and the requests it sends (each starts a step or a compensation).
INVENTORY_RESERVATION_REQUESTED = "InventoryReservationRequested"
INVENTORY_RELEASE_REQUESTED = "InventoryReleaseRequested"
PAYMENT_REQUESTED = "PaymentRequested"
PAYMENT_REFUND_REQUESTED = "PaymentRefundRequested"
INVENTORY_RETURN_REQUESTED = "InventoryReturnRequested"

# Consumed: the services' replies, and the product catalogue orders validate against.
INVENTORY_RESERVED = "InventoryReserved"
INVENTORY_RESERVATION_FAILED = "InventoryReservationFailed"
INVENTORY_RELEASED = "InventoryReleased"
PAYMENT_PROCESSED = "PaymentProcessed"
PAYMENT_FAILED = "PaymentFailed"
PAYMENT_REFUNDED = "PaymentRefunded"
INVENTORY_RETURNED = "InventoryReturned"
PRODUCT_CREATED = "ProductCreated"
PRODUCT_RENAMED = "ProductRenamed"


# The vault kind of a payment token: the raw token never enters the log (eventstore.vault).
PAYMENT_TOKEN_SECRET = "payment_token"


class PaymentMethod(TypedDict):
    """What the log may say about a payment token: never the token itself."""

    # As payments describes the token (the vault's describer of PAYMENT_TOKEN_SECRET): a card's
    # brand and the last four digits of its number ("visa", "4242"), or "token" and "" for a
    # token that names no known card. Events stored before hold the token's prefix and last
    # four characters ("tok_visa", "cess"): history is not rewritten.
    kind: str
    last4: str
    # A keyed hash (HMAC-SHA256 with SECRET_KEY, 16 hex digits): tells a repeated request
    # from a different one without keeping the token.
    fingerprint: str


def payment_method_of(payment_token: str) -> PaymentMethod:
    """The safe description of a payment token, as OrderCreated and PaymentRequested carry it."""
    described = vault_describe(kind=PAYMENT_TOKEN_SECRET, secret=payment_token)
    digest = hmac.new(
        settings.SECRET_KEY.encode(), payment_token.encode(), hashlib.sha256
    ).hexdigest()
    return {
        "kind": described.get("kind") or "token",
        "last4": described.get("last4", ""),
        "fingerprint": digest[:16],
    }


def _token_masked(payload: dict[str, Any]) -> dict[str, Any]:
    """Replace a raw `payment_token` by its description; no vault reference (none was kept)."""
    masked = {key: value for key, value in payload.items() if key != "payment_token"}
    masked["payment_method"] = payment_method_of(str(payload.get("payment_token") or ""))
    masked["payment_token_ref"] = None
    return masked


def order_created_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Upcaster of OrderCreated 1 -> 2: version 1 held the raw payment token; it reads masked.
    Such an order, still waiting to be charged, fails its payment with token_expired."""
    return _token_masked(payload)


def payment_requested_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Upcaster of PaymentRequested 1 -> 2: version 1 held the raw payment token; it reads
    masked, and payments, finding no token to charge, fails it with token_expired."""
    return _token_masked(payload)
