"""Query helpers of orders' read models: grouped counts for the admin's operations page."""

import pytest
from django.utils import timezone

from orders.models import OrderSummary, SagaSummary

pytestmark = pytest.mark.django_db


def test_outcome_counts_group_orders_into_completed_cancelled_by_reason_refunded_and_open(
    order_row,
):
    for order_id, status, reason in (
        ("o-1", "completed", ""),
        ("o-2", "completed", ""),
        ("o-3", "cancelled", "card_declined"),
        ("o-4", "cancelled", "insufficient_stock"),
        ("o-5", "cancelled", "card_declined"),
        ("o-6", "pending", ""),
        ("o-7", "payment_processed", ""),
        ("o-8", "cancelled", ""),
        ("o-9", "refunded", ""),
        ("o-10", "cancelling", ""),
    ):
        order_row(order_id, status=status)
        OrderSummary.objects.filter(order_id=order_id).update(cancel_reason=reason)

    assert OrderSummary.objects.outcome_counts() == {
        "completed": 2,
        "cancelled: card_declined": 2,
        "cancelled: insufficient_stock": 1,
        "cancelled: unknown": 1,
        "refunded": 1,
        "open": 3,
    }
    assert OrderSummary.objects.filter(order_id="o-1").outcome_counts() == {"completed": 1}
    assert OrderSummary.objects.none().outcome_counts() == {}


def test_state_counts_name_every_saga_state_with_zero_for_none():
    now = timezone.now()
    for saga_id, state in (("s-1", "running"), ("s-2", "running"), ("s-3", "compensated")):
        SagaSummary.objects.create(
            saga_id=saga_id,
            order_id=saga_id,
            state=state,
            definition_version=1,
            version=1,
            started_at=now,
            updated_at=now,
        )

    assert SagaSummary.objects.state_counts() == {
        "running": 2,
        "compensating": 0,
        "completed": 0,
        "compensated": 1,
        "compensation_failed": 0,
    }
