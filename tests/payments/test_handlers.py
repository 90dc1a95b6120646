"""The payments.requests subscriber: answers saga requests once, calling the gateway outside the
checkpoint's transaction, retrying what the gateway left unanswered, never blocking on a refusal."""

import logging
import uuid
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from eventstore.follower.effects import run_due
from eventstore.follower.subscriptions import catch_up, get_subscribers
from eventstore.models import Checkpoint, Effect, Event, VaultedSecret
from eventstore.store import NewEvent
from eventstore.vault import vault_erase, vault_put
from payments import events, services
from payments.gateway import GatewayTimeout, get_gateway

pytestmark = pytest.mark.django_db

ORDER_ID = "order-42"


class WorkerDied(BaseException):
    """Stands for the process dying: nothing below it catches it."""


@pytest.fixture
def subscriber():
    """The registered payment request handler."""
    return get_subscribers(["payments.requests"])[0]


@pytest.fixture
def request_payment(store):
    """A function appending a PaymentRequested for an order, as the saga does: the token in
    the vault, the request naming it."""

    def append(payment_id=ORDER_ID, *, token="tok_visa_success", amount="12.50", order=None):
        order = order or payment_id
        payload = {
            "payment_id": payment_id,
            "customer_id": "c-1",
            "amount": amount,
            "payment_token_ref": vault_put(
                kind="payment_token", secret=token, retention=timedelta(hours=1)
            ),
        }
        new = NewEvent(events.PAYMENT_REQUESTED, payload, {"correlation_id": order})
        return store.append_to_stream("saga", f"saga-{uuid.uuid4().hex[:8]}", [new])[0]

    return append


@pytest.fixture
def request_refund(store):
    """A function appending a PaymentRefundRequested, as the saga's compensation does."""

    def append(payment_id=ORDER_ID):
        new = NewEvent(
            events.PAYMENT_REFUND_REQUESTED,
            {"payment_id": payment_id},
            {"correlation_id": payment_id},
        )
        return store.append_to_stream("saga", f"saga-{uuid.uuid4().hex[:8]}", [new])[0]

    return append


def replies(event_type=None):
    """The events on payment streams, in log order."""
    query = Event.objects.filter(aggregate_type=events.PAYMENT).order_by("position")
    if event_type is not None:
        query = query.filter(event_type=event_type)
    return list(query)


def checkpoint():
    return Checkpoint.objects.get(subscriber="payments.requests")


def test_the_handler_is_registered_for_the_saga_requests(subscriber):
    assert subscriber.event_types == {events.PAYMENT_REQUESTED, events.PAYMENT_REFUND_REQUESTED}


def test_an_approved_request_is_answered_with_payment_processed_caused_by_it(
    subscriber, request_payment
):
    requested = request_payment()

    result = catch_up(subscriber)

    [reply] = replies()
    assert reply.event_type == events.PAYMENT_PROCESSED
    assert reply.aggregate_id == ORDER_ID
    assert reply.payload["amount"] == "12.50"
    assert reply.payload["customer_id"] == "c-1"
    assert reply.payload["transaction_id"].startswith("txn_")
    assert reply.metadata == {
        "correlation_id": ORDER_ID,
        "causation_id": str(requested.event_id),
        "actor": "service:payments",
    }
    assert (result.handled, result.position, result.error) == (1, requested.position, "")


@pytest.mark.parametrize(
    ("token", "reason"),
    [("tok_decline", "card_declined"), ("tok_insufficient_funds", "insufficient_funds")],
)
def test_a_declined_request_is_answered_with_payment_failed_and_its_reason(
    subscriber, request_payment, token, reason
):
    requested = request_payment(token=token)

    catch_up(subscriber)

    [reply] = replies()
    assert reply.event_type == events.PAYMENT_FAILED
    assert reply.payload["reason"] == reason
    assert reply.metadata["correlation_id"] == ORDER_ID
    assert reply.metadata["causation_id"] == str(requested.event_id)
    assert reply.metadata["actor"] == "service:payments"


@pytest.mark.parametrize("token", ["tok_visa_success", "tok_decline"])
def test_the_token_is_erased_from_the_vault_once_the_charge_is_decided(
    subscriber, request_payment, token
):
    requested = request_payment(token=token)

    catch_up(subscriber)

    assert len(replies()) == 1
    assert not VaultedSecret.objects.filter(pk=requested.payload["payment_token_ref"]).exists()


