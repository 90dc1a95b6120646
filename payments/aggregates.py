"""Payment: one charge attempt and its refund, rebuilt only from events.

new -> processed | failed; processed -> refunded. A payment is decided once: charging it again
returns the first outcome.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from eventstore.api import Aggregate, applies
from payments import events


class PaymentError(Exception):
    """A command the payments service refuses; nothing was written."""


class PaymentNotFound(PaymentError):
    """No payment has this id."""


class PaymentNotRefundable(PaymentError):
    """Only a processed payment can be refunded."""


class Payment(Aggregate):
    """A charge of `amount` to a customer, its gateway transaction and its refund."""

    aggregate_type = events.PAYMENT

    NEW = ""
    PROCESSED = "processed"
    FAILED = "failed"
    REFUNDED = "refunded"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status = self.NEW
        self.customer_id = ""
        self.amount = "0.00"
        self.transaction_id = ""
        self.reason = ""

    def processed(self, *, customer_id: str, amount: Decimal, transaction_id: str) -> None:
        """Record an approved charge."""
        self._require_new(amount)
        self.record(
            events.PAYMENT_PROCESSED,
            {
                "payment_id": self.id,
                "customer_id": customer_id,
                "amount": f"{amount:.2f}",
                "transaction_id": transaction_id,
            },
        )

    def failed(self, *, customer_id: str, amount: Decimal, reason: str) -> None:
        """Record a declined charge and its reason."""
        self._require_new(amount)
        self.record(
            events.PAYMENT_FAILED,
            {
                "payment_id": self.id,
                "customer_id": customer_id,
                "amount": f"{amount:.2f}",
                "reason": reason,
            },
        )

    def refunded(self) -> None:
        """Record that the charged amount went back to the customer."""
        if self.status != self.PROCESSED:
            raise PaymentNotRefundable(
                f"Payment {self.id!r} is {self.status or 'new'}; only a processed payment "
                "can be refunded"
            )
        self.record(
            events.PAYMENT_REFUNDED,
            {"payment_id": self.id, "transaction_id": self.transaction_id, "amount": self.amount},
        )

    def _require_new(self, amount: Decimal) -> None:
        if self.status != self.NEW:
            raise PaymentError(f"Payment {self.id!r} was decided already ({self.status})")
        if amount <= 0:
            raise PaymentError("amount must be greater than 0")

    @applies(events.PAYMENT_PROCESSED)
    def _processed(self, payload: dict[str, Any]) -> None:
        self.status = self.PROCESSED
        self.customer_id = payload["customer_id"]
        self.amount = payload["amount"]
        self.transaction_id = payload["transaction_id"]

    @applies(events.PAYMENT_FAILED)
    def _failed(self, payload: dict[str, Any]) -> None:
        self.status = self.FAILED
        self.customer_id = payload["customer_id"]
        self.amount = payload["amount"]
        self.reason = payload["reason"]

    @applies(events.PAYMENT_REFUNDED)
    def _refunded(self, payload: dict[str, Any]) -> None:
        self.status = self.REFUNDED
