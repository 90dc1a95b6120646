"""Payments' read-model updater, run inline in the appending transaction."""

from eventstore.api import Projection, RecordedEvent, rows
from payments import events
from payments.models import PaymentSummary


class PaymentProjection(Projection):
    """One PaymentSummary row per payment: amount, outcome, transaction and refund."""

    name = "payments.payments"
    models = (PaymentSummary,)
    event_types = frozenset(
        {events.PAYMENT_PROCESSED, events.PAYMENT_FAILED, events.PAYMENT_REFUNDED}
    )

    def apply(self, event: RecordedEvent) -> None:
        payload = event.payload
        if event.event_type == events.PAYMENT_REFUNDED:
            rows.update(
                PaymentSummary,
                event.aggregate_id,
                status=PaymentSummary.Status.REFUNDED,
                updated_at=event.recorded_at,
            )
            return
        processed = event.event_type == events.PAYMENT_PROCESSED
        rows.insert(
            PaymentSummary,
            payment_id=event.aggregate_id,
            customer_id=payload["customer_id"],
            amount=payload["amount"],
            status=PaymentSummary.Status.PROCESSED if processed else PaymentSummary.Status.FAILED,
            transaction_id=payload["transaction_id"] if processed else None,
            reason="" if processed else payload["reason"],
            created_at=event.recorded_at,
            updated_at=event.recorded_at,
        )
