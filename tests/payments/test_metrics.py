"""payments_gateway_seconds: every call to the provider is timed, by operation and outcome."""

import pytest
from prometheus_client import REGISTRY

from payments.gateway import GatewayTimeout
from payments.services import payment_refund

pytestmark = pytest.mark.django_db


def calls(operation, outcome):
    labels = {"operation": operation, "outcome": outcome}
    return REGISTRY.get_sample_value("payments_gateway_seconds_count", labels) or 0.0


@pytest.mark.parametrize(
    ("token", "outcome"),
    [("tok_visa_success", "approved"), ("tok_decline", "declined")],
)
def test_a_charge_is_timed_with_its_outcome(charge, token, outcome):
    before = calls("charge", outcome)

    charge("pay-1", token=token)

    assert calls("charge", outcome) == before + 1


def test_a_charge_the_gateway_never_answers_is_timed_as_a_timeout(charge):
    before = calls("charge", "GatewayTimeout")

    with pytest.raises(GatewayTimeout):
        charge("pay-1", token="tok_timeout")

    assert calls("charge", "GatewayTimeout") == before + 1


def test_a_repeated_charge_calls_and_times_nothing(charge):
    charge("pay-1")
    before = calls("charge", "approved")

    charge("pay-1")

    assert calls("charge", "approved") == before


def test_a_refund_is_timed(charge):
    charge("pay-1")
    before = calls("refund", "ok")

    payment_refund(payment_id="pay-1")

    assert calls("refund", "ok") == before + 1
