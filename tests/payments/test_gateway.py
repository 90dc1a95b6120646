"""The simulated payment gateway: decisions by token, idempotency keys, the failure rate and the
latency."""

import threading
from decimal import Decimal
from types import SimpleNamespace

import pytest

from payments import gateway as gateway_module
from payments.gateway import ChargeResult, GatewayTimeout, SimulatedGateway, get_gateway
from tests import gateways

AMOUNT = Decimal("10.00")


def charge(gateway, key="charge:p-1", token="tok_visa_success"):
    return gateway.charge(idempotency_key=key, amount=AMOUNT, payment_token=token)


def test_the_success_token_is_approved_with_a_transaction_id():
    result = charge(SimulatedGateway())

    assert result.approved is True
    assert result.transaction_id.startswith("txn_")
    assert len(result.transaction_id) > len("txn_")
    assert result.reason == ""


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_decline", "card_declined"),
        ("tok_insufficient_funds", "insufficient_funds"),
        ("tok_made_up", "invalid_token"),
    ],
)
def test_declining_and_unknown_tokens_are_declined_with_their_reason(token, reason):
    result = charge(SimulatedGateway(), token=token)

    assert result == ChargeResult(approved=False, transaction_id="", reason=reason)


@pytest.mark.parametrize(
    ("token", "described"),
    [
        ("tok_visa_success", {"kind": "visa", "last4": "4242"}),
        ("tok_decline", {"kind": "visa", "last4": "0002"}),
        ("tok_insufficient_funds", {"kind": "visa", "last4": "9995"}),
        ("tok_timeout", {"kind": "token", "last4": ""}),
        ("tok_unknown_card", {"kind": "token", "last4": ""}),
    ],
)
def test_a_token_is_described_by_its_test_card_else_as_a_plain_token(token, described):
    assert SimulatedGateway().describe(token) == described


def test_distinct_charges_get_distinct_transaction_ids():
    gateway = SimulatedGateway()

    first = charge(gateway, key="charge:p-1")
    second = charge(gateway, key="charge:p-2")

    assert first.transaction_id != second.transaction_id


def test_the_timeout_token_raises_and_records_nothing():
    gateway = SimulatedGateway()

    with pytest.raises(GatewayTimeout):
        charge(gateway, token="tok_timeout")

    assert gateway.charges == {}


def test_a_key_that_timed_out_can_be_charged_later():
    gateway = SimulatedGateway()
    with pytest.raises(GatewayTimeout):
        charge(gateway, token="tok_timeout")

    result = charge(gateway, token="tok_visa_success")

    assert result.approved is True
    assert list(gateway.charges) == ["charge:p-1"]


def test_the_same_idempotency_key_returns_the_first_result_even_with_another_token():
    gateway = SimulatedGateway()
    first = charge(gateway, token="tok_visa_success")

    again = charge(gateway, token="tok_decline")
    timed_out_token = charge(gateway, token="tok_timeout")

    assert again == first
    assert timed_out_token == first
    assert gateway.charges == {"charge:p-1": first}


def test_a_declined_key_stays_declined_when_retried_with_a_good_token():
    gateway = SimulatedGateway()
    first = charge(gateway, token="tok_decline")

    again = charge(gateway, token="tok_visa_success")

    assert again == first
    assert again.approved is False


def test_failure_rate_one_declines_every_approvable_charge_as_processing_error():
    gateway = SimulatedGateway(failure_rate=1.0)

    results = [charge(gateway, key=f"charge:p-{n}") for n in range(20)]

    assert {(r.approved, r.reason) for r in results} == {(False, "processing_error")}


def test_failure_rate_keeps_the_token_reason_of_declining_tokens():
    gateway = SimulatedGateway(failure_rate=1.0)

    result = charge(gateway, token="tok_decline")

    assert result.reason == "card_declined"


def test_failure_rate_zero_never_declines_an_approvable_charge():
    gateway = SimulatedGateway(failure_rate=0.0)

    results = [charge(gateway, key=f"charge:p-{n}") for n in range(200)]

    assert all(result.approved for result in results)


def test_failure_rate_decisions_are_deterministic_for_a_seed_and_partial():
    keys = [f"charge:p-{n}" for n in range(200)]
    first = SimulatedGateway(failure_rate=0.5, seed=42)
    second = SimulatedGateway(failure_rate=0.5, seed=42)

    decisions = [charge(first, key=key).approved for key in keys]
    repeated = [charge(second, key=key).approved for key in keys]

    assert decisions == repeated
    declined = decisions.count(False) / len(decisions)
    assert 0 < declined < 1


def test_another_seed_gives_other_failure_decisions():
    keys = [f"charge:p-{n}" for n in range(200)]
    seeded = [charge(SimulatedGateway(failure_rate=0.5, seed=1), key=k).approved for k in keys]
    reseeded = [charge(SimulatedGateway(failure_rate=0.5, seed=2), key=k).approved for k in keys]

    assert seeded != reseeded


@pytest.mark.parametrize("rate", [-0.1, 1.01, 2, float("nan")])
def test_a_failure_rate_outside_zero_to_one_is_refused(rate):
    with pytest.raises(ValueError, match="failure_rate"):
        SimulatedGateway(failure_rate=rate)


