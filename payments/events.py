"""Payments' event types and payloads: its public contract (ARCHITECTURE.md, event catalog).

Amounts are decimal strings with two places ("59.97"). The order saga uses the order's id as
the payment id, so one order is charged at most once.
"""

from typing import TypedDict

PAYMENT = "payment"  # aggregate type (stream name)

# Emitted on a payment's stream: the replies the order saga waits for.
PAYMENT_PROCESSED = "PaymentProcessed"
PAYMENT_FAILED = "PaymentFailed"
PAYMENT_REFUNDED = "PaymentRefunded"

# Consumed: requests from the order saga.
PAYMENT_REQUESTED = "PaymentRequested"
PAYMENT_REFUND_REQUESTED = "PaymentRefundRequested"


class PaymentProcessedPayload(TypedDict):
    payment_id: str
    customer_id: str
    amount: str
    transaction_id: str


class PaymentFailedPayload(TypedDict):
    payment_id: str
    customer_id: str
    amount: str
    reason: str  # card_declined, insufficient_funds, invalid_token, processing_error


class PaymentRefundedPayload(TypedDict):
    payment_id: str
    transaction_id: str
    amount: str


class PaymentRequestedPayload(TypedDict):
    payment_id: str  # the order id
    customer_id: str
    amount: str
    payment_token: str


class PaymentRefundRequestedPayload(TypedDict):
    payment_id: str
