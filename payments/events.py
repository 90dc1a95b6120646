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
    # card_declined, insufficient_funds, invalid_token, processing_error, token_expired
    reason: str


class PaymentRefundedPayload(TypedDict):
    payment_id: str
    transaction_id: str
    amount: str


class PaymentRequestedPayload(TypedDict):
    """Read at schema version 2. The token is in the vault (eventstore.vault) under
    `payment_token_ref`; None (an event stored at version 1 holding the raw token, which reads
    masked) leaves nothing to charge with: the payment fails with token_expired."""

    payment_id: str  # the order id
    customer_id: str
    amount: str
    payment_token_ref: str | None


class PaymentRefundRequestedPayload(TypedDict):
    payment_id: str
