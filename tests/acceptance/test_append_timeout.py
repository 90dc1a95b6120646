"""Scenario: an order placed while another writer holds the event log's lock for longer than
the lock timeout answers 503 with Retry-After, and writes nothing; an admin action kept
waiting as long answers a 503 page with Retry-After."""

import uuid

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from eventstore.models import Effect, Event
from tests.threads import holding_a_lock, holding_the_log_lock

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


def holding_a_row_lock(effect):
    """While the block runs, another thread holds `effect`'s row locked by an update in an
    open transaction (on SQLite, the database's write lock)."""
    return holding_a_lock(
        lambda: Effect.objects.filter(pk=effect.pk).update(attempts=F("attempts") + 1)
    )


@pytest.fixture
def lock_timeout_everywhere():
    """Make every statement of this thread's connection give up after 100 ms waiting for a lock
    (PostgreSQL's lock_timeout for the session; SQLite's busy timeout)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET lock_timeout = '100ms'")
        else:
            cursor.execute("PRAGMA busy_timeout = 100")
    yield
    connection.close()  # the next test connects with the settings' timeouts again


def test_an_admin_action_that_waits_past_the_lock_timeout_answers_a_503_page(
    admin_client, lock_timeout_everywhere
):
    parked = Effect.objects.create(
        subscriber="payments.gateway",
        event_id=uuid.uuid4(),
        position=1,
        event_type="PaymentRequested",
        status=Effect.Status.PARKED,
        due_at=timezone.now(),
    )

    with holding_a_row_lock(parked):
        response = admin_client.post(
            "/admin/eventstore/effect/",
            {"action": "retry_parked", "_selected_action": [parked.pk]},
        )

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert int(response["Retry-After"]) > 0
    assert b"Try again in" in response.content
    parked.refresh_from_db()
    assert parked.status == Effect.Status.PARKED  # the action changed nothing