def test_a_request_whose_token_is_no_longer_in_the_vault_fails_with_token_expired(
    subscriber, request_payment, monkeypatch
):
    requested = request_payment()
    vault_erase(requested.payload["payment_token_ref"])
    monkeypatch.setattr(get_gateway(), "charge", None)  # must not be called

    catch_up(subscriber)

    [reply] = replies()
    assert reply.event_type == events.PAYMENT_FAILED
    assert reply.payload == {
        "payment_id": ORDER_ID,
        "customer_id": "c-1",
        "amount": "12.50",
        "reason": "token_expired",
    }


def test_a_token_no_configured_key_decrypts_fails_with_token_expired(
    subscriber, request_payment, settings, monkeypatch
):
    request_payment()  # under the tests' key
    settings.VAULT_KEYS = [Fernet.generate_key().decode()]  # that key removed before a rotation
    monkeypatch.setattr(get_gateway(), "charge", None)  # must not be called

    catch_up(subscriber)

    [reply] = replies()
    assert (reply.event_type, reply.payload["reason"]) == (events.PAYMENT_FAILED, "token_expired")
    assert not VaultedSecret.objects.exists()


def test_a_token_past_its_retention_is_not_charged(subscriber, store, monkeypatch):
    reference = vault_put(kind="payment_token", secret="tok_visa_success", retention=timedelta(0))
    payload = {"payment_id": ORDER_ID, "customer_id": "c-1", "amount": "12.50"}
    new = NewEvent(
        events.PAYMENT_REQUESTED,
        {**payload, "payment_token_ref": reference},
        {"correlation_id": ORDER_ID},
    )
    store.append_to_stream("saga", "saga-1", [new])
    monkeypatch.setattr(get_gateway(), "charge", None)  # must not be called

    catch_up(subscriber)

    [reply] = replies()
    assert (reply.event_type, reply.payload["reason"]) == (events.PAYMENT_FAILED, "token_expired")
    assert not VaultedSecret.objects.exists()


def test_a_request_stored_with_a_raw_token_reads_masked_and_fails_with_token_expired(
    subscriber, store, monkeypatch
):
    legacy = {
        "payment_id": ORDER_ID,
        "customer_id": "c-1",
        "amount": "12.50",
        "payment_token": "tok_visa_success",
        "step": "process_payment",
    }
    new = NewEvent(events.PAYMENT_REQUESTED, legacy, {"correlation_id": ORDER_ID}, schema_version=1)
    [requested] = store.append_to_stream("saga", "saga-1", [new])
    monkeypatch.setattr(get_gateway(), "charge", None)  # must not be called

    catch_up(subscriber)

    assert "payment_token" not in requested.payload
    assert requested.payload["payment_token_ref"] is None
    [reply] = replies()
    assert (reply.event_type, reply.payload["reason"]) == (events.PAYMENT_FAILED, "token_expired")


def test_a_timed_out_charge_keeps_its_token_for_the_next_attempt(
    subscriber, request_payment, settings
):
    settings.EVENTSTORE_EFFECT_BACKOFF = 30
    requested = request_payment(token="tok_timeout")

    catch_up(subscriber)

    assert replies() == []
    assert VaultedSecret.objects.filter(pk=requested.payload["payment_token_ref"]).exists()


def test_a_request_delivered_twice_charges_once(subscriber, request_payment):
    requested = request_payment()

    subscriber.handle(requested)
    subscriber.handle(requested)
    calls = run_due(subscriber)

    assert calls == 1
    assert len(replies()) == 1
    assert list(get_gateway().charges) == [f"charge:{ORDER_ID}"]


def test_two_requests_for_the_same_payment_id_charge_once_with_the_first_outcome(
    subscriber, request_payment
):
    request_payment(token="tok_visa_success")
    request_payment(token="tok_decline")

    result = catch_up(subscriber)

    assert result.handled == 2
    assert [reply.event_type for reply in replies()] == [events.PAYMENT_PROCESSED]
    assert len(get_gateway().charges) == 1


