"""OrderFulfillmentSaga when replies do not come: `expire` fails the step or sends the
compensation again, and `sagas_expire` finds the overdue replies."""

from datetime import timedelta

import pytest
from django.utils import timezone

from eventstore.models import Effect, Event
from orders import events
from orders.aggregates import Order, Saga, Waiting
from orders.models import SagaSummary
from orders.saga import fulfilment, sagas_expire
from orders.services import orders
from tests.orders.sagas import RELEASED_SAGA, compensation_entry, order_of, saga_of

pytestmark = pytest.mark.django_db


# --- expire --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("timeout", "shown"), [(0, "0"), (2.5, "2.5"), (30.0, "30")])
def test_an_expired_payment_step_fails_with_the_timeout_and_releases_the_stock(
    make_product, place, run_after_commit, settings, saga_types, stock_of, timeout, shown
):
    make_product("p1", stock=10)
    order_id = place([("p1", 2)], token="tok_timeout")
    settings.SAGA_STEP_TIMEOUT = timeout

    with run_after_commit():
        fulfilment.expire(order_id, waiting=Waiting("step", "process_payment"))

    assert saga_types(order_id) == RELEASED_SAGA
    saga = saga_of(order_id)
    assert saga.steps["process_payment"] == {
        "status": Saga.FAILED,
        "error": f"no reply within {shown} s",
    }
    order = order_of(order_id)
    assert (order.status, order.failure_reason) == (Order.CANCELLED, "payment_timeout")
    assert stock_of("p1") == (10, 0, 0)


def test_an_expired_reservation_step_cancels_the_order_with_inventory_timeout(
    make_product, place, switched_off, expire_overdue, order_types
):
    make_product("p1")
    with switched_off("inventory.requests"):
        order_id = place()
        assert saga_of(order_id).waiting_for() == Waiting("step", "reserve_inventory")

        expire_overdue()

    assert order_types(order_id) == [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_FAILED,
        events.ORDER_CANCELLED,
    ]
    saga = saga_of(order_id)
    assert (saga.state, saga.failure_reason) == (Saga.COMPENSATED, "inventory_timeout")


@pytest.mark.parametrize(
    "waiting",
    [
        Waiting("step", "reserve_inventory"),
        Waiting("compensation", "release_inventory", 1),
        Waiting("compensation", "refund_payment", 1),
    ],
)
def test_expire_does_nothing_when_the_saga_no_longer_waits_for_that_reply(
    make_product, place, waiting
):
    make_product("p1")
    order_id = place(token="tok_timeout")
    count = Event.objects.count()

    saga = fulfilment.expire(order_id, waiting=waiting)

    assert saga.waiting_for() == Waiting("step", "process_payment")
    assert Event.objects.count() == count


def test_expire_ignores_an_attempt_that_was_already_answered_or_sent_again(
    make_product, place, switched_off, expire_overdue
):
    make_product("p1")
    order_id = place(token="tok_timeout")
    with switched_off("inventory.requests"):
        expire_overdue()  # the payment step fails: release attempt 1 is sent
        expire_overdue()  # attempt 2
        count = Event.objects.count()

        saga = fulfilment.expire(order_id, waiting=Waiting("compensation", "release_inventory", 1))

    assert saga.compensations["release_inventory"]["attempt"] == 2
    assert Event.objects.count() == count


def test_an_unanswered_compensation_is_sent_again_then_given_up(
    make_product, place, switched_off, expire_overdue, settings
):
    settings.SAGA_COMPENSATION_ATTEMPTS = 3
    make_product("p1")
    order_id = place(token="tok_timeout")
    with switched_off("inventory.requests"):
        expire_overdue()
        attempts = [saga_of(order_id).compensations["release_inventory"]["attempt"]]
        for _ in range(2):
            expire_overdue()
            attempts.append(saga_of(order_id).compensations["release_inventory"]["attempt"])
        assert saga_of(order_id).state == Saga.COMPENSATING

        expire_overdue()

    assert attempts == [1, 2, 3]
    saga = saga_of(order_id)
    assert saga.state == Saga.COMPENSATION_FAILED
    assert saga.compensations["release_inventory"] == compensation_entry(
        Saga.FAILED, attempt=3, tries=3, error="no reply after 3 request(s)"
    )
    assert saga.waiting_for() is None
    assert order_of(order_id).status == Order.PAYMENT_FAILED


# --- sagas_expire --------------------------------------------------------------------------------


