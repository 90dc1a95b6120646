"""notifications_delivery_total: each recorded delivery outcome counts once it commits."""

import smtplib

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from notifications.services import (
    notification_deliver,
    notification_delivery_failed,
    notification_send,
)

pytestmark = pytest.mark.django_db


def deliveries(outcome):
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("notifications_delivery_total", labels) or 0.0


@pytest.fixture
def notification(customer_id):
    return notification_send(
        customer_id=customer_id, type="promotion", message="Hi", notification_id="n1"
    )


def test_a_recorded_delivery_counts_as_delivered_once_committed(
    notification, django_capture_on_commit_callbacks
):
    before = deliveries("delivered")

    with django_capture_on_commit_callbacks(execute=True):
        notification_deliver(notification_id="n1", attempt=1)
        notification_deliver(notification_id="n1", attempt=2)  # delivered already: no email

    assert deliveries("delivered") == before + 1


@pytest.mark.parametrize(("parked", "outcome"), [(False, "failed"), (True, "parked")])
def test_a_failed_attempt_counts_as_failed_or_parked(
    notification, django_capture_on_commit_callbacks, parked, outcome
):
    before = deliveries(outcome)

    with django_capture_on_commit_callbacks(execute=True):
        notification_delivery_failed(
            notification_id="n1",
            attempt=1,
            error=smtplib.SMTPServerDisconnected("closed"),
            parked=parked,
        )

    assert deliveries(outcome) == before + 1


def test_a_failure_recorded_in_a_transaction_that_rolls_back_counts_nothing(
    notification, django_capture_on_commit_callbacks
):
    before = deliveries("failed")

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        notification_delivery_failed(
            notification_id="n1", attempt=1, error=TimeoutError("slow"), parked=False
        )
        raise RuntimeError("rolled back")

    assert deliveries("failed") == before
