"""Payments' command handlers: load -> ask the gateway -> append, retried when a stream moved on.

The gateway is called outside any database transaction we open, with the payment id as its
idempotency key: a slow provider holds no lock, and a command that loses a race (or is retried
after a crash) gets the provider's first answer instead of a second charge.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from eventstore.aggregates import AggregateNotFound, Repository, retry_on_conflict
from payments.aggregates import Payment, PaymentError, PaymentNotFound
from payments.gateway import DEFAULT_TOKEN, get_gateway

payments: Repository[Payment] = Repository(Payment)

Metadata = Mapping[str, Any] | None

CENT = Decimal("0.01")


def _valid_amount(amount: Decimal | str) -> Decimal:
    """The amount as a Decimal; PaymentError unless it is over 0 with at most two places."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise PaymentError(f"amount {amount!r} is not a number") from None
    if not value.is_finite() or value <= 0 or value != value.quantize(CENT):
        raise PaymentError(f"amount {amount} must be over 0 with at most two decimal places")
    return value


@retry_on_conflict
def payment_charge(
    *,
    payment_id: str,
    customer_id: str,
    amount: Decimal,
    payment_token: str = DEFAULT_TOKEN,
    metadata: Metadata = None,
) -> Payment:
    """Charge once per payment id: a repeat returns the first outcome and charges nothing.

    Raises PaymentError for an amount that is not over 0 with at most two places, and
    GatewayTimeout when the gateway does not answer; neither writes anything.
    """
    payment = payments.load_or_new(payment_id)
    if payment.status != Payment.NEW:
        return payment
    amount = _valid_amount(amount)
    result = get_gateway().charge(
        idempotency_key=f"charge:{payment_id}", amount=amount, payment_token=payment_token
    )
    if result.approved:
        payment.processed(
            customer_id=customer_id, amount=amount, transaction_id=result.transaction_id
        )
    else:
        payment.failed(customer_id=customer_id, amount=amount, reason=result.reason)
    payments.save(payment, metadata=metadata)
    return payment


@retry_on_conflict
def payment_refund(*, payment_id: str, metadata: Metadata = None) -> Payment:
    """Refund a processed payment once; a repeat changes nothing.

    Raises PaymentNotFound for an unknown id and PaymentNotRefundable for a failed payment.
    """
    try:
        payment = payments.load(payment_id)
    except AggregateNotFound:
        raise PaymentNotFound(f"Payment {payment_id!r} does not exist") from None
    if payment.status == Payment.REFUNDED:
        return payment
    payment.refunded()  # raises PaymentNotRefundable unless processed, before the gateway call
    get_gateway().refund(
        idempotency_key=f"refund:{payment_id}",
        transaction_id=payment.transaction_id,
        amount=Decimal(payment.amount),
    )
    payments.save(payment, metadata=metadata)
    return payment
