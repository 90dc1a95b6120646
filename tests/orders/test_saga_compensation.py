"""OrderFulfillmentSaga when a step fails: refusals, compensations in reverse order, and
`compensate` on the step in progress."""

import pytest

from eventstore.models import Event
from eventstore.store import event_store
from orders import events
from orders.aggregates import IllegalTransition, Order, OrderNotFound, Saga, Waiting
from orders.saga import fulfilment
from tests.orders.sagas import RELEASED_ORDER, RELEASED_SAGA, order_of, reply, saga_of

pytestmark = pytest.mark.django_db


# --- failures and compensation -------------------------------------------------------------------


def test_a_refused_reservation_cancels_the_order_with_nothing_to_undo(
    make_product, place, saga_types, order_types, stock_of
):
    make_product("p1", stock=1)

    order_id = place([("p1", 2)])

    assert saga_types(order_id) == [
        events.SAGA_STARTED,
        events.INVENTORY_RESERVATION_REQUESTED,
        events.SAGA_STEP_FAILED,
        events.SAGA_COMPENSATED,
    ]
    assert order_types(order_id) == [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_FAILED,
        events.ORDER_CANCELLED,
    ]
    failed = event_store.read_stream(events.SAGA, order_id)[2]
    assert failed.payload == {
        "saga_id": order_id,
        "step": "reserve_inventory",
        "error": "refused: insufficient_stock",
        "reason": "insufficient_stock",
        "compensations": [],
    }
    saga, order = saga_of(order_id), order_of(order_id)
    assert (saga.state, saga.compensations) == (Saga.COMPENSATED, {})
    assert (order.status, order.failure_reason) == (Order.CANCELLED, "insufficient_stock")
    assert event_store.read_stream(events.ORDER, order_id)[-1].payload["reason"] == (
        "insufficient_stock"
    )
    assert stock_of("p1") == (1, 0, 0)


@pytest.mark.parametrize(
    ("token", "reason"),
    [("tok_decline", "card_declined"), ("tok_insufficient_funds", "insufficient_funds")],
)
def test_a_declined_payment_releases_the_stock_then_cancels_the_order(
    make_product, place, saga_types, order_types, stock_of, token, reason
):
    make_product("p1", stock=10)

    order_id = place([("p1", 2)], token=token)

    assert saga_types(order_id) == RELEASED_SAGA
    assert order_types(order_id) == RELEASED_ORDER
    saga = saga_of(order_id)
    assert saga.steps["process_payment"] == {"status": Saga.FAILED, "error": f"refused: {reason}"}
    assert saga.compensations["release_inventory"]["status"] == Saga.SUCCEEDED
    assert saga.state == Saga.COMPENSATED
    order = order_of(order_id)
    assert (order.status, order.failure_reason) == (Order.CANCELLED, reason)
    assert stock_of("p1") == (10, 0, 0)


def test_a_refusal_without_a_reason_fails_with_the_steps_own_reason(make_product, place):
    make_product("p1")
    order_id = place(token="tok_timeout")

    fulfilment.handle_reply(reply(events.PAYMENT_FAILED, payment_id=order_id))

    saga = saga_of(order_id)
    assert saga.steps["process_payment"] == {
        "status": Saga.FAILED,
        "error": "refused: process_payment_failed",
    }
    assert saga.failure_reason == "process_payment_failed"
    assert order_of(order_id).failure_reason == "process_payment_failed"


