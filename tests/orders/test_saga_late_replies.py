"""OrderFulfillmentSaga and replies that come late or unasked for: a late success is undone, a
late refusal changes nothing."""

import pytest

from eventstore.store import event_store
from orders import events
from orders.aggregates import Order, Saga
from orders.models import SagaSummary
from orders.saga import fulfilment
from payments.aggregates import Payment
from payments.services import payments
from tests.orders.sagas import RELEASED_SAGA, late_charge, order_of, saga_of

pytestmark = pytest.mark.django_db


# --- late replies --------------------------------------------------------------------------------


def test_a_late_payment_is_refunded_and_the_order_stays_cancelled(
    timed_out_payment, run_after_commit, saga_types
):
    order_id = timed_out_payment
    assert order_of(order_id).status == Order.CANCELLED

    with run_after_commit():
        late_charge(order_id)

    assert saga_types(order_id)[len(RELEASED_SAGA) :] == [
        events.PAYMENT_REFUND_REQUESTED,
        events.SAGA_COMPENSATION_SUCCEEDED,
        events.SAGA_COMPENSATED,
    ]
    saga = saga_of(order_id)
    assert saga.state == Saga.COMPENSATED
    assert saga.compensations["refund_payment"]["status"] == Saga.SUCCEEDED
    assert order_of(order_id).status == Order.CANCELLED
    assert payments.load(order_id).status == Payment.REFUNDED


def test_a_late_payment_reply_delivered_twice_is_refunded_once(
    timed_out_payment, run_after_commit, saga_types
):
    order_id = timed_out_payment
    with run_after_commit():
        late_charge(order_id)
    [charged] = [
        event
        for event in event_store.read_stream("payment", order_id)
        if event.event_type == events.PAYMENT_PROCESSED
    ]
    before = saga_types(order_id)

    fulfilment.handle_reply(charged)

    assert saga_types(order_id) == before


def test_a_late_refusal_changes_nothing(timed_out_payment, run_after_commit, saga_types):
    order_id = timed_out_payment
    before = saga_types(order_id)

    with run_after_commit():
        late_charge(order_id, token="tok_decline")

    assert saga_types(order_id) == before
    assert order_of(order_id).status == Order.CANCELLED


def test_a_late_reservation_is_released_and_the_order_stays_cancelled(
    make_product, place, switched_off, expire_overdue, deliver, saga_types, order_types, stock_of
):
    make_product("p1", stock=10)
    with switched_off("inventory.requests"):
        order_id = place([("p1", 2)])
        expire_overdue()
        assert order_of(order_id).status == Order.CANCELLED

    deliver()  # inventory reserves after all, and is asked to release

    assert saga_types(order_id)[-4:] == [
        events.SAGA_COMPENSATED,
        events.INVENTORY_RELEASE_REQUESTED,
        events.SAGA_COMPENSATION_SUCCEEDED,
        events.SAGA_COMPENSATED,
    ]
    assert order_types(order_id) == [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_FAILED,
        events.ORDER_CANCELLED,
    ]
    assert stock_of("p1") == (10, 0, 0)


def test_a_late_payment_refunded_while_the_release_is_given_up_keeps_the_saga_failed(
    release_given_up, switched_off, run_after_commit
):
    """The saga must not report `compensated` while the stock's release is still given up:
    staff would never be shown it, and `retry_sagas` would refuse it."""
    order_id = release_given_up()
    with switched_off("inventory.requests"), run_after_commit():
        late_charge(order_id)  # refunded at once: payments.requests still answers

    saga = saga_of(order_id)
    assert saga.compensations["refund_payment"]["status"] == Saga.SUCCEEDED
    assert saga.compensations["release_inventory"]["status"] == Saga.FAILED
    assert saga.state == Saga.COMPENSATION_FAILED
    assert SagaSummary.objects.get(order_id=order_id).state == Saga.COMPENSATION_FAILED


def test_an_order_whose_compensations_all_succeed_in_the_end_is_cancelled(
    release_given_up, switched_off, run_after_commit, deliver, stock_of
):
    """Once the given-up release is answered too, nothing is left to undo: the order must be
    cancelled (not left in inventory_released)."""
    order_id = release_given_up()
    with switched_off("inventory.requests"), run_after_commit():
        late_charge(order_id)

    deliver()  # inventory answers the release after all

    assert stock_of("p1") == (10, 0, 0)
    assert {entry["status"] for entry in saga_of(order_id).compensations.values()} == {
        Saga.SUCCEEDED
    }
    assert order_of(order_id).status == Order.CANCELLED


def test_a_payment_reply_before_the_payment_was_asked_for_does_not_strand_the_order(
    make_product, place, switched_off, run_after_commit, deliver, expire_overdue
):
    """Replies are matched by order id only, so a charge of the order id that the saga did not
    ask for (yet) must not end the saga while its order is still pending."""
    make_product("p1")
    with switched_off("inventory.requests"):
        order_id = place()  # waits for the reservation
        with run_after_commit():
            late_charge(order_id)  # e.g. staff charged the order id through the payments API

    deliver()
    expire_overdue()

    saga, order = saga_of(order_id), order_of(order_id)
    assert saga.state in (Saga.COMPLETED, Saga.COMPENSATED)
    assert order.status in Order.FINAL_STATUSES


def test_a_payment_id_charged_outside_the_saga_fails_the_payment_step_at_once(
    make_product, place, switched_off, run_after_commit, deliver, stock_of, saga_types
):
    make_product("p1")
    with switched_off("inventory.requests"):
        order_id = place()  # waits for the reservation
        with run_after_commit():
            late_charge(order_id)  # a staff charge on the order's payment id, refunded at once

    deliver()  # inventory reserves; the saga cannot ask for a payment that is already decided

    saga, order = saga_of(order_id), order_of(order_id)
    assert saga.steps["process_payment"]["status"] == Saga.FAILED
    assert events.PAYMENT_REQUESTED not in saga_types(order_id)
    assert {name: entry["status"] for name, entry in saga.compensations.items()} == {
        "refund_payment": Saga.SUCCEEDED,
        "release_inventory": Saga.SUCCEEDED,
    }
    assert saga.state == Saga.COMPENSATED
    assert (order.status, order.failure_reason) == (Order.CANCELLED, "payment_conflict")
    assert stock_of("p1")[:3] == (10, 0, 0)
