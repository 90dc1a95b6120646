"""Placing an order with celery dispatch: 202 while the saga runs, and `Prefer: wait`."""

import time

import pytest

from eventstore.follower.subscriptions import catch_up_all
from orders import services as order_services
from tests.orders.endpoints import assert_replayed, post

pytestmark = pytest.mark.django_db

# --- celery dispatch: 202, and Prefer: wait ------------------------------------------------------


@pytest.fixture
def celery_dispatch(settings):
    """Celery dispatch with no worker anywhere: nothing in this process runs an order's saga
    (no after-commit wake-up either), so a placed order stays pending until a test runs it."""
    settings.EVENTSTORE_DISPATCH = "celery"
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False


class StoppedClock:
    """Stands in for the `time` module of orders/services.py: a sleep moves the clock on at once
    and is noted; `on_first_sleep` (if set) runs during the first one, as a worker would."""

    def __init__(self):
        self.now = 1000.0
        self.slept = []
        self.on_first_sleep = None

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds
        if self.on_first_sleep is not None:
            action, self.on_first_sleep = self.on_first_sleep, None
            action()


@pytest.fixture
def clock(monkeypatch):
    """The clock order_wait_final waits by, stopped: waiting takes no real time."""
    stopped = StoppedClock()
    monkeypatch.setattr(order_services, "time", stopped)
    return stopped


def run_the_workers():
    """What the Celery workers would do: catch every subscriber up until none has work left."""
    for _ in range(50):
        if not any(result.handled or result.calls for result in catch_up_all()):
            return
    raise AssertionError("the subscribers never ran out of work")


def test_with_celery_dispatch_placing_answers_202_with_the_pending_order_and_its_location(
    celery_dispatch, customer_client, product
):
    response = post(customer_client)

    assert response.status_code == 202
    order = response.json()
    assert response["Location"] == f"/api/orders/{order['order_id']}/"
    assert (order["status"], order["total_amount"]) == ("pending", None)
    assert order["customer_id"] == str(customer_client.user.pk)
    assert "Preference-Applied" not in response
    assert "Idempotent-Replayed" not in response


def test_with_celery_dispatch_a_replay_answers_202_and_says_it_is_one(
    celery_dispatch, customer_client, product, event_count
):
    first = post(customer_client, key="order-1")
    before = event_count()

    again = post(customer_client, key="order-1")

    assert_replayed(first, again, 202)
    assert event_count() == before


def test_with_celery_dispatch_an_order_already_final_answers_201(
    celery_dispatch, customer_client, product
):
    first = post(customer_client, key="order-1")
    run_the_workers()

    again = post(customer_client, key="order-1")

    assert (first.status_code, again.status_code) == (202, 201)
    assert again.json()["status"] == "completed"
    assert again["Idempotent-Replayed"] == "true"


def test_prefer_wait_answers_202_when_the_order_is_not_final_in_time(
    celery_dispatch, customer_client, product
):
    started = time.monotonic()

    response = post(customer_client, prefer="wait=1")

    waited = time.monotonic() - started
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert response["Preference-Applied"] == "wait=1"
    assert response["Location"] == f"/api/orders/{response.json()['order_id']}/"
    assert 1 <= waited < 5


def test_prefer_wait_looks_again_more_and_more_slowly_up_to_its_seconds(
    celery_dispatch, customer_client, product, clock
):
    response = post(customer_client, prefer="wait=1")

    assert response.status_code == 202
    assert clock.slept == pytest.approx([0.05, 0.1, 0.2, 0.2, 0.2, 0.2, 0.05])
    assert sum(clock.slept) == pytest.approx(1)


def test_prefer_wait_answers_201_with_the_final_order_once_the_workers_finish_it(
    celery_dispatch, customer_client, product, clock
):
    clock.on_first_sleep = run_the_workers

    response = post(customer_client, prefer="respond-async, wait=5")

    assert response.status_code == 201
    order = response.json()
    assert (order["status"], order["total_amount"]) == ("completed", "25.00")
    assert response["Preference-Applied"] == "wait=5"
    assert response["Location"] == f"/api/orders/{order['order_id']}/"
    assert clock.slept == [0.05]  # one check, the workers' run, and the second check


def test_prefer_wait_answers_201_when_the_order_is_cancelled_meanwhile(
    celery_dispatch, customer_client, product, clock
):
    clock.on_first_sleep = run_the_workers

    response = post(customer_client, prefer="wait=5", payment_token="tok_decline")

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["cancel_reason"]) == (
        "cancelled",
        "card_declined",
    )


def test_prefer_wait_over_10_seconds_waits_10(celery_dispatch, customer_client, product, clock):
    response = post(customer_client, prefer="wait=50")

    assert response.status_code == 202
    assert response["Preference-Applied"] == "wait=10"
    assert sum(clock.slept) == pytest.approx(10)


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-1", "wait=0", "respond-async"])
def test_a_prefer_header_without_a_readable_wait_is_ignored(
    celery_dispatch, customer_client, product, clock, prefer
):
    response = post(customer_client, prefer=prefer)

    assert response.status_code == 202
    assert "Preference-Applied" not in response
    assert clock.slept == []


@pytest.mark.parametrize("prefer", ["wait=5", "wait=abc"])
def test_with_inline_dispatch_prefer_changes_nothing(
    settings, customer_client, product, clock, prefer
):
    settings.EVENTSTORE_DISPATCH = "inline"

    response = post(customer_client, prefer=prefer)

    assert response.status_code == 201
    assert "Preference-Applied" not in response
    assert clock.slept == []
