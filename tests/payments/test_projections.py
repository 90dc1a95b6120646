"""The PaymentSummary read model: follows every outcome, and a rebuild gives the same rows."""

from decimal import Decimal

import pytest

from eventstore.models import Event
from eventstore.projections import get_projections
from eventstore.replay import rebuild, verify
from payments import events
from payments.gateway import GatewayTimeout
from payments.models import PaymentSummary
from payments.services import payment_refund

pytestmark = pytest.mark.django_db


@pytest.fixture
def projection():
    return get_projections(["payments.payments"])[0]


def summary_rows():
    """Every PaymentSummary row as plain values, in a stable order."""
    fields = get_projections(["payments.payments"])[0].compared_fields(PaymentSummary)
    return list(PaymentSummary.objects.order_by("payment_id").values(*fields))


@pytest.fixture
def mixed_outcomes(charge):
    """Processed, declined, refunded and timed-out-then-approved payments."""
    charge("pay-ok", amount="10.00", customer="c-1")
    charge("pay-declined", token="tok_decline", amount="20.50", customer="c-2")
    charge("pay-poor", token="tok_insufficient_funds", amount="5", customer="c-2")
    charge("pay-refunded", amount="7.25", customer="c-3")
    payment_refund(payment_id="pay-refunded")
    charge("pay-invalid", token="tok_bogus", amount="1.00", customer="c-1")


def test_a_processed_payment_gets_a_row_with_its_transaction(charge):
    payment = charge("pay-1", amount="10.5", customer="c-9")

    row = PaymentSummary.objects.get(payment_id="pay-1")

    assert (row.customer_id, row.amount, row.status) == ("c-9", Decimal("10.50"), "processed")
    assert (row.transaction_id, row.reason) == (payment.transaction_id, "")
    event = Event.objects.get(aggregate_id="pay-1")
    assert row.created_at == row.updated_at == event.recorded_at


def test_a_failed_payment_gets_a_row_with_its_reason_and_no_transaction(charge):
    charge("pay-1", token="tok_insufficient_funds")

    row = PaymentSummary.objects.get(payment_id="pay-1")

    assert (row.status, row.reason, row.transaction_id) == ("failed", "insufficient_funds", None)


def test_two_failed_payments_can_both_have_no_transaction_id(charge):
    charge("pay-1", token="tok_decline")
    charge("pay-2", token="tok_decline")

    assert PaymentSummary.objects.filter(transaction_id=None).count() == 2


def test_a_refund_marks_the_row_refunded_and_keeps_the_transaction(charge):
    payment = charge("pay-1")
    created_at = PaymentSummary.objects.get(payment_id="pay-1").created_at

    payment_refund(payment_id="pay-1")

    row = PaymentSummary.objects.get(payment_id="pay-1")
    refunded_at = Event.objects.get(event_type=events.PAYMENT_REFUNDED).recorded_at
    assert (row.status, row.transaction_id) == ("refunded", payment.transaction_id)
    assert (row.created_at, row.updated_at) == (created_at, refunded_at)


def test_a_timed_out_charge_leaves_no_row(charge):
    with pytest.raises(GatewayTimeout):
        charge("pay-1", token="tok_timeout")

    assert not PaymentSummary.objects.exists()


def test_the_projection_reads_only_payment_outcomes(projection):
    assert projection.event_types == {
        events.PAYMENT_PROCESSED,
        events.PAYMENT_FAILED,
        events.PAYMENT_REFUNDED,
    }
    assert projection.models == (PaymentSummary,)


def test_verify_finds_no_drift_after_a_mix_of_outcomes(mixed_outcomes, projection):
    differences, result = verify([projection])

    assert differences == []
    assert result.events == Event.objects.filter(aggregate_type=events.PAYMENT).count() == 6


def test_verify_reports_a_tampered_row(mixed_outcomes, projection):
    PaymentSummary.objects.filter(payment_id="pay-ok").update(status="failed")

    differences, _ = verify([projection])

    assert [(d.kind, d.key, d.fields) for d in differences] == [
        ("changed", {"payment_id": "pay-ok"}, ["status"])
    ]


def test_rebuild_keeps_every_row_identical(mixed_outcomes, projection):
    before = summary_rows()

    result = rebuild([projection], batch_size=2)

    assert summary_rows() == before
    assert len(before) == 5
    assert result.events == 6


def test_rebuild_restores_a_deleted_row(mixed_outcomes, projection):
    before = summary_rows()
    PaymentSummary.objects.filter(payment_id="pay-refunded").delete()

    rebuild([projection])

    assert summary_rows() == before
