"""Payments' command handlers: load -> ask the gateway -> append the outcome.

The gateway is called with no database transaction open (`require_no_transaction` refuses
otherwise), with the payment id as its idempotency key: a slow provider holds no lock, and a
command that loses a race (or is repeated after a crash) gets the provider's first answer
instead of a second charge. The outcome is appended at the version the payment was loaded at;
when another worker recorded it first, the stored outcome stands and nothing is appended twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from opentelemetry.trace import SpanKind

from eventstore.api import (
    ConcurrencyError,
    Repository,
    require_no_transaction,
    tracing,
    vault_erase,
    vault_take,
)
from payments.aggregates import Payment, PaymentError, PaymentNotFound
from payments.gateway import DEFAULT_TOKEN, ChargeResult, get_gateway
from payments.metrics import gateway_timed

payments: Repository[Payment] = Repository(Payment)

Metadata = Mapping[str, Any] | None

CENT = Decimal("0.01")

# The reason of a charge whose token is no longer in the vault (erased, or past its retention).
TOKEN_EXPIRED = "token_expired"


def _valid_amount(amount: Decimal | str) -> Decimal:
    """The amount as a Decimal; PaymentError unless it is over 0 with at most two places."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise PaymentError(f"amount {amount!r} is not a number") from None
    if not value.is_finite() or value <= 0 or value != value.quantize(CENT):
        raise PaymentError(f"amount {amount} must be over 0 with at most two decimal places")
    return value


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
    return _charge(
        payment,
        customer_id=customer_id,
        amount=amount,
        payment_token=payment_token,
        metadata=metadata,
    )


def _charge(
    payment: Payment,
    *,
    customer_id: str,
    amount: Decimal | str,
    payment_token: str,
    metadata: Metadata,
) -> Payment:
    """Charge a new payment (see `payment_charge`)."""
    payment_id = payment.id
    amount = _valid_amount(amount)
    require_no_transaction("A payment gateway call")
    with (
        tracing.span(
            "payments.gateway.charge", {"payments.payment_id": payment_id}, kind=SpanKind.CLIENT
        ) as span,
        gateway_timed("charge") as call,
    ):
        result = get_gateway().charge(
            idempotency_key=f"charge:{payment_id}", amount=amount, payment_token=payment_token
        )
        call.outcome = "approved" if result.approved else "declined"
        tracing.set_attributes(
            span, **{"payments.approved": result.approved, "payments.reason": result.reason or None}
        )
    _record_answer(payment, customer_id=customer_id, amount=amount, result=result)
    return _save_outcome(payment, metadata)


def payment_charge_vaulted(
    *,
    payment_id: str,
    customer_id: str,
    amount: Decimal | str,
    payment_token_ref: str | None,
    metadata: Metadata = None,
) -> Payment:
    """Charge with the token the vault keeps under `payment_token_ref`, as `payment_charge`
    does, then erase the token: it is needed no more once the payment is decided.

    A token no longer in the vault (erased, past PAYMENTS_TOKEN_RETENTION_HOURS, or never kept:
    an order placed before tokens were vaulted) fails the payment with token_expired and calls
    no gateway. GatewayTimeout keeps the token for the next attempt.
    """
    payment = payments.load_or_new(payment_id)
    if payment.status == Payment.NEW:
        payment_token = vault_take(payment_token_ref)
        if payment_token is None:
            payment.failed(
                customer_id=customer_id, amount=_valid_amount(amount), reason=TOKEN_EXPIRED
            )
            payment = _save_outcome(payment, metadata)
        else:
            payment = _charge(
                payment,
                customer_id=customer_id,
                amount=amount,
                payment_token=payment_token,
                metadata=metadata,
            )
    vault_erase(payment_token_ref)
    return payment


def payment_reconcile(
    *,
    payment_id: str,
    customer_id: str,
    amount: Decimal | str,
    payment_token_ref: str | None,
    metadata: Metadata = None,
) -> Payment:
    """For a charge that was withdrawn after calls the gateway did not answer: ask the gateway,
    by the charge's idempotency key, what became of it, never charging, and record its answer
    (a late approval is then refunded by the saga, as any late success). Nothing is recorded
    when no charge was made; the token is erased either way.

    Raises GatewayTimeout when the gateway cannot say; nothing is written then.
    """
    payment = payments.load_or_new(payment_id)
    if payment.status == Payment.NEW:
        require_no_transaction("A payment gateway call")
        with (
            tracing.span(
                "payments.gateway.find_charge",
                {"payments.payment_id": payment_id},
                kind=SpanKind.CLIENT,
            ),
            gateway_timed("find_charge") as call,
        ):
            result = get_gateway().find_charge(idempotency_key=f"charge:{payment_id}")
            call.outcome = "none" if result is None else "found"
        if result is not None:
            _record_answer(
                payment, customer_id=customer_id, amount=_valid_amount(amount), result=result
            )
            payment = _save_outcome(payment, metadata)
    vault_erase(payment_token_ref)
    return payment


def _record_answer(
    payment: Payment, *, customer_id: str, amount: Decimal, result: ChargeResult
) -> None:
    """Record the gateway's answer to the payment's charge: approved or declined."""
    if result.approved:
        payment.processed(
            customer_id=customer_id, amount=amount, transaction_id=result.transaction_id
        )
    else:
        payment.failed(customer_id=customer_id, amount=amount, reason=result.reason)


def payment_refund(*, payment_id: str, metadata: Metadata = None) -> Payment:
    """Refund a processed payment once; a repeat changes nothing.

    Raises PaymentNotFound for an unknown id and PaymentNotRefundable for a failed payment.
    """
    payment = payments.load(payment_id, missing=PaymentNotFound)
    if payment.status == Payment.REFUNDED:
        return payment
    payment.refunded()  # raises PaymentNotRefundable unless processed, before the gateway call
    require_no_transaction("A payment gateway call")
    with (
        tracing.span(
            "payments.gateway.refund", {"payments.payment_id": payment_id}, kind=SpanKind.CLIENT
        ),
        gateway_timed("refund"),
    ):
        get_gateway().refund(
            idempotency_key=f"refund:{payment_id}",
            transaction_id=payment.transaction_id,
            amount=Decimal(payment.amount),
        )
    return _save_outcome(payment, metadata)


def _save_outcome(payment: Payment, metadata: Metadata) -> Payment:
    """Append the gateway's answer at the version the payment was loaded at. A concurrent call
    with the same key that recorded its answer first wins: the stored payment is returned and
    nothing is appended (the gateway answered both calls alike)."""
    try:
        payments.save(payment, metadata=metadata)
    except ConcurrencyError:
        stored = payments.load_or_new(payment.id)
        if stored.version <= payment.loaded_version:  # nothing new was stored after all
            raise
        return stored
    return payment
