"""The payments HTTP API per CONTRACT.md: staff-only charge, refund, list and detail."""

import pytest

from eventstore.models import Event
from payments import events
from payments.gateway import get_gateway
from payments.services import payment_refund

pytestmark = pytest.mark.django_db

CHARGE_URL = "/api/payments/charge/"
REFUND_URL = "/api/payments/refund/"
LIST_URL = "/api/payments/"


def charge_body(**overrides):
    body = {
        "payment_id": "pay-1",
        "customer_id": "c-1",
        "amount": "10.00",
        "payment_token": "tok_visa_success",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def post_charge(client, **overrides):
    return client.post(CHARGE_URL, charge_body(**overrides), format="json")


# --- charge --------------------------------------------------------------------------------------


def test_an_approved_charge_answers_200_with_the_transaction_id(staff_client, staff_user):
    response = post_charge(staff_client)

    assert response.status_code == 200
    body = response.json()
    assert body == {"success": True, "transaction_id": body["transaction_id"]}
    assert body["transaction_id"].startswith("txn_")
    event = Event.objects.get(aggregate_type=events.PAYMENT)
    assert event.event_type == events.PAYMENT_PROCESSED
    assert event.payload["transaction_id"] == body["transaction_id"]
    assert event.metadata == {
        "actor": f"user:{staff_user.pk}",
        "correlation_id": "pay-1",
        "request_id": response["X-Request-ID"],
    }


@pytest.mark.parametrize(
    ("token", "reason"),
    [("tok_decline", "card_declined"), ("tok_insufficient_funds", "insufficient_funds")],
)
def test_a_declined_charge_answers_402_with_the_reason(staff_client, token, reason):
    response = post_charge(staff_client, payment_token=token)

    assert response.status_code == 402
    assert response.json() == {"success": False, "reason": reason}
    assert Event.objects.get().event_type == events.PAYMENT_FAILED


def test_a_gateway_timeout_answers_504_and_writes_nothing(staff_client):
    response = post_charge(staff_client, payment_token="tok_timeout")

    assert response.status_code == 504
    assert response.json() == {"success": False, "reason": "gateway_timeout"}
    assert not Event.objects.exists()


def test_a_charge_retried_after_a_timeout_is_answered(staff_client):
    post_charge(staff_client, payment_token="tok_timeout")

    response = post_charge(staff_client)

    assert response.status_code == 200
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    ("first_token", "status"), [("tok_visa_success", 200), ("tok_decline", 402)]
)
def test_the_same_payment_id_again_returns_the_first_answer_and_charges_nothing(
    staff_client, first_token, status
):
    first = post_charge(staff_client, payment_token=first_token)
    count = Event.objects.count()

    again = post_charge(
        staff_client, payment_token="tok_insufficient_funds", amount="99.99", customer_id="c-2"
    )

    assert first.status_code == again.status_code == status
    assert again.json() == first.json()
    assert Event.objects.count() == count == 1
    assert len(get_gateway().charges) == 1


def test_the_payment_token_defaults_to_the_success_token(staff_client):
    response = post_charge(staff_client, payment_token=None)

    assert response.status_code == 200
    assert response.json()["success"] is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "0"),
        ("amount", "-1"),
        ("amount", "1.234"),
        ("amount", "abc"),
        ("customer_id", None),
        ("payment_id", "bad id!"),
        ("payment_id", "charge"),
        ("payment_id", "refund"),
        ("payment_token", "tok-x!"),
    ],
)
def test_an_invalid_charge_answers_400_naming_the_field_and_writes_nothing(
    staff_client, field, value
):
    response = post_charge(staff_client, **{field: value})

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not Event.objects.exists()
    assert get_gateway().charges == {}


def test_a_charge_with_malformed_json_answers_400_and_writes_nothing(staff_client):
    response = staff_client.post(
        CHARGE_URL, '{"payment_id": "pay-1", "amount": ', content_type="application/json"
    )

    assert response.status_code == 400
    assert "detail" in response.json()
    assert not Event.objects.exists()