@pytest.mark.parametrize(
    "payload",
    [{"payment_id": "not-an-order"}, {"reservation": "misnamed"}],
    ids=["unknown order", "no order id"],
)
def test_a_reply_naming_no_saga_is_ignored(make_product, place, payload):
    make_product("p1")
    place(token="tok_timeout")
    count = Event.objects.count()

    result = fulfilment.handle_reply(reply(events.PAYMENT_PROCESSED, **payload))

    assert result is None
    assert Event.objects.count() == count


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        (events.INVENTORY_RESERVED, {"lines": [], "total_amount": "0.00"}),
        (events.PAYMENT_PROCESSED, {"transaction_id": "txn_2", "amount": "25.00"}),
        (events.PAYMENT_FAILED, {"reason": "card_declined"}),
        (events.INVENTORY_RELEASED, {"lines": []}),
        (events.PAYMENT_REFUNDED, {"transaction_id": "txn_2", "amount": "25.00"}),
    ],
)
def test_a_repeated_or_unasked_for_reply_to_a_completed_saga_changes_nothing(
    make_product, place, event_type, payload
):
    make_product("p1")
    order_id = place()
    count = Event.objects.count()
    key = fulfilment.replies[event_type].order_key

    saga = fulfilment.handle_reply(reply(event_type, **{key: order_id}, **payload))

    assert saga.state == Saga.COMPLETED
    assert Event.objects.count() == count


def test_a_repeated_release_confirmation_changes_nothing(make_product, place, saga_types):
    make_product("p1")
    order_id = place(token="tok_decline")

    fulfilment.handle_reply(reply(events.INVENTORY_RELEASED, reservation_id=order_id, lines=[]))

    assert saga_types(order_id) == RELEASED_SAGA
    assert order_of(order_id).status == Order.CANCELLED


# --- compensate ----------------------------------------------------------------------------------


def test_compensate_fails_the_step_in_progress_and_undoes_the_ones_done(
    make_product, place, run_after_commit, stock_of
):
    make_product("p1", stock=10)
    order_id = place([("p1", 2)], token="tok_timeout")
    assert stock_of("p1") == (8, 2, 0)

    with run_after_commit():
        saga = fulfilment.compensate(order_id, "process_payment")

    assert saga.steps["process_payment"] == {"status": Saga.FAILED, "error": "failed"}
    assert saga.pending_events == []
    saga, order = saga_of(order_id), order_of(order_id)
    assert saga.state == Saga.COMPENSATED
    assert (order.status, order.failure_reason) == (Order.CANCELLED, "process_payment_failed")
    assert stock_of("p1") == (10, 0, 0)


def test_compensate_records_the_error_reason_and_cause_it_is_given(make_product, place):
    make_product("p1")
    order_id = place(token="tok_timeout")
    [created] = event_store.read_stream(events.ORDER, order_id)[:1]

    fulfilment.compensate(
        order_id, "process_payment", error="staff gave up", reason="fraud_suspected", cause=created
    )

    failed = event_store.read_stream(events.SAGA, order_id)[4]
    assert failed.event_type == events.SAGA_STEP_FAILED
    assert (failed.payload["error"], failed.payload["reason"]) == (
        "staff gave up",
        "fraud_suspected",
    )
    assert failed.payload["compensations"] == ["release_inventory"]
    assert failed.metadata["causation_id"] == str(created.event_id)
    assert order_of(order_id).failure_reason == "fraud_suspected"


def test_compensate_after_the_pivot_is_refused_and_records_nothing(make_product, place):
    make_product("p1")
    order_id = place()
    count = Event.objects.count()

    with pytest.raises(IllegalTransition, match="is not waiting on 'process_payment'"):
        fulfilment.compensate(order_id, "process_payment")

    assert Event.objects.count() == count


def test_compensate_a_step_other_than_the_one_in_progress_is_refused(make_product, place):
    make_product("p1")
    order_id = place(token="tok_timeout")
    count = Event.objects.count()

    with pytest.raises(IllegalTransition, match="is not waiting on 'reserve_inventory'"):
        fulfilment.compensate(order_id, "reserve_inventory")

    assert Event.objects.count() == count
    assert saga_of(order_id).waiting_for() == Waiting("step", "process_payment")


def test_compensate_a_step_the_saga_does_not_have_is_refused(make_product, place):
    make_product("p1")
    order_id = place(token="tok_timeout")

    with pytest.raises(IllegalTransition, match="has no step 'ship_parcel'"):
        fulfilment.compensate(order_id, "ship_parcel")


def test_compensate_an_order_without_a_saga_raises_order_not_found(make_product, place):
    make_product("p1")
    order_id = place(run_saga=False)

    with pytest.raises(OrderNotFound, match="No saga runs"):
        fulfilment.compensate(order_id, "reserve_inventory")
