"""Payments' reactions to the order saga's requests."""

import logging

from eventstore.store import RecordedEvent
from eventstore.subscriptions import Subscriber
from payments import events
from payments.aggregates import PaymentError
from payments.gateway import DEFAULT_TOKEN, GatewayTimeout
from payments.services import payment_charge, payment_refund

logger = logging.getLogger(__name__)

ACTOR = "service:payments"


class PaymentRequestHandler(Subscriber):
    """Charges and refunds as the order saga asks."""

    name = "payments.requests"
    event_types = frozenset({events.PAYMENT_REQUESTED, events.PAYMENT_REFUND_REQUESTED})

    def handle(self, event: RecordedEvent) -> None:
        payload = event.payload
        metadata = event.caused_metadata(ACTOR)
        if event.event_type == events.PAYMENT_REQUESTED:
            try:
                payment_charge(
                    payment_id=payload["payment_id"],
                    customer_id=payload["customer_id"],
                    amount=payload["amount"],
                    payment_token=payload.get("payment_token") or DEFAULT_TOKEN,
                    metadata=metadata,
                )
            except GatewayTimeout:
                # No reply is the honest answer: the saga's step timeout decides what happens.
                logger.warning("Payment %s: the gateway did not answer", payload["payment_id"])
            except PaymentError:
                # A malformed request can never be charged; the saga's step timeout applies.
                logger.exception("Payment request %s refused", payload["payment_id"])
            return
        try:
            payment_refund(payment_id=payload["payment_id"], metadata=metadata)
        except PaymentError:
            # Retrying cannot make an unknown or failed payment refundable; staff see the log.
            logger.exception("Refund of payment %s refused", payload["payment_id"])
