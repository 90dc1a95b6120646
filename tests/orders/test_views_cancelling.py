"""Cancelling an order over HTTP: who may, what it answers (inline and celery dispatch), and how
an Idempotency-Key makes a repeat harmless."""

import pytest

from eventstore.models import Event
from orders import events
from orders.services import order_place
from payments.gateway import get_gateway
from tests.conftest import _client_for
from tests.factories import UserFactory
from tests.orders.endpoints import LIST_URL, detail_url, post
from tests.orders.test_views_dispatch import run_the_workers

pytestmark = pytest.mark.django_db


def cancel(client, order_id, key=None, prefer=None, **body):
    headers = {"Idempotency-Key": key} if key is not None else {}
    if prefer is not None:
        headers["Prefer"] = prefer
    return client.post(detail_url(order_id, "cancel"), body, format="json", headers=headers)


@pytest.fixture
def completed(customer_client, product, run_after_commit):
    """A function placing a completed order as the customer; returns its id."""

    def place():
        with run_after_commit():
            response = post(customer_client)
        order_id = response.json()["order_id"]
        assert customer_client.get(detail_url(order_id)).json()["status"] == "completed"
        return order_id

    return place


def test_a_customer_cancels_their_completed_order_and_gets_it_refunded(
    customer_client, completed, run_after_commit
):
    order_id = completed()

    with run_after_commit():
        response = cancel(customer_client, order_id, reason="arrived too late")

    assert response.status_code == 200
    body = response.json()
    # The cancellation saga runs once the request's transaction commits.
    assert (body["status"], body["cancellation_note"]) == ("cancelling", "arrived too late")
    assert "Idempotent-Replayed" not in response
    assert customer_client.get(detail_url(order_id)).json()["status"] == "refunded"
    requested = Event.objects.get(event_type=events.ORDER_CANCELLATION_REQUESTED)
    assert requested.payload["requested_by"] == f"user:{customer_client.user.pk}"
    saga = customer_client.get(detail_url(order_id, "saga")).json()
    assert saga["kind"] == "fulfilment"
    assert (saga["cancellation"]["kind"], saga["cancellation"]["state"]) == (
        "cancellation",
        "completed",
    )
    listed = customer_client.get(LIST_URL, {"status": "refunded"}).json()["results"]
    assert [order["order_id"] for order in listed] == [order_id]


def test_another_customers_order_is_404_and_nothing_is_written(completed, event_count):
    order_id = completed()
    before = event_count()

    response = cancel(_client_for(UserFactory()), order_id)

    assert response.status_code == 404
    assert event_count() == before


def test_staff_cancel_any_order(completed, staff_client, run_after_commit):
    order_id = completed()

    with run_after_commit():
        response = cancel(staff_client, order_id)

    assert response.status_code == 200
    assert staff_client.get(detail_url(order_id)).json()["status"] == "refunded"


def test_a_second_cancellation_is_409_with_the_current_status(
    customer_client, completed, run_after_commit
):
    order_id = completed()
    with run_after_commit():
        cancel(customer_client, order_id)

    response = cancel(customer_client, order_id)

    assert response.status_code == 409
    assert response.json()["status"] == "refunded"
    assert len(get_gateway().refunds) == 1


def test_a_repeat_with_the_same_idempotency_key_is_a_replay(
    customer_client, completed, run_after_commit, event_count
):
    order_id = completed()
    with run_after_commit():
        first = cancel(customer_client, order_id, key="cancel-1")
    before = event_count()

    again = cancel(customer_client, order_id, key="cancel-1")

    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["order_id"] == order_id
    assert again.json()["status"] == "refunded"
    assert event_count() == before


def test_a_reason_over_500_characters_is_400(customer_client, completed, event_count):
    order_id = completed()
    before = event_count()

    response = cancel(customer_client, order_id, reason="x" * 501)

    assert response.status_code == 400
    assert "reason" in response.json()
    assert event_count() == before


def test_with_celery_dispatch_the_cancellation_answers_202_until_the_workers_refund(
    customer_client, product, settings
):
    settings.EVENTSTORE_DISPATCH = "celery"
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False
    placed = order_place(
        customer_id=str(customer_client.user.pk), items=[{"product_id": "p1", "quantity": 1}]
    )
    run_the_workers()

    response = cancel(customer_client, placed.order.id)

    assert (response.status_code, response.json()["status"]) == (202, "cancelling")
    run_the_workers()
    order = customer_client.get(detail_url(placed.order.id)).json()
    assert order["status"] == "refunded"
