"""Orders' event types and payloads: its public contract (ARCHITECTURE.md, event catalog).

Two streams: `order/<order_id>` holds the order's own state changes; `saga/<order_id>` holds the
fulfilment saga's progress and the requests it sends to the other services. Every event of an
order's fulfilment carries metadata `correlation_id` = the order id.
"""

import hashlib
import hmac
from typing import Any, NotRequired, TypedDict

from django.conf import settings

# Aggregate types (stream names).
ORDER = "order"
SAGA = "saga"

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

# Emitted on a saga's stream: its own progress ...
SAGA_STARTED = "SagaStarted"
SAGA_STEP_SUCCEEDED = "SagaStepSucceeded"
SAGA_STEP_FAILED = "SagaStepFailed"
SAGA_COMPENSATION_SUCCEEDED = "SagaCompensationSucceeded"
SAGA_COMPENSATION_FAILED = "SagaCompensationFailed"
SAGA_COMPLETED = "SagaCompleted"
SAGA_COMPENSATED = "SagaCompensated"
# ... and the requests it sends (each starts a step or a compensation).
INVENTORY_RESERVATION_REQUESTED = "InventoryReservationRequested"
INVENTORY_RELEASE_REQUESTED = "InventoryReleaseRequested"
PAYMENT_REQUESTED = "PaymentRequested"
PAYMENT_REFUND_REQUESTED = "PaymentRefundRequested"

# Consumed: the services' replies, and the product catalogue orders validate against.
INVENTORY_RESERVED = "InventoryReserved"
INVENTORY_RESERVATION_FAILED = "InventoryReservationFailed"
INVENTORY_RELEASED = "InventoryReleased"
PAYMENT_PROCESSED = "PaymentProcessed"
PAYMENT_FAILED = "PaymentFailed"
PAYMENT_REFUNDED = "PaymentRefunded"
PRODUCT_CREATED = "ProductCreated"


# The vault kind of a payment token: the raw token never enters the log (eventstore.vault).
PAYMENT_TOKEN_SECRET = "payment_token"


class PaymentMethod(TypedDict):
    """What the log may say about a payment token: never the token itself."""

    kind: str  # the token's prefix up to its second underscore ("tok_visa"), else "token"
    last4: str  # its last four characters ("" for a token of 8 characters or fewer)
    # A keyed hash (HMAC-SHA256 with SECRET_KEY, 16 hex digits): tells a repeated request
    # from a different one without keeping the token.
    fingerprint: str


def payment_method_of(payment_token: str) -> PaymentMethod:
    """The safe description of a payment token, as OrderCreated and PaymentRequested carry it."""
    parts = payment_token.split("_")
    digest = hmac.new(
        settings.SECRET_KEY.encode(), payment_token.encode(), hashlib.sha256
    ).hexdigest()
    return {
        "kind": "_".join(parts[:2]) if len(parts) > 2 else "token",
        "last4": payment_token[-4:] if len(payment_token) > 8 else "",
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


class Item(TypedDict):
    product_id: str
    quantity: int


class PricedItem(TypedDict):
    product_id: str
    quantity: int
    unit_price: str


class OrderCreatedPayload(TypedDict):
    order_id: str
    customer_id: str
    items: list[Item]
    payment_method: PaymentMethod
    # The token's reference in the vault (schema version 2); None on events stored at version
    # 1, which held the raw token (see `order_created_v1_to_v2`).
    payment_token_ref: str | None
    idempotency_key: str  # "" when the request had none


class OrderInventoryReservedPayload(TypedDict):
    order_id: str
    items: list[PricedItem]
    total_amount: str


class OrderFailedPayload(TypedDict):
    """OrderInventoryFailed and OrderPaymentFailed: why the step failed."""

    order_id: str
    reason: str


class OrderPaymentProcessedPayload(TypedDict):
    order_id: str
    transaction_id: str
    amount: str


class OrderInventoryReleasedPayload(TypedDict):
    order_id: str


class OutcomeItem(TypedDict):
    product_id: str
    quantity: int
    unit_price: str | None  # None when inventory never priced the line


# The order's outcomes carry what the customer is told about: items and total. Events stored
# before `items` (and OrderCancelled's `total_amount`) were added have neither.
class OrderConfirmedPayload(TypedDict):
    order_id: str
    customer_id: str
    items: NotRequired[list[OutcomeItem]]
    total_amount: str


class OrderCompletedPayload(TypedDict):
    order_id: str
    customer_id: str
    items: NotRequired[list[OutcomeItem]]
    total_amount: str


class OrderCancelledPayload(TypedDict):
    order_id: str
    customer_id: str
    items: NotRequired[list[OutcomeItem]]
    total_amount: NotRequired[str | None]  # None when the stock was never reserved
    reason: str


class SagaStartedPayload(TypedDict):
    saga_id: str
    order_id: str
    definition_version: int
    steps: list[str]


class SagaStepSucceededPayload(TypedDict):
    saga_id: str
    step: str
    error: str  # always ""


class SagaStepFailedPayload(TypedDict):
    saga_id: str
    step: str
    error: str  # what happened, for people
    reason: str  # the order's cancellation reason, e.g. "insufficient_stock", "payment_timeout"
    compensations: list[str]  # to run now, in this order


class SagaCompensationPayload(TypedDict):
    """SagaCompensationSucceeded and SagaCompensationFailed (`error` is "" on success)."""

    saga_id: str
    compensation: str
    error: str


class SagaFinishedPayload(TypedDict):
    """SagaCompleted and SagaCompensated."""

    saga_id: str


class InventoryReservationRequestedPayload(TypedDict):
    order_id: str
    items: list[Item]
    step: str  # "reserve_inventory"


class PaymentRequestedPayload(TypedDict):
    payment_id: str  # the order id
    customer_id: str
    amount: str
    payment_method: PaymentMethod
    payment_token_ref: str | None  # None: read from schema version 1, nothing to charge with
    step: str  # "process_payment"


class InventoryReleaseRequestedPayload(TypedDict):
    order_id: str
    compensation: str  # "release_inventory"
    attempt: int  # 1, then 2, 3 ... when sent again after no reply


class PaymentRefundRequestedPayload(TypedDict):
    payment_id: str
    compensation: str  # "refund_payment"
    attempt: int
