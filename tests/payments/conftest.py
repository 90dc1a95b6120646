"""Fixtures for the payments suites: charges made through the services, payment events read."""

from decimal import Decimal

import pytest

from eventstore.models import Event
from payments import events
from payments.services import payment_charge


@pytest.fixture
def charge(db):
    """A function charging through `payment_charge` (events are the source of truth)."""

    def make(payment_id="pay-1", *, token="tok_visa_success", amount="10.00", customer="c-1"):
        return payment_charge(
            payment_id=payment_id,
            customer_id=customer,
            amount=Decimal(amount),
            payment_token=token,
        )

    return make


@pytest.fixture
def payment_events(db):
    """A function giving (event_type, payload) of the payment streams' events in log order."""

    def read(payment_id=None):
        query = Event.objects.filter(aggregate_type=events.PAYMENT).order_by("position")
        if payment_id is not None:
            query = query.filter(aggregate_id=payment_id)
        return [(row.event_type, row.payload) for row in query]

    return read
