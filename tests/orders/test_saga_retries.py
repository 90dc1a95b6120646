"""OrderFulfillmentSaga after it gave a compensation up: `retry` (and `saga_retry`) sends it
again with a fresh allowance, and a late confirmation resumes it."""

import pytest

from eventstore.models import Event
from orders import events
from orders.aggregates import IllegalTransition, Order, OrderNotFound, Saga
from orders.models import SagaSummary
from orders.saga import fulfilment, saga_retry, sagas_expire
from payments.aggregates import Payment
from payments.services import payments
from tests.orders.sagas import late_charge, order_of, saga_of

pytestmark = pytest.mark.django_db


# --- retry ---------------------------------------------------------------------------------------


def test_a_retried_compensation_is_answered_and_the_saga_ends_compensated(
    release_given_up, switched_off, deliver, run_after_commit, stock_of
):
    order_id = release_given_up()
    assert stock_of("p1") == (8, 2, 0)

    with run_after_commit():
        retried = saga_retry(order_id=order_id)
    deliver()

    assert retried.compensations["release_inventory"]["attempt"] == 3
    saga, order = saga_of(order_id), order_of(order_id)
    assert saga.state == Saga.COMPENSATED
    assert saga.compensations["release_inventory"]["status"] == Saga.SUCCEEDED
    assert (order.status, order.failure_reason) == (Order.CANCELLED, "payment_timeout")
    assert stock_of("p1") == (10, 0, 0)


def test_a_retry_gets_a_fresh_allowance_of_requests(release_given_up, switched_off, expire_overdue):
    order_id = release_given_up()
    with switched_off("inventory.requests"):
        fulfilment.retry(order_id)
        expire_overdue()
        resent = saga_of(order_id).compensations["release_inventory"]
        expire_overdue()

    assert (resent["status"], resent["attempt"], resent["tries"]) == (Saga.STARTED, 4, 2)
    assert saga_of(order_id).compensations["release_inventory"]["error"] == (
        "no reply after 2 request(s)"
    )


def test_a_late_answer_to_a_given_up_compensation_finishes_compensating(
    release_given_up, switched_off, deliver
):
    order_id = release_given_up()

    deliver()  # inventory answers the requests it missed, without any retry

    saga, order = saga_of(order_id), order_of(order_id)
    assert saga.state == Saga.COMPENSATED
    assert order.status == Order.CANCELLED


def test_retry_sends_again_only_the_compensations_given_up(
    timed_out_payment, switched_off, expire_overdue, deliver, saga_types, settings
):
    settings.SAGA_COMPENSATION_ATTEMPTS = 1
    order_id = timed_out_payment  # its stock release succeeded
    with switched_off("payments.requests"):
        late_charge(order_id)
        deliver()  # the saga asks for a refund nobody answers
        expire_overdue()
        assert saga_of(order_id).state == Saga.COMPENSATION_FAILED
        before = saga_types(order_id)

        fulfilment.retry(order_id)

    assert saga_types(order_id)[len(before) :] == [events.PAYMENT_REFUND_REQUESTED]
    deliver()
    saga = saga_of(order_id)
    assert saga.state == Saga.COMPENSATED
    assert {name: entry["status"] for name, entry in saga.compensations.items()} == {
        "release_inventory": Saga.SUCCEEDED,
        "refund_payment": Saga.SUCCEEDED,
    }
    assert payments.load(order_id).status == Payment.REFUNDED


@pytest.mark.parametrize("token", ["tok_visa_success", "tok_timeout", "tok_decline"])
def test_retry_is_refused_unless_the_saga_gave_up_a_compensation(make_product, place, token):
    make_product("p1")
    order_id = place(token=token)
    count = Event.objects.count()

    with pytest.raises(IllegalTransition, match="only a saga in compensation_failed"):
        fulfilment.retry(order_id)

    assert Event.objects.count() == count


def test_retry_of_an_order_without_a_saga_raises_order_not_found():
    with pytest.raises(OrderNotFound):
        fulfilment.retry("no-such-order")


# --- saga_retry ----------------------------------------------------------------------------------


def test_saga_retry_refuses_a_saga_that_gave_nothing_up(place_waiting):
    order_id = place_waiting()

    with pytest.raises(IllegalTransition, match="only a saga in compensation_failed"):
        saga_retry(order_id=order_id)


def test_saga_retry_of_an_order_without_a_saga_raises_order_not_found(make_product, place):
    make_product("p1")
    order_id = place(run_saga=False)

    with pytest.raises(OrderNotFound):
        saga_retry(order_id=order_id)


def test_saga_retry_sends_the_given_up_compensation_again(
    place_waiting, switched_off, settings, saga_types
):
    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    settings.SAGA_COMPENSATION_ATTEMPTS = 1
    order_id = place_waiting()
    sagas_expire()  # the payment step fails; the release is sent (nobody answers: no commit)
    sagas_expire()  # given up
    assert SagaSummary.objects.get(order_id=order_id).state == Saga.COMPENSATION_FAILED

    saga = saga_retry(order_id=order_id)

    assert saga.state == Saga.COMPENSATING
    assert saga_types(order_id)[-1] == events.INVENTORY_RELEASE_REQUESTED
    assert saga.compensations["release_inventory"]["attempt"] == 2
