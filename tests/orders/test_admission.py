"""Overload met at the door: the backlog (the oldest work not started) and placing an order
while it is older than ADMISSION_MAX_BACKLOG_SECONDS (eventstore.follower.admission)."""

import time
from datetime import timedelta

import pytest

from eventstore.follower.admission import backlog_seconds, forget_last_check
from eventstore.models import Effect, Event
from orders import events
from tests.orders.endpoints import LIST_URL, post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_check():
    """Every test checks the backlog afresh, not the one a test before it left."""
    forget_last_check()
    yield
    forget_last_check()


def test_with_every_subscriber_caught_up_and_no_call_owed_nothing_waits(product, place):
    place()

    assert backlog_seconds() == 0.0


def test_an_event_a_subscriber_has_not_handled_is_the_backlog(product, deliver, place):
    deliver()  # every subscriber has its checkpoints
    order_id = place(run_saga=False)  # nobody handled its OrderCreated yet
    created = Event.objects.get(correlation_id=order_id, event_type=events.ORDER_CREATED)

    assert backlog_seconds(now=created.recorded_at + timedelta(seconds=42)) == 42.0

    deliver()
    assert backlog_seconds(now=created.recorded_at + timedelta(seconds=42)) == 0.0


def test_a_call_owed_and_not_begun_is_the_backlog(place_waiting):
    order_id = place_waiting()
    request = Event.objects.get(correlation_id=order_id, event_type=events.PAYMENT_REQUESTED)
    call = Effect.objects.filter(event_id=request.event_id)
    due = call.get().due_at
    assert backlog_seconds(now=due + timedelta(seconds=9)) == 0.0  # begun: not waiting

    call.update(attempts=0, started_at=None)  # as if no worker had taken it yet

    assert backlog_seconds(now=due + timedelta(seconds=9)) == 9.0


def test_an_order_placed_while_the_backlog_is_too_old_is_refused_with_429_and_nothing_written(
    customer_client, product, deliver, place, settings
):
    settings.ADMISSION_MAX_BACKLOG_SECONDS = 0.001
    deliver()
    place(run_saga=False)
    time.sleep(0.01)
    count = Event.objects.count()
    forget_last_check()  # placing checked the backlog before that order was written

    response = post(customer_client, key="k-1")

    assert response.status_code == 429
    assert response["Retry-After"] == "5"
    assert "nothing was written" in response.json()["detail"]
    assert Event.objects.count() == count

    deliver()
    forget_last_check()
    assert post(customer_client, key="k-1").status_code == 201


def test_with_the_limit_at_0_orders_are_never_refused(customer_client, product, place, settings):
    settings.ADMISSION_MAX_BACKLOG_SECONDS = 0
    place(run_saga=False)
    time.sleep(0.01)
    forget_last_check()

    assert customer_client.post(
        LIST_URL, {"items": [{"product_id": "p1", "quantity": 1}]}, format="json"
    ).status_code in (201, 202)