def test_a_gateway_timeout_writes_no_reply_and_is_retried_later(
    subscriber, request_payment, caplog, settings
):
    settings.EVENTSTORE_EFFECT_BACKOFF = 30
    requested = request_payment(token="tok_timeout")

    with caplog.at_level(logging.WARNING, logger="eventstore.follower.effects"):
        result = catch_up(subscriber)

    assert replies() == []
    [warning] = [
        record for record in caplog.records if record.name == "eventstore.follower.effects"
    ]
    assert "GatewayTimeout" in warning.getMessage()
    assert "will retry" in warning.getMessage()
    effect = Effect.objects.get(subscriber=subscriber.name)
    assert (effect.status, effect.attempts, effect.position) == ("pending", 1, requested.position)
    assert effect.due_at > timezone.now() + timedelta(seconds=25)
    assert (checkpoint().position, checkpoint().last_error) == (requested.position, "")
    assert (result.error, result.calls) == ("", 1)


def test_a_gateway_that_never_answers_is_asked_up_to_the_attempts_setting_then_parked(
    subscriber, request_payment, settings
):
    settings.EVENTSTORE_EFFECT_BACKOFF = 0
    settings.EVENTSTORE_EFFECT_ATTEMPTS = 3
    request_payment(token="tok_timeout")

    result = catch_up(subscriber)

    effect = Effect.objects.get(subscriber=subscriber.name)
    assert (result.calls, effect.status, effect.attempts) == (3, "parked", 3)
    assert effect.last_error.startswith("GatewayTimeout")
    assert replies() == []


def test_a_timed_out_charge_that_is_answered_on_retry_records_one_outcome(
    subscriber, request_payment, settings, monkeypatch
):
    settings.EVENTSTORE_EFFECT_BACKOFF = 0
    gateway = get_gateway()
    real_charge = gateway.charge
    answers = iter([GatewayTimeout("no answer"), None])

    def charge_once_silent(**kwargs):
        answer = next(answers)
        if answer is not None:
            raise answer
        return real_charge(**kwargs)

    monkeypatch.setattr(gateway, "charge", charge_once_silent)
    request_payment()

    result = catch_up(subscriber)

    assert result.calls == 2
    assert [reply.event_type for reply in replies()] == [events.PAYMENT_PROCESSED]
    assert Effect.objects.get(subscriber=subscriber.name).status == "done"


def test_a_request_after_a_timed_out_one_is_still_handled(subscriber, request_payment):
    request_payment("order-1", token="tok_timeout")
    later = request_payment("order-2")

    catch_up(subscriber)

    assert [(r.aggregate_id, r.event_type) for r in replies()] == [
        ("order-2", events.PAYMENT_PROCESSED)
    ]
    assert checkpoint().position == later.position


def test_a_request_with_an_invalid_amount_is_parked_at_once_and_does_not_block_later_ones(
    subscriber, request_payment, caplog
):
    request_payment("order-1", amount="-5")
    later = request_payment("order-2")

    with caplog.at_level(logging.ERROR, logger="eventstore.follower.effects"):
        catch_up(subscriber)

    assert [(r.aggregate_id, r.event_type) for r in replies()] == [
        ("order-2", events.PAYMENT_PROCESSED)
    ]
    assert any("parked" in record.getMessage() for record in caplog.records)
    parked = Effect.objects.get(status="parked")
    assert (parked.attempts, parked.last_error[:12]) == (1, "PaymentError")
    assert (checkpoint().position, checkpoint().last_error) == (later.position, "")
    assert list(get_gateway().charges) == ["charge:order-2"]


def test_a_crash_after_the_gateway_answered_is_resumed_with_one_charge_and_one_outcome(
    subscriber, request_payment, settings, monkeypatch
):
    """The worker dies between the provider's answer and the outcome's append: its claim runs
    out, the next pass calls the provider again with the same key and records one outcome."""
    settings.EVENTSTORE_EFFECT_LEASE = 0
    real_save = services.payments.save

    def crash(*aggregates, **kwargs):
        raise WorkerDied

    monkeypatch.setattr(services.payments, "save", crash)
    request_payment()
    gateway = get_gateway()
    calls = []
    real_charge = gateway.charge
    monkeypatch.setattr(gateway, "charge", lambda **kw: calls.append(kw) or real_charge(**kw))

    with pytest.raises(WorkerDied):
        catch_up(subscriber)
    assert replies() == []
    assert Effect.objects.get(subscriber=subscriber.name).status == "pending"

    monkeypatch.setattr(services.payments, "save", real_save)
    result = catch_up(subscriber)

    assert result.calls == 1
    assert [kw["idempotency_key"] for kw in calls] == [f"charge:{ORDER_ID}"] * 2
    assert list(gateway.charges) == [f"charge:{ORDER_ID}"]
    assert [reply.event_type for reply in replies()] == [events.PAYMENT_PROCESSED]
    assert Effect.objects.get(subscriber=subscriber.name).status == "done"
    assert run_due(subscriber) == 0


