"""payment_charge and payment_refund: once per payment id, nothing written on refusal or timeout;
payment_reconcile: a withdrawn charge looked up, never made."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction

from eventstore.follower.effects import TransactionOpen
from eventstore.models import Event
from eventstore.store import ConcurrencyError
from eventstore.vault import vault_put, vault_take
from payments import events, services
from payments.aggregates import Payment, PaymentError, PaymentNotFound, PaymentNotRefundable
from payments.gateway import GatewayTimeout, get_gateway
from payments.services import payment_charge, payment_reconcile, payment_refund, payments

pytestmark = pytest.mark.django_db


# --- payment_charge ------------------------------------------------------------------------------


def test_an_approved_charge_writes_one_payment_processed_with_the_transaction(
    charge, payment_events
):
    payment = charge("pay-1", amount="10", customer="c-7")

    assert payment.status == Payment.PROCESSED
    assert payment.transaction_id.startswith("txn_")
    assert payment_events() == [
        (
            events.PAYMENT_PROCESSED,
            {
                "payment_id": "pay-1",
                "customer_id": "c-7",
                "amount": "10.00",
                "transaction_id": payment.transaction_id,
            },
        )
    ]
    assert get_gateway().charges["charge:pay-1"].transaction_id == payment.transaction_id


def test_the_charged_amount_is_stored_as_a_two_place_string(charge, payment_events):
    charge("pay-1", amount="59.9")

    [(_, payload)] = payment_events()
    assert payload["amount"] == "59.90"


def test_charge_accepts_the_amount_as_a_decimal_string(payment_events):
    payment_charge(payment_id="pay-1", customer_id="c-1", amount="12.50")

    [(event_type, payload)] = payment_events()
    assert (event_type, payload["amount"]) == (events.PAYMENT_PROCESSED, "12.50")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_decline", "card_declined"),
        ("tok_insufficient_funds", "insufficient_funds"),
        ("tok_unknown", "invalid_token"),
    ],
)
def test_a_declined_charge_writes_payment_failed_with_the_reason(
    charge, payment_events, token, reason
):
    payment = charge("pay-1", token=token)

    assert (payment.status, payment.reason) == (Payment.FAILED, reason)
    assert payment_events() == [
        (
            events.PAYMENT_FAILED,
            {"payment_id": "pay-1", "customer_id": "c-1", "amount": "10.00", "reason": reason},
        )
    ]


@pytest.mark.parametrize("amount", ["0", "-5", "12.345", "abc", "NaN"])
def test_a_charge_of_an_invalid_amount_is_refused_before_the_gateway_is_called(amount):
    with pytest.raises(PaymentError, match="amount"):
        payment_charge(payment_id="pay-1", customer_id="c-1", amount=amount)

    assert not Event.objects.exists()
    assert get_gateway().charges == {}


def test_the_default_token_is_approved():
    payment = payment_charge(payment_id="pay-1", customer_id="c-1", amount=Decimal("5"))

    assert payment.status == Payment.PROCESSED


def test_a_processing_error_from_the_failure_rate_is_recorded_as_failed(settings, charge):
    settings.PAYMENTS_FAILURE_RATE = 1.0
    get_gateway.cache_clear()

    payment = charge("pay-1")

    assert (payment.status, payment.reason) == (Payment.FAILED, "processing_error")


@pytest.mark.parametrize("first_token", ["tok_visa_success", "tok_decline"])
def test_charging_the_same_payment_id_again_returns_the_first_outcome_and_writes_nothing(
    charge, payment_events, first_token
):
    first = charge("pay-1", token=first_token, amount="10.00")
    written = payment_events()

    again = charge("pay-1", token="tok_insufficient_funds", amount="99.00", customer="c-2")

    assert (again.status, again.transaction_id, again.reason, again.amount) == (
        first.status,
        first.transaction_id,
        first.reason,
        "10.00",
    )
    assert again.customer_id == "c-1"
    assert payment_events() == written
    assert list(get_gateway().charges) == ["charge:pay-1"]


def test_charging_a_refunded_payment_again_charges_nothing(charge, payment_events):
    charge("pay-1")
    payment_refund(payment_id="pay-1")
    written = payment_events()

    again = charge("pay-1")

    assert again.status == Payment.REFUNDED
    assert payment_events() == written
    assert len(get_gateway().charges) == 1


def test_a_gateway_timeout_raises_and_writes_nothing(charge):
    with pytest.raises(GatewayTimeout):
        charge("pay-1", token="tok_timeout")

    assert not Event.objects.exists()
    assert get_gateway().charges == {}


def test_a_payment_that_timed_out_can_be_charged_later_with_another_token(charge, payment_events):
    with pytest.raises(GatewayTimeout):
        charge("pay-1", token="tok_timeout")

    payment = charge("pay-1", token="tok_visa_success")

    assert payment.status == Payment.PROCESSED
    assert [event_type for event_type, _ in payment_events()] == [events.PAYMENT_PROCESSED]


def test_a_charge_inside_a_transaction_is_refused_before_the_gateway_is_called(
    monkeypatch, payment_events
):
    gateway_calls = []
    monkeypatch.setattr(get_gateway(), "charge", lambda **kwargs: gateway_calls.append(kwargs))

    with pytest.raises(TransactionOpen), transaction.atomic():
        payment_charge(payment_id="pay-1", customer_id="c-1", amount="10")

    assert gateway_calls == []
    assert payment_events() == []


def test_a_charge_that_lost_to_another_writer_returns_the_winners_outcome(
    monkeypatch, charge, payment_events
):
    real_save = payments.save

    def save_after_a_rival_declined(*aggregates, **kwargs):
        monkeypatch.setattr(services.payments, "save", real_save)
        rival = Payment("pay-1")
        rival.failed(customer_id="c-1", amount=Decimal("10"), reason="card_declined")
        real_save(rival)
        return real_save(*aggregates, **kwargs)

    monkeypatch.setattr(services.payments, "save", save_after_a_rival_declined)

    payment = charge("pay-1", token="tok_visa_success")

    assert (payment.status, payment.reason) == (Payment.FAILED, "card_declined")
    assert [event_type for event_type, _ in payment_events()] == [events.PAYMENT_FAILED]


def test_a_conflict_with_nothing_new_stored_is_raised_and_writes_nothing(
    monkeypatch, charge, payment_events
):
    def conflicting(*aggregates, **kwargs):
        raise ConcurrencyError("payment", "pay-1", 0, 1)

    monkeypatch.setattr(services.payments, "save", conflicting)

    with pytest.raises(ConcurrencyError):
        charge("pay-1")

    assert payment_events() == []


def test_charge_metadata_lands_on_the_event():
    payment_charge(
        payment_id="pay-1",
        customer_id="c-1",
        amount=Decimal("10"),
        metadata={"correlation_id": "order-1", "actor": "user:5"},
    )

    event = Event.objects.get(aggregate_type=events.PAYMENT, aggregate_id="pay-1")
    assert event.metadata == {"correlation_id": "order-1", "actor": "user:5"}


# --- payment_refund ------------------------------------------------------------------------------


def test_a_processed_payment_is_refunded_once(charge, payment_events):
    charged = charge("pay-1", amount="10.00")

    refunded = payment_refund(payment_id="pay-1")
    again = payment_refund(payment_id="pay-1")

    assert refunded.status == again.status == Payment.REFUNDED
    assert payment_events()[1:] == [
        (
            events.PAYMENT_REFUNDED,
            {"payment_id": "pay-1", "transaction_id": charged.transaction_id, "amount": "10.00"},
        )
    ]
    assert get_gateway().refunds == {"refund:pay-1": charged.transaction_id}


def test_refunding_an_unknown_payment_raises_not_found_and_writes_nothing():
    with pytest.raises(PaymentNotFound, match="nope"):
        payment_refund(payment_id="nope")

    assert not Event.objects.exists()
    assert get_gateway().refunds == {}


def test_refunding_a_failed_payment_is_refused_before_the_gateway_is_called(
    monkeypatch, charge, payment_events
):
    charge("pay-1", token="tok_decline")
    written = payment_events()
    gateway = get_gateway()
    gateway_calls = []
    monkeypatch.setattr(gateway, "refund", lambda **kwargs: gateway_calls.append(kwargs))

    with pytest.raises(PaymentNotRefundable):
        payment_refund(payment_id="pay-1")

    assert gateway_calls == []
    assert payment_events() == written


def test_a_refund_that_lost_to_a_concurrent_refund_records_one_refund(
    monkeypatch, charge, payment_events
):
    charge("pay-1")
    real_save = payments.save

    def save_after_a_rival_refunded(*aggregates, **kwargs):
        monkeypatch.setattr(services.payments, "save", real_save)
        rival = payments.load("pay-1")
        rival.refunded()
        real_save(rival)
        return real_save(*aggregates, **kwargs)

    monkeypatch.setattr(services.payments, "save", save_after_a_rival_refunded)

    payment = payment_refund(payment_id="pay-1")

    assert payment.status == Payment.REFUNDED
    assert [event_type for event_type, _ in payment_events()] == [
        events.PAYMENT_PROCESSED,
        events.PAYMENT_REFUNDED,
    ]
    assert len(get_gateway().refunds) == 1


def test_a_refund_inside_a_transaction_is_refused_before_the_gateway_is_called(
    monkeypatch, charge, payment_events
):
    charge("pay-1")
    written = payment_events()

    with pytest.raises(TransactionOpen), transaction.atomic():
        payment_refund(payment_id="pay-1")

    assert get_gateway().refunds == {}
    assert payment_events() == written


def test_refund_metadata_lands_on_the_event(charge):
    charge("pay-1")

    payment_refund(
        payment_id="pay-1", metadata={"correlation_id": "order-1", "actor": "service:orders"}
    )

    event = Event.objects.get(event_type=events.PAYMENT_REFUNDED)
    assert event.metadata == {"correlation_id": "order-1", "actor": "service:orders"}


# --- payment_reconcile ---------------------------------------------------------------------------


def _vaulted(token="tok_visa_success"):
    return vault_put(kind="payment_token", secret=token, retention=timedelta(hours=1))


def test_reconciling_a_charge_the_gateway_made_records_its_answer_and_charges_nothing(
    payment_events,
):
    made = get_gateway().charge(
        idempotency_key="charge:pay-1", amount=Decimal("10.00"), payment_token="tok_visa_success"
    )
    reference = _vaulted()

    payment = payment_reconcile(
        payment_id="pay-1", customer_id="c-7", amount="10.00", payment_token_ref=reference
    )

    assert (payment.status, payment.transaction_id) == (Payment.PROCESSED, made.transaction_id)
    assert [event_type for event_type, _ in payment_events()] == [events.PAYMENT_PROCESSED]
    assert list(get_gateway().charges) == ["charge:pay-1"]
    assert vault_take(reference) is None  # erased: no charge follows


def test_reconciling_a_charge_the_gateway_never_made_records_nothing(payment_events):
    reference = _vaulted("tok_timeout")

    payment = payment_reconcile(
        payment_id="pay-1", customer_id="c-7", amount="10.00", payment_token_ref=reference
    )

    assert payment.status == Payment.NEW
    assert payment_events() == []
    assert get_gateway().charges == {}
    assert vault_take(reference) is None


def test_reconciling_a_decided_payment_asks_the_gateway_nothing(charge, monkeypatch):
    charge("pay-1", amount="10")
    monkeypatch.setattr(
        get_gateway(), "find_charge", lambda **kwargs: pytest.fail("the gateway was asked")
    )

    payment = payment_reconcile(
        payment_id="pay-1", customer_id="c-7", amount="10.00", payment_token_ref=None
    )

    assert payment.status == Payment.PROCESSED
