"""Scenario: an order placed while another writer holds the event log's lock for longer than
the lock timeout answers 503 with Retry-After, and writes nothing."""

import pytest
from django.db import connection

from eventstore.models import Event
from tests.threads import holding_the_log_lock

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wait_briefly_for_the_log_lock(settings):
    """Make this thread's appends give up after 100 ms of waiting for the log's lock."""
    if connection.vendor == "postgresql":
        settings.EVENTSTORE_LOCK_TIMEOUT_MS = 100
    else:  # SQLite's busy timeout, on this thread's connection
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 100")
    yield
    connection.close()  # the next test connects with the settings' timeout again


def test_an_order_that_waits_past_the_lock_timeout_answers_503_and_writes_nothing(
    shop, customer_client, wait_briefly_for_the_log_lock
):
    shop.add_product("p1", price="2.00", stock=5)
    before = Event.objects.count()
    with holding_the_log_lock():
        response = customer_client.post(
            "/api/orders/",
            {"items": [{"product_id": "p1", "quantity": 1}], "payment_token": "tok_visa_success"},
            format="json",
        )

    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "nothing was written" in response.json()["detail"]
    assert Event.objects.count() == before