def test_a_refund_request_refunds_the_processed_payment(
    subscriber, request_payment, request_refund
):
    request_payment()
    catch_up(subscriber)
    refund_requested = request_refund()

    catch_up(subscriber)

    [refund] = replies(events.PAYMENT_REFUNDED)
    processed = replies(events.PAYMENT_PROCESSED)[0]
    assert refund.payload == {
        "payment_id": ORDER_ID,
        "transaction_id": processed.payload["transaction_id"],
        "amount": "12.50",
    }
    assert refund.metadata == {
        "correlation_id": ORDER_ID,
        "causation_id": str(refund_requested.event_id),
        "actor": "service:payments",
    }
    assert get_gateway().refunds == {f"refund:{ORDER_ID}": processed.payload["transaction_id"]}


def test_a_refund_request_delivered_twice_refunds_once(subscriber, request_payment, request_refund):
    request_payment()
    catch_up(subscriber)
    refund_requested = request_refund()

    subscriber.handle(refund_requested)
    subscriber.handle(refund_requested)
    run_due(subscriber)

    assert len(replies(events.PAYMENT_REFUNDED)) == 1
    assert len(get_gateway().refunds) == 1


@pytest.mark.parametrize("known_as", ["unknown", "failed"])
def test_a_refusable_refund_request_is_parked_and_does_not_block_the_checkpoint(
    subscriber, request_payment, request_refund, caplog, known_as
):
    if known_as == "failed":
        request_payment(token="tok_decline")
        catch_up(subscriber)
    written = replies()
    refund_requested = request_refund()
    later = request_payment("order-after")

    with caplog.at_level(logging.ERROR, logger="eventstore.follower.effects"):
        result = catch_up(subscriber)

    [error] = [
        record
        for record in caplog.records
        if record.name == "eventstore.follower.effects" and record.levelno == logging.ERROR
    ]
    assert "parked" in error.getMessage()
    assert Effect.objects.get(status="parked").event_id == refund_requested.event_id
    assert replies(events.PAYMENT_REFUNDED) == []
    assert get_gateway().refunds == {}
    assert [r.aggregate_id for r in replies()] == [r.aggregate_id for r in written] + [
        "order-after"
    ]
    assert result.error == ""
    assert later.position > refund_requested.position
    assert checkpoint().position == later.position
    assert checkpoint().last_error == ""
    assert checkpoint().failed_position is None


# --- withdrawn charges ---------------------------------------------------------------------------


@pytest.fixture
def saga_gives_up(store):
    """A function appending the saga's SagaStepFailed for an order (its correlation)."""

    def append(order=ORDER_ID):
        payload = {"saga_id": order, "step": "process_payment", "reason": "payment_timeout"}
        new = NewEvent(events.SAGA_STEP_FAILED, payload, {"correlation_id": order})
        return store.append_to_stream("saga", f"saga-{uuid.uuid4().hex[:8]}", [new])[0]

    return append


def test_the_saga_giving_up_withdraws_only_its_orders_charge_not_made(
    request_payment, request_refund, saga_gives_up, subscriber
):
    charge = request_payment()
    other_order = request_payment("order-43")
    refund = request_refund()

    saga_gives_up()

    statuses = dict(Effect.objects.values_list("event_id", "status"))
    assert statuses == {
        charge.event_id: "withdrawn",
        other_order.event_id: "pending",
        refund.event_id: "pending",
    }
    assert Effect.objects.get(event_id=charge.event_id).withdrawn_reason == (
        "SagaStepFailed: payment_timeout"
    )
    assert run_due(subscriber) == 2  # the other order's charge and the refund
    assert list(get_gateway().charges) == ["charge:order-43"]
