"""What the saga suites share: the streams of a happy and a compensated saga, the saga and
order as their events rebuild them, and replies made by hand."""

import uuid
from decimal import Decimal

from django.utils import timezone

from eventstore.records import RecordedEvent
from orders import events
from orders.services import orders, sagas
from payments.services import payment_charge

HAPPY_SAGA = [
    events.SAGA_STARTED,
    events.INVENTORY_RESERVATION_REQUESTED,
    events.SAGA_STEP_SUCCEEDED,
    events.PAYMENT_REQUESTED,
    events.SAGA_STEP_SUCCEEDED,
    events.SAGA_STEP_SUCCEEDED,
    events.SAGA_STEP_SUCCEEDED,
    events.SAGA_COMPLETED,
]
RELEASED_SAGA = [
    events.SAGA_STARTED,
    events.INVENTORY_RESERVATION_REQUESTED,
    events.SAGA_STEP_SUCCEEDED,
    events.PAYMENT_REQUESTED,
    events.SAGA_STEP_FAILED,
    events.INVENTORY_RELEASE_REQUESTED,
    events.SAGA_COMPENSATION_SUCCEEDED,
    events.SAGA_COMPENSATED,
]
# The order's stream of a paid order, and of one whose payment failed and stock was released.
COMPLETED_ORDER = [
    events.ORDER_CREATED,
    events.ORDER_INVENTORY_RESERVED,
    events.ORDER_PAYMENT_PROCESSED,
    events.ORDER_CONFIRMED,
    events.ORDER_COMPLETED,
]
RELEASED_ORDER = [
    events.ORDER_CREATED,
    events.ORDER_INVENTORY_RESERVED,
    events.ORDER_PAYMENT_FAILED,
    events.ORDER_INVENTORY_RELEASED,
    events.ORDER_CANCELLED,
]


def compensation_entry(status, *, attempt, tries, error=""):
    """A compensation's bookkeeping in the Saga aggregate."""
    return {"status": status, "attempt": attempt, "tries": tries, "error": error}


def saga_of(order_id):
    """The saga as its events rebuild it (no snapshot)."""
    return sagas.load(order_id, use_snapshot=False)


def order_of(order_id):
    """The order as its events rebuild it (no snapshot)."""
    return orders.load(order_id, use_snapshot=False)


def reply(event_type, **payload):
    """A service's reply as the saga reads it from the log (not appended anywhere)."""
    return RecordedEvent(
        position=0,
        event_id=uuid.uuid4(),
        aggregate_type="reply",
        aggregate_id="r-1",
        version=1,
        event_type=event_type,
        schema_version=1,
        payload=payload,
        metadata={},
        recorded_at=timezone.now(),
    )


def late_charge(order_id, token="tok_visa_success"):
    """The gateway charges the order's payment after all (payment id = order id), e.g. after
    the saga gave up waiting for it."""
    return payment_charge(
        payment_id=order_id,
        customer_id="c-1",
        amount=Decimal("25.00"),
        payment_token=token,
        metadata={"correlation_id": order_id},
    )
