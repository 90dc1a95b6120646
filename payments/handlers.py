"""Payments' reactions to the order saga's requests: calls to the payment gateway, made after
the request is committed and with no transaction open (eventstore.follower.effects)."""

from eventstore.api import EffectSubscriber, RecordedEvent, Withdrawal
from payments import events
from payments.aggregates import PaymentError
from payments.services import payment_charge_vaulted, payment_reconcile, payment_refund

ACTOR = "service:payments"


class PaymentRequestHandler(EffectSubscriber):
    """Charges and refunds as the order saga asks, each request at least once until the gateway
    answers; the payment id keys every call, so the customer is charged (and refunded) once.

    A gateway that does not answer (GatewayTimeout) is asked again with backoff; the saga's step
    timeout decides the order meanwhile, and a late success is refunded by the saga. A request
    that can never succeed (PaymentError: a malformed amount, an unrefundable payment) is parked
    at once, for staff to see. The token is taken from the vault by the request's reference
    and erased once the charge is decided; the log never holds it.

    Once the saga gives a step up (SagaStepFailed), a charge it requested that was not made is
    withdrawn: never made after that. One the gateway left unanswered is reconciled instead:
    the gateway is asked what became of it by its key, and its answer recorded.
    """

    name = "payments.requests"
    event_types = frozenset({events.PAYMENT_REQUESTED, events.PAYMENT_REFUND_REQUESTED})
    permanent_errors = (PaymentError,)

    def withdraws(self, event: RecordedEvent) -> Withdrawal | None:
        if event.event_type != events.SAGA_STEP_FAILED:
            return None
        # A saga that failed a step requests no charge any more (it compensates from then on).
        reason = f"{event.event_type}: {event.payload.get('reason') or 'the saga gave up'}"
        return Withdrawal(frozenset({events.PAYMENT_REQUESTED}), reason)

    def reconcile(self, event: RecordedEvent, *, attempt: int) -> None:
        if event.event_type != events.PAYMENT_REQUESTED:
            return  # only charges are withdrawn
        payload = event.payload
        payment_reconcile(
            payment_id=payload["payment_id"],
            customer_id=payload["customer_id"],
            amount=payload["amount"],
            payment_token_ref=payload.get("payment_token_ref"),
            metadata=event.caused_metadata(ACTOR),
        )

    def perform(self, event: RecordedEvent, *, attempt: int) -> None:
        payload = event.payload
        metadata = event.caused_metadata(ACTOR)
        if event.event_type == events.PAYMENT_REQUESTED:
            payment_charge_vaulted(
                payment_id=payload["payment_id"],
                customer_id=payload["customer_id"],
                amount=payload["amount"],
                payment_token_ref=payload.get("payment_token_ref"),
                metadata=metadata,
            )
        else:
            payment_refund(payment_id=payload["payment_id"], metadata=metadata)
