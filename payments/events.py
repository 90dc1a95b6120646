"""Payments' event types: its public contract, with their payloads in docs/EVENTS.md.

Amounts are decimal strings with two places ("59.97"). The order saga uses the order's id as
the payment id, so one order is charged at most once.
"""

PAYMENT = "payment"  # aggregate type (stream name)

# Emitted on a payment's stream: the replies the order saga waits for.
PAYMENT_PROCESSED = "PaymentProcessed"
PAYMENT_FAILED = "PaymentFailed"
PAYMENT_REFUNDED = "PaymentRefunded"

# Consumed: requests from the order saga, and its giving up a step (after which no charge it
# requested is made: eventstore.follower.effects withdraws the call).
PAYMENT_REQUESTED = "PaymentRequested"
PAYMENT_REFUND_REQUESTED = "PaymentRefundRequested"
SAGA_STEP_FAILED = "SagaStepFailed"

# The vault kind of the payment tokens the saga hands over (eventstore.vault): payments takes
# them by reference to charge, and describes them for whoever puts one.
PAYMENT_TOKEN_SECRET = "payment_token"