def test_a_refund_with_malformed_json_answers_400_and_writes_nothing(staff_client):
    post_charge(staff_client)

    response = staff_client.post(REFUND_URL, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert "detail" in response.json()
    assert Event.objects.count() == 1


def test_charge_is_forbidden_to_customers(customer_client):
    response = post_charge(customer_client)

    assert response.status_code == 403
    assert "detail" in response.json()
    assert not Event.objects.exists()


def test_charge_is_refused_to_anonymous_callers(anonymous_client):
    response = post_charge(anonymous_client)

    assert response.status_code == 401
    assert not Event.objects.exists()


# --- refund --------------------------------------------------------------------------------------


def charged_transaction(client, payment_id="pay-1"):
    return post_charge(client, payment_id=payment_id).json()["transaction_id"]


def test_a_refund_answers_200_and_records_the_refund(staff_client, staff_user):
    transaction_id = charged_transaction(staff_client)

    response = staff_client.post(REFUND_URL, {"transaction_id": transaction_id}, format="json")

    assert response.status_code == 200
    assert response.json() == {"success": True}
    refund = Event.objects.get(event_type=events.PAYMENT_REFUNDED)
    assert refund.payload["transaction_id"] == transaction_id
    assert refund.metadata == {
        "actor": f"user:{staff_user.pk}",
        "correlation_id": "pay-1",
        "request_id": response["X-Request-ID"],
    }
    assert get_gateway().refunds == {"refund:pay-1": transaction_id}


def test_refunding_twice_answers_200_and_refunds_once(staff_client):
    transaction_id = charged_transaction(staff_client)

    first = staff_client.post(REFUND_URL, {"transaction_id": transaction_id}, format="json")
    second = staff_client.post(REFUND_URL, {"transaction_id": transaction_id}, format="json")

    assert first.status_code == second.status_code == 200
    assert second.json() == {"success": True}
    assert Event.objects.filter(event_type=events.PAYMENT_REFUNDED).count() == 1
    assert len(get_gateway().refunds) == 1


def test_refunding_an_unknown_transaction_answers_404(staff_client):
    charged_transaction(staff_client)

    response = staff_client.post(REFUND_URL, {"transaction_id": "txn_nope"}, format="json")

    assert response.status_code == 404
    assert "txn_nope" in response.json()["detail"]
    assert not Event.objects.filter(event_type=events.PAYMENT_REFUNDED).exists()


def test_a_refund_without_a_transaction_id_answers_400_naming_it(staff_client):
    response = staff_client.post(REFUND_URL, {}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["transaction_id"]


def test_refund_is_forbidden_to_customers(staff_client, customer_client):
    transaction_id = charged_transaction(staff_client)

    response = customer_client.post(REFUND_URL, {"transaction_id": transaction_id}, format="json")

    assert response.status_code == 403
    assert not Event.objects.filter(event_type=events.PAYMENT_REFUNDED).exists()


def test_refund_is_refused_to_anonymous_callers(anonymous_client):
    response = anonymous_client.post(REFUND_URL, {"transaction_id": "txn_x"}, format="json")

    assert response.status_code == 401


# --- list and detail -----------------------------------------------------------------------------


@pytest.fixture
def three_payments(staff_client):
    """pay-ok (c-1, processed), pay-no (c-2, failed), pay-back (c-1, refunded)."""
    post_charge(staff_client, payment_id="pay-ok", customer_id="c-1")
    post_charge(staff_client, payment_id="pay-no", customer_id="c-2", payment_token="tok_decline")
    post_charge(staff_client, payment_id="pay-back", customer_id="c-1")
    payment_refund(payment_id="pay-back")


def listed(response):
    assert response.status_code == 200
    return sorted(item["payment_id"] for item in response.json()["results"])


def test_staff_list_every_payment(staff_client, three_payments):
    response = staff_client.get(LIST_URL)

    assert listed(response) == ["pay-back", "pay-no", "pay-ok"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [("processed", ["pay-ok"]), ("failed", ["pay-no"]), ("refunded", ["pay-back"])],
)
def test_the_list_filters_by_status(staff_client, three_payments, status, expected):
    assert listed(staff_client.get(LIST_URL, {"status": status})) == expected


def test_the_list_filters_by_customer_id(staff_client, three_payments):
    assert listed(staff_client.get(LIST_URL, {"customer_id": "c-1"})) == ["pay-back", "pay-ok"]
    assert listed(staff_client.get(LIST_URL, {"customer_id": "c-9"})) == []


def test_the_list_filters_by_status_and_customer_together(staff_client, three_payments):
    response = staff_client.get(LIST_URL, {"status": "processed", "customer_id": "c-1"})

    assert listed(response) == ["pay-ok"]


def test_an_unknown_status_filter_answers_400_naming_it(staff_client, three_payments):
    response = staff_client.get(LIST_URL, {"status": "lost"})

    assert response.status_code == 400
    assert "status" in response.json()


def test_the_list_is_forbidden_to_customers(customer_client, three_payments):
    response = customer_client.get(LIST_URL)

    assert response.status_code == 403


def test_the_list_is_refused_to_anonymous_callers(anonymous_client):
    assert anonymous_client.get(LIST_URL).status_code == 401


def test_staff_see_one_payment_with_the_contract_fields(staff_client, three_payments):
    transaction_id = Event.objects.get(
        aggregate_id="pay-ok", event_type=events.PAYMENT_PROCESSED
    ).payload["transaction_id"]

    response = staff_client.get(f"{LIST_URL}pay-ok/")

    assert response.status_code == 200
    assert response.json() == {
        "payment_id": "pay-ok",
        "customer_id": "c-1",
        "amount": "10.00",
        "status": "processed",
        "transaction_id": transaction_id,
        "reason": "",
    }


def test_a_failed_payment_shows_its_reason_and_no_transaction(staff_client, three_payments):
    response = staff_client.get(f"{LIST_URL}pay-no/")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["reason"], body["transaction_id"]) == (
        "failed",
        "card_declined",
        None,
    )


def test_an_unknown_payment_answers_404(staff_client):
    response = staff_client.get(f"{LIST_URL}pay-nope/")

    assert response.status_code == 404
    assert "detail" in response.json()


def test_one_payment_is_forbidden_to_customers(customer_client, three_payments):
    response = customer_client.get(f"{LIST_URL}pay-ok/")

    assert response.status_code == 403


# --- schema --------------------------------------------------------------------------------------


def test_the_schema_documents_402_and_504_for_the_charge(staff_client):
    response = staff_client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    operation = response.json()["paths"][CHARGE_URL]["post"]
    responses = operation["responses"]
    assert {"200", "400", "402", "403", "504"} <= set(responses)
    for status in ("402", "504"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ChargeFailedOutput"}
    assert "not answer" in responses["504"]["description"]
    assert "parameters" not in operation
