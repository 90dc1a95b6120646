"""The Payment aggregate's rules: decided once, positive amounts, refunds only after a charge."""

from decimal import Decimal

import pytest

from payments import events
from payments.aggregates import Payment, PaymentError, PaymentNotRefundable


def new_payment(payment_id="pay-1"):
    return Payment(payment_id)


def processed_payment(payment_id="pay-1"):
    payment = Payment(payment_id)
    payment.processed(customer_id="c-1", amount=Decimal("10"), transaction_id="txn_1")
    return payment


def failed_payment(payment_id="pay-1"):
    payment = Payment(payment_id)
    payment.failed(customer_id="c-1", amount=Decimal("10"), reason="card_declined")
    return payment


def test_a_new_payment_can_be_processed_with_a_two_place_amount():
    payment = processed_payment()

    assert (payment.status, payment.transaction_id, payment.amount) == (
        Payment.PROCESSED,
        "txn_1",
        "10.00",
    )
    [event] = payment.pending_events
    assert event.event_type == events.PAYMENT_PROCESSED
    assert event.payload == {
        "payment_id": "pay-1",
        "customer_id": "c-1",
        "amount": "10.00",
        "transaction_id": "txn_1",
    }


def test_a_new_payment_can_fail_with_a_reason():
    payment = failed_payment()

    assert (payment.status, payment.reason, payment.transaction_id) == (
        Payment.FAILED,
        "card_declined",
        "",
    )
    [event] = payment.pending_events
    assert event.event_type == events.PAYMENT_FAILED
    assert event.payload["reason"] == "card_declined"
    assert event.payload["amount"] == "10.00"


@pytest.mark.parametrize("decide", [processed_payment, failed_payment])
def test_a_decided_payment_cannot_be_processed_or_failed_again(decide):
    payment = decide()

    with pytest.raises(PaymentError, match="decided already"):
        payment.processed(customer_id="c-1", amount=Decimal("10"), transaction_id="txn_2")
    with pytest.raises(PaymentError, match="decided already"):
        payment.failed(customer_id="c-1", amount=Decimal("10"), reason="card_declined")
    assert len(payment.pending_events) == 1


def test_a_refunded_payment_cannot_be_processed_again():
    payment = processed_payment()
    payment.refunded()

    with pytest.raises(PaymentError, match="decided already"):
        payment.processed(customer_id="c-1", amount=Decimal("10"), transaction_id="txn_2")


@pytest.mark.parametrize("amount", ["0", "0.00", "-1", "-0.01"])
def test_an_amount_that_is_not_positive_is_refused(amount):
    payment = Payment("pay-1")

    with pytest.raises(PaymentError, match="greater than 0"):
        payment.processed(customer_id="c-1", amount=Decimal(amount), transaction_id="txn_1")
    with pytest.raises(PaymentError, match="greater than 0"):
        payment.failed(customer_id="c-1", amount=Decimal(amount), reason="card_declined")
    assert payment.pending_events == []
    assert payment.status == Payment.NEW


def test_a_processed_payment_can_be_refunded_for_its_amount_and_transaction():
    payment = processed_payment()

    payment.refunded()

    assert payment.status == Payment.REFUNDED
    refund = payment.pending_events[-1]
    assert refund.event_type == events.PAYMENT_REFUNDED
    assert refund.payload == {"payment_id": "pay-1", "transaction_id": "txn_1", "amount": "10.00"}


@pytest.mark.parametrize("make", [new_payment, failed_payment])
def test_only_a_processed_payment_can_be_refunded(make):
    payment = make()
    recorded = len(payment.pending_events)

    with pytest.raises(PaymentNotRefundable, match="only a processed payment"):
        payment.refunded()

    assert len(payment.pending_events) == recorded


def test_a_refunded_payment_cannot_be_refunded_again():
    payment = processed_payment()
    payment.refunded()

    with pytest.raises(PaymentNotRefundable, match="refunded"):
        payment.refunded()


def test_payment_not_refundable_is_a_payment_error():
    assert issubclass(PaymentNotRefundable, PaymentError)


@pytest.mark.parametrize("decide", [processed_payment, failed_payment])
def test_snapshot_and_restore_give_back_the_same_state(decide):
    payment = decide()

    restored = Payment("pay-1")
    restored.restore(payment.snapshot())

    assert restored.snapshot() == payment.snapshot()
    assert (restored.status, restored.customer_id, restored.amount) == (
        payment.status,
        "c-1",
        "10.00",
    )
    assert (restored.transaction_id, restored.reason) == (payment.transaction_id, payment.reason)


def test_a_restored_processed_payment_is_still_refundable():
    restored = Payment("pay-1")
    restored.restore(processed_payment().snapshot())

    restored.refunded()

    assert restored.pending_events[-1].payload["transaction_id"] == "txn_1"
