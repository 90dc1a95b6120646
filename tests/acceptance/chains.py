"""The causal chains an order's history must show (`shop.causal_chain`), built from the pieces
every outcome shares: (event type, type of the event that caused it), in position order.

`lines` is the number of products an order names: inventory appends one stock event per line.
"""

Chain = list[tuple[str, str | None]]

# The customer's request: the order, its saga, and the saga's first request.
PLACED: Chain = [
    ("OrderCreated", None),
    ("SagaStarted", "OrderCreated"),
    ("InventoryReservationRequested", "OrderCreated"),
]

# Inventory cannot hold every line: the order is cancelled with nothing to compensate.
STOCK_SHORTAGE: Chain = [
    *PLACED,
    ("InventoryReservationFailed", "InventoryReservationRequested"),
    ("OrderInventoryFailed", "InventoryReservationFailed"),
    ("OrderCancelled", "InventoryReservationFailed"),
    ("SagaStepFailed", "InventoryReservationFailed"),
    ("SagaCompensated", "InventoryReservationFailed"),
    ("NotificationSent", "OrderCancelled"),
    ("NotificationDelivered", "NotificationSent"),
]

# A payment succeeding after the saga gave up on it: staff's charge (a command, not a reaction)
# is refunded, and the order stays cancelled.
LATE_PAYMENT_REFUNDED: Chain = [
    ("PaymentProcessed", None),
    ("PaymentRefundRequested", "PaymentProcessed"),
    ("PaymentRefunded", "PaymentRefundRequested"),
    ("SagaCompensationSucceeded", "PaymentRefunded"),
    ("SagaCompensated", "PaymentRefunded"),
]


def waiting_for_payment(lines: int) -> Chain:
    """Placed, reserved and asked to pay: where an order stays while the gateway is silent."""
    return [
        *PLACED,
        ("InventoryReserved", "InventoryReservationRequested"),
        *[("StockReserved", "InventoryReservationRequested")] * lines,
        ("OrderInventoryReserved", "InventoryReserved"),
        ("SagaStepSucceeded", "InventoryReserved"),
        ("PaymentRequested", "InventoryReserved"),
    ]


def completed(lines: int) -> Chain:
    """The happy path: paid, confirmed, completed, sold, and both notices delivered."""
    return [
        *waiting_for_payment(lines),
        ("PaymentProcessed", "PaymentRequested"),
        ("OrderPaymentProcessed", "PaymentProcessed"),
        ("OrderConfirmed", "PaymentProcessed"),
        ("OrderCompleted", "PaymentProcessed"),
        *[("SagaStepSucceeded", "PaymentProcessed")] * 3,
        ("SagaCompleted", "PaymentProcessed"),
        ("InventoryCommitted", "OrderCompleted"),
        *[("StockSold", "OrderCompleted")] * lines,
        ("NotificationSent", "OrderConfirmed"),
        ("NotificationSent", "OrderCompleted"),
        ("NotificationDelivered", "NotificationSent"),
        ("NotificationDelivered", "NotificationSent"),
    ]


def released_and_cancelled(lines: int) -> Chain:
    """Inventory answers the saga's release: the stock goes back, the order is cancelled and the
    customer told."""
    return [
        ("InventoryReleased", "InventoryReleaseRequested"),
        *[("StockReleased", "InventoryReleaseRequested")] * lines,
        ("OrderInventoryReleased", "InventoryReleased"),
        ("OrderCancelled", "InventoryReleased"),
        ("SagaCompensationSucceeded", "InventoryReleased"),
        ("SagaCompensated", "InventoryReleased"),
        ("NotificationSent", "OrderCancelled"),
        ("NotificationDelivered", "NotificationSent"),
    ]


def payment_declined(lines: int) -> Chain:
    """The gateway declines the charge: the saga fails the step and releases the stock."""
    return [
        *waiting_for_payment(lines),
        ("PaymentFailed", "PaymentRequested"),
        ("OrderPaymentFailed", "PaymentFailed"),
        ("SagaStepFailed", "PaymentFailed"),
        ("InventoryReleaseRequested", "PaymentFailed"),
        *released_and_cancelled(lines),
    ]


def payment_timed_out(lines: int) -> Chain:
    """The gateway never answers and the saga gives up: the three events after the payment
    request come from the timeout itself (no event caused them)."""
    return [
        *waiting_for_payment(lines),
        ("OrderPaymentFailed", None),
        ("SagaStepFailed", None),
        ("InventoryReleaseRequested", None),
        *released_and_cancelled(lines),
    ]
