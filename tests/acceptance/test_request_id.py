"""Scenario: the id of the request that placed an order travels in the metadata of every event
of the order, those its reactions append later in another pass included, and the records the
worker logs while handling them carry it."""

import logging
from io import StringIO

import pytest
from django.core.management import call_command

from eventstore.models import Event
from eventstore.observability.logs import LogContextFilter, current_context

pytestmark = pytest.mark.django_db

REQUEST_ID = "checkout-7f3a.1"


@pytest.fixture
def captured(caplog):
    """caplog, its handler filtered as the project's console handler is."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(LogContextFilter())
    return caplog


def test_an_orders_events_and_the_workers_records_carry_the_request_id_that_placed_it(
    shop, customer_client, captured, settings
):
    shop.add_product("p1", price="4.00", stock=5)
    # Nothing reacts inside the request: every reaction is the worker's, in later passes.
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False
    response = customer_client.post(
        "/api/orders/",
        {"items": [{"product_id": "p1", "quantity": 1}], "payment_token": "tok_visa_success"},
        format="json",
        headers={"X-Request-ID": REQUEST_ID},
    )
    order_id = response.json()["order_id"]
    assert response["X-Request-ID"] == REQUEST_ID
    assert current_context()["request_id"] == ""  # the request is over
    captured.clear()

    for _ in range(10):
        call_command("process_events", stdout=StringIO())
        if shop.order(customer_client, order_id)["status"] in ("completed", "cancelled"):
            break

    assert shop.order(customer_client, order_id)["status"] == "completed"
    events = Event.objects.filter(correlation_id=order_id)
    assert {"OrderCreated", "InventoryReserved", "PaymentProcessed", "OrderCompleted"} <= {
        event.event_type for event in events
    }
    assert {event.metadata.get("request_id") for event in events} == {REQUEST_ID}
    # A handler's records and an outside call's (the payment gateway's) name the request.
    handled = [record for record in captured.records if record.subscriber]
    assert handled
    assert {record.request_id for record in handled} == {REQUEST_ID}
    [charged] = [r for r in captured.records if r.getMessage().startswith("Simulated gateway")]
    assert (charged.request_id, charged.correlation_id) == (REQUEST_ID, order_id)
