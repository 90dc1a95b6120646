"""Orders' event types and payloads: its public contract (ARCHITECTURE.md, event catalog).

Two streams: `order/<order_id>` holds the order's own state changes; `saga/<order_id>` holds the
fulfilment saga's progress and the requests it sends to the other services. Every event of an
order's fulfilment carries metadata `correlation_id` = the order id.
"""

from typing import NotRequired, TypedDict

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
    payment_token: str
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
    payment_token: str
    step: str  # "process_payment"


class InventoryReleaseRequestedPayload(TypedDict):
    order_id: str
    compensation: str  # "release_inventory"
    attempt: int  # 1, then 2, 3 ... when sent again after no reply


class PaymentRefundRequestedPayload(TypedDict):
    payment_id: str
    compensation: str  # "refund_payment"
    attempt: int