def test_sagas_expire_leaves_replies_that_are_not_yet_overdue(make_product, place_waiting):
    order_id = place_waiting()

    assert sagas_expire() == []
    assert orders.load(order_id).status == Order.INVENTORY_RESERVED


def test_sagas_expire_gives_up_on_replies_older_than_the_timeout(
    make_product, place_waiting, settings
):
    settings.SAGA_STEP_TIMEOUT = 60
    order_id = place_waiting()

    acted = sagas_expire(now=timezone.now() + timedelta(seconds=61))

    assert acted == [order_id]
    assert orders.load(order_id).status == Order.PAYMENT_FAILED


def test_sagas_expire_acts_on_the_oldest_overdue_sagas_first_up_to_the_limit(
    place_waiting, settings
):
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    oldest, middle, newest = place_waiting(), place_waiting(), place_waiting()

    first = sagas_expire(limit=2)
    second = sagas_expire(limit=2)

    assert first == [oldest, middle]
    # The two sagas now wait for their stock's release (sent just now) ahead of the third.
    assert second[0] == newest
    assert SagaSummary.objects.get(order_id=newest).state == Saga.COMPENSATING


def test_sagas_expire_skips_sagas_that_wait_for_nothing(make_product, place, settings):
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    make_product("p1")
    place()  # completed

    assert sagas_expire() == []


# --- what counts as overdue: the call's own time, not the time in our queues ------------------


def _payment_call(order_id: str) -> Effect:
    request = Event.objects.get(correlation_id=order_id, event_type=events.PAYMENT_REQUESTED)
    return Effect.objects.get(event_id=request.event_id)


def test_a_started_call_is_overdue_step_timeout_after_it_began_not_after_the_request(
    place_waiting, settings
):
    settings.SAGA_STEP_TIMEOUT, settings.SAGA_QUEUE_TIMEOUT = 5, 600
    order_id = place_waiting()
    requested = SagaSummary.objects.get(order_id=order_id).waiting_since
    # The call began 100 s after the request: it waited that long in a queue.
    began = requested + timedelta(seconds=100)
    Effect.objects.filter(pk=_payment_call(order_id).pk).update(started_at=began)

    assert sagas_expire(now=began + timedelta(seconds=4)) == []
    assert sagas_expire(now=began + timedelta(seconds=5)) == [order_id]
    saga = saga_of(order_id)
    assert saga.steps["process_payment"]["error"] == "no reply within 5 s of the call"
    assert order_of(order_id).failure_reason == "payment_timeout"


def test_a_request_no_call_has_started_for_is_overdue_only_after_the_queue_timeout(
    place_waiting, settings
):
    settings.SAGA_STEP_TIMEOUT, settings.SAGA_QUEUE_TIMEOUT = 5, 60
    order_id = place_waiting()
    requested = SagaSummary.objects.get(order_id=order_id).waiting_since
    # As in celery mode while every worker is busy: the call is owed and nobody took it yet.
    Effect.objects.filter(pk=_payment_call(order_id).pk).update(started_at=None, attempts=0)

    assert sagas_expire(now=requested + timedelta(seconds=59)) == []
    assert sagas_expire(now=requested + timedelta(seconds=60)) == [order_id]
    assert saga_of(order_id).steps["process_payment"]["error"] == "not started within 60 s"


def test_a_request_its_service_answers_as_it_reads_it_waits_the_queue_timeout(
    make_product, place, switched_off, settings
):
    settings.SAGA_STEP_TIMEOUT, settings.SAGA_QUEUE_TIMEOUT = 5, 60
    make_product("p1")
    with switched_off("inventory.requests"):
        order_id = place()
    requested = SagaSummary.objects.get(order_id=order_id).waiting_since

    assert sagas_expire(now=requested + timedelta(seconds=30)) == []
    assert sagas_expire(now=requested + timedelta(seconds=60)) == [order_id]
    assert saga_of(order_id).failure_reason == "inventory_timeout"


def test_a_reply_recorded_before_the_saga_read_it_is_never_overdue(
    make_product, place, switched_off, deliver, settings
):
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    make_product("p1")
    with switched_off("payments.requests"):
        order_id = place()
    with switched_off("orders.saga"):
        deliver()  # payments charges the card; the saga has not read the answer yet
    assert Event.objects.filter(correlation_id=order_id, event_type=events.PAYMENT_PROCESSED)

    assert sagas_expire(now=timezone.now() + timedelta(days=1)) == []

    deliver()
    assert order_of(order_id).status == Order.COMPLETED
