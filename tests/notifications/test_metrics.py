"""notifications_delivery_total and notifications_push_total: each recorded delivery outcome
counts once it commits."""

import smtplib

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from notifications import services
from notifications.services import (
    notification_deliver,
    notification_delivery_failed,
    notification_push_failed,
    notification_send,
    push_subscription_add,
    push_subscription_remove,
)
from tests.notifications.push_service import Browser

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


def pushes(outcome):
    return REGISTRY.get_sample_value("notifications_push_total", {"outcome": outcome}) or 0.0


def test_push_outcomes_count_by_kind_once_committed(
    notification, django_capture_on_commit_callbacks
):
    before = {outcome: pushes(outcome) for outcome in ("delivered", "failed", "parked", "gone")}
    browser = Browser()
    subscription, _ = push_subscription_add(
        customer_id="c1",
        endpoint="https://push.example.net/1",
        p256dh=browser.p256dh,
        auth=browser.auth,
    )

    with django_capture_on_commit_callbacks(execute=True):
        services._push_recorded(
            notification_id="n1", subscription_id=subscription.id, attempt=1, metadata=None
        )
        notification_push_failed(
            notification_id="n1", attempt=1, error=RuntimeError("x"), parked=False
        )
        notification_push_failed(
            notification_id="n1", attempt=2, error=RuntimeError("x"), parked=True
        )
        push_subscription_remove(subscription_id=subscription.id, reason="gone")

    after = {outcome: pushes(outcome) - before[outcome] for outcome in before}
    assert after == {"delivered": 1, "failed": 1, "parked": 1, "gone": 1}