@pytest.mark.parametrize("latency_ms", [-1, -50])
def test_a_negative_latency_is_refused(latency_ms):
    with pytest.raises(ValueError, match="latency_ms"):
        SimulatedGateway(latency_ms=latency_ms)


@pytest.fixture
def sleeps(monkeypatch):
    """The seconds of each sleep the gateway module asks for, recorded instead of slept, so no
    test waits or times anything."""
    calls = []
    monkeypatch.setattr(gateway_module, "time", SimpleNamespace(sleep=calls.append))
    return calls


def test_every_charge_and_refund_waits_the_latency_in_seconds(sleeps):
    gateway = SimulatedGateway(latency_ms=50)

    transaction_id = charge(gateway).transaction_id
    charge(gateway)  # a repeated key is still a round trip to the provider
    charge(gateway, key="charge:p-2", token="tok_decline")
    gateway.refund(idempotency_key="refund:p-1", transaction_id=transaction_id, amount=AMOUNT)

    assert sleeps == [0.05] * 4


def test_another_call_goes_through_while_one_waits_for_the_provider(monkeypatch):
    """The latency is waited without the gateway's lock: a second call, made from another
    thread while the first waits, is answered before the first one's wait ends."""
    gateway = SimulatedGateway(latency_ms=20)
    answered = []

    def sleep(_seconds):
        if threading.current_thread() is not threading.main_thread():
            return  # the second call's own wait
        other = threading.Thread(
            target=lambda: answered.append(charge(gateway, key="charge:p-2").approved)
        )
        other.start()
        other.join(timeout=5)

    monkeypatch.setattr(gateway_module, "time", SimpleNamespace(sleep=sleep))

    charge(gateway)

    assert answered == [True]


def test_no_latency_means_no_sleep(sleeps):
    gateway = SimulatedGateway()

    transaction_id = charge(gateway).transaction_id
    gateway.refund(idempotency_key="refund:p-1", transaction_id=transaction_id, amount=AMOUNT)

    assert gateway.latency_ms == 0
    assert sleeps == []


def test_a_refund_under_the_same_key_is_recorded_once():
    gateway = SimulatedGateway()
    transaction_id = charge(gateway).transaction_id

    gateway.refund(idempotency_key="refund:p-1", transaction_id=transaction_id, amount=AMOUNT)
    gateway.refund(idempotency_key="refund:p-1", transaction_id="txn_other", amount=AMOUNT)

    assert gateway.refunds == {"refund:p-1": transaction_id}


def test_get_gateway_builds_the_configured_class_with_the_configured_rate_and_seed(settings):
    settings.PAYMENTS_GATEWAY = "payments.gateway.SimulatedGateway"
    settings.PAYMENTS_FAILURE_RATE = 0.25
    settings.PAYMENTS_FAILURE_SEED = 7
    settings.PAYMENTS_GATEWAY_LATENCY_MS = 50
    get_gateway.cache_clear()

    gateway = get_gateway()

    assert type(gateway) is SimulatedGateway
    assert (gateway.failure_rate, gateway.seed, gateway.latency_ms) == (0.25, 7, 50)
    assert get_gateway() is gateway


class RecordingGateway(SimulatedGateway):
    """A stand-in provider class, to show the setting picks the class."""


def test_get_gateway_imports_the_dotted_path_in_the_setting(settings):
    settings.PAYMENTS_GATEWAY = f"{__name__}.RecordingGateway"
    settings.PAYMENTS_FAILURE_RATE = 1.0
    settings.PAYMENTS_FAILURE_SEED = 3
    get_gateway.cache_clear()

    gateway = get_gateway()

    assert type(gateway) is RecordingGateway
    assert (gateway.failure_rate, gateway.seed) == (1.0, 3)


def test_changing_a_payments_setting_builds_the_gateway_anew(settings):
    before = get_gateway()

    settings.PAYMENTS_FAILURE_RATE = 1.0

    after = get_gateway()
    assert after is not before
    assert after.failure_rate == 1.0


def test_find_charge_tells_the_answer_a_key_got_and_charges_nothing():
    gateway = SimulatedGateway()
    approved = charge(gateway, key="charge:p-1")
    with pytest.raises(GatewayTimeout):
        charge(gateway, key="charge:p-2", token="tok_timeout")

    assert gateway.find_charge(idempotency_key="charge:p-1") == approved
    assert gateway.find_charge(idempotency_key="charge:p-2") is None
    assert gateway.find_charge(idempotency_key="charge:p-3") is None
    assert list(gateway.charges) == ["charge:p-1"]


def test_the_recording_gateway_finds_a_charge_another_process_made(tmp_path, monkeypatch):
    # Each process (a Celery worker) has its own RecordingGateway; the file is the provider's
    # record, so a worker that takes over a killed one's call finds what that one was answered.
    monkeypatch.setenv(gateways.FILE_VARIABLE, str(tmp_path / "calls.jsonl"))
    first, second = gateways.RecordingGateway(), gateways.RecordingGateway()
    made = first.charge(
        idempotency_key="charge:o-1", amount=Decimal("5.00"), payment_token=gateways.DEFAULT_TOKEN
    )

    assert second.find_charge(idempotency_key="charge:o-1") == made
    assert second.find_charge(idempotency_key="charge:o-2") is None
