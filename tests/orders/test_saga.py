"""OrderFulfillmentSaga: every step in order, compensations in reverse, timeouts, late replies,
retries, and the definition version a saga keeps."""

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from eventstore.models import Event
from eventstore.store import RecordedEvent, event_store
from orders import events
from orders.aggregates import IllegalTransition, Order, OrderNotFound, Saga
from orders.models import SagaSummary
from orders.saga import (
    ACTOR,
    RELEASE_INVENTORY,
    OrderFulfillmentSaga,
    Run,
    Step,
    orders,
    request_reservation,
    sagas,
)
from orders.saga import saga as fulfilment
from orders.services import saga_retry
from payments.aggregates import Payment
from payments.services import payment_charge, payments

pytestmark = pytest.mark.django_db

HAPPY_SAGA = [
    events.SAGA_STARTED,
    events.INVENTORY_RESERVATION_REQUESTED,
    events.SAGA_STEP_SUCCEEDED,
    events.PAYMENT_REQUESTED,
    events.SAGA_STEP_SUCCEEDED,
    events.SAGA_STEP_SUCCEEDED,
    events.SAGA_STEP_SUCCEEDED,
    events.SAGA_COMPLETED,
]
RELEASED_SAGA = [
    events.SAGA_STARTED,
    events.INVENTORY_RESERVATION_REQUESTED,
    events.SAGA_STEP_SUCCEEDED,
    events.PAYMENT_REQUESTED,
    events.SAGA_STEP_FAILED,
    events.INVENTORY_RELEASE_REQUESTED,
    events.SAGA_COMPENSATION_SUCCEEDED,
    events.SAGA_COMPENSATED,
]


def saga_of(order_id):
    return sagas.load(order_id, use_snapshot=False)


def order_of(order_id):
    return orders.load(order_id, use_snapshot=False)


def reply(event_type, **payload):
    """A service's reply as the saga reads it from the log (not appended anywhere)."""
    return RecordedEvent(
        position=0,
        event_id=uuid.uuid4(),
        aggregate_type="reply",
        aggregate_id="r-1",
        version=1,
        event_type=event_type,
        schema_version=1,
        payload=payload,
        metadata={},
        recorded_at=timezone.now(),
    )


def late_charge(order_id, token="tok_visa_success"):
    """The gateway charges the order's payment after all (payment id = order id), e.g. after
    the saga gave up waiting for it."""
    return payment_charge(
        payment_id=order_id,
        customer_id="c-1",
        amount=Decimal("25.00"),
        payment_token=token,
        metadata={"correlation_id": order_id},
    )


@pytest.fixture
def timed_out_payment(make_product, place, expire_overdue):
    """An order whose payment got no answer in time: its stock was released, it is cancelled."""
    make_product("p1", stock=10, price="12.50")
    order_id = place(token="tok_timeout")
    expire_overdue()
    return order_id


@pytest.fixture
def release_given_up(make_product, place, expire_overdue, switched_off, settings):
    """A function leaving an order's saga in compensation_failed: the payment timed out and the
    stock's release went unanswered SAGA_COMPENSATION_ATTEMPTS (2) times while inventory's
    subscriber was switched off (it is back on afterwards, with the requests still to read)."""
    settings.SAGA_COMPENSATION_ATTEMPTS = 2

    def give_up():
        make_product("p1", stock=10, price="12.50")
        order_id = place([("p1", 2)], token="tok_timeout")
        with switched_off("inventory.requests"):
            for _ in range(3):  # fail the step, send the release again, give up
                expire_overdue()
        assert saga_of(order_id).state == Saga.COMPENSATION_FAILED
        return order_id

    return give_up


# --- the happy path ------------------------------------------------------------------------------


def test_a_paid_order_runs_every_step_in_order_and_completes(
    make_product, place, saga_types, order_types, stock_of
):
    make_product("p1", stock=10, price="12.50")

    order_id = place([("p1", 2)])

    assert saga_types(order_id) == HAPPY_SAGA
    assert order_types(order_id) == [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_PROCESSED,
        events.ORDER_CONFIRMED,
        events.ORDER_COMPLETED,
    ]
    saga = saga_of(order_id)
    assert saga.state == Saga.COMPLETED
    assert saga.succeeded_steps == [step.name for step in OrderFulfillmentSaga.STEPS]
    order = order_of(order_id)
    assert (order.status, order.total_amount, order.confirmed) == (Order.COMPLETED, "25.00", True)
    assert order.items == [{"product_id": "p1", "quantity": 2, "unit_price": "12.50"}]
    assert order.transaction_id.startswith("txn_")
    assert stock_of("p1") == (8, 0, 2)


def test_the_saga_asks_inventory_and_payments_with_the_order_id(make_product, place):
    make_product("p1", stock=10, price="12.50")

    order_id = place([("p1", 2)], customer_id="c-9", token="tok_visa_success")

    requests = {
        event.event_type: event.payload for event in event_store.read_stream(events.SAGA, order_id)
    }
    assert requests[events.INVENTORY_RESERVATION_REQUESTED] == {
        "order_id": order_id,
        "items": [{"product_id": "p1", "quantity": 2}],
        "step": "reserve_inventory",
    }
    created = event_store.read_stream(events.ORDER, order_id)[0].payload
    assert requests[events.PAYMENT_REQUESTED] == {
        "payment_id": order_id,
        "customer_id": "c-9",
        "amount": "25.00",
        # The token itself stays in the vault: the request names it and describes it.
        "payment_token_ref": created["payment_token_ref"],
        "payment_method": events.payment_method_of("tok_visa_success"),
        "step": "process_payment",
    }


def test_every_saga_decision_is_correlated_with_the_order_and_names_its_cause(make_product, place):
    make_product("p1")

    order_id = place()

    by_id = {str(event.event_id): event for event in Event.objects.all()}
    decisions = Event.objects.filter(aggregate_type__in=[events.SAGA, events.ORDER]).exclude(
        event_type=events.ORDER_CREATED
    )
    assert decisions.exists()
    for decision in decisions:
        assert decision.metadata["correlation_id"] == order_id
        assert decision.metadata["actor"] == ACTOR
        assert by_id[decision.metadata["causation_id"]].metadata["correlation_id"] == order_id


def test_execute_records_the_event_that_caused_it(make_product, place):
    make_product("p1")
    order_id = place(run_saga=False)
    [created] = event_store.read_stream(events.ORDER, order_id)

    saga = fulfilment.execute(order_id, cause=created)

    assert saga.state == Saga.RUNNING
    started = event_store.read_stream(events.SAGA, order_id)[0]
    assert started.metadata == {
        "causation_id": str(created.event_id),
        "actor": ACTOR,
        "correlation_id": order_id,
    }


def test_execute_without_a_cause_records_the_orders_service_as_the_actor(make_product, place):
    make_product("p1")
    order_id = place(run_saga=False)

    fulfilment.execute(order_id)

    started = event_store.read_stream(events.SAGA, order_id)[0]
    assert started.metadata == {"correlation_id": order_id, "actor": ACTOR}


def test_execute_again_returns_the_saga_and_records_nothing(make_product, place):
    make_product("p1")
    order_id = place(run_saga=False)
    first = fulfilment.execute(order_id)
    count = Event.objects.count()

    again = fulfilment.execute(order_id)

    assert Event.objects.count() == count
    assert (again.id, again.version, again.state) == (first.id, first.version, first.state)


def test_execute_for_an_unknown_order_raises_and_records_nothing():
    with pytest.raises(OrderNotFound, match="'nope' does not exist"):
        fulfilment.execute("nope")

    assert not Event.objects.exists()


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
    assert order_types(order_id) == [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_FAILED,
        events.ORDER_INVENTORY_RELEASED,
        events.ORDER_CANCELLED,
    ]
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
    key = OrderFulfillmentSaga.REPLY_KEYS[event_type]

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
    assert saga_of(order_id).waiting_for() == ("step", "process_payment", 0)


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


# --- expire --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("timeout", "shown"), [(0, "0"), (2.5, "2.5"), (30.0, "30")])
def test_an_expired_payment_step_fails_with_the_timeout_and_releases_the_stock(
    make_product, place, run_after_commit, settings, saga_types, stock_of, timeout, shown
):
    make_product("p1", stock=10)
    order_id = place([("p1", 2)], token="tok_timeout")
    settings.SAGA_STEP_TIMEOUT = timeout

    with run_after_commit():
        fulfilment.expire(order_id, waiting=("step", "process_payment", 0))

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
        assert saga_of(order_id).waiting_for() == ("step", "reserve_inventory", 0)

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
        ("step", "reserve_inventory", 0),
        ("compensation", "release_inventory", 1),
        ("compensation", "refund_payment", 1),
    ],
)
def test_expire_does_nothing_when_the_saga_no_longer_waits_for_that_reply(
    make_product, place, waiting
):
    make_product("p1")
    order_id = place(token="tok_timeout")
    count = Event.objects.count()

    saga = fulfilment.expire(order_id, waiting=waiting)

    assert saga.waiting_for() == ("step", "process_payment", 0)
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

        saga = fulfilment.expire(order_id, waiting=("compensation", "release_inventory", 1))

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
    assert saga.compensations["release_inventory"] == {
        "status": Saga.FAILED,
        "attempt": 3,
        "tries": 3,
        "error": "no reply after 3 request(s)",
    }
    assert saga.waiting_for() is None
    assert order_of(order_id).status == Order.PAYMENT_FAILED


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


@pytest.mark.parametrize("token", ["tok_timeout", "tok_decline"], ids=["waiting", "failed"])
def test_advancing_a_saga_never_restarts_a_step_that_started(make_product, place, token):
    make_product("p1")
    order_id = place(token=token)
    run = Run(saga_of(order_id), order_of(order_id), {})

    fulfilment._advance(run)

    assert run.saga.pending_events == run.order.pending_events == []


# --- definition versions -------------------------------------------------------------------------

# A later definition: stock only, and the order is left alone (no handlers on the order).
RESERVE_ONLY = (
    Step(
        "reserve_inventory",
        start=request_reservation,
        compensation=RELEASE_INVENTORY,
        timeout_reason="inventory_timeout",
    ),
)


def upgrade_to_version_2(monkeypatch):
    """Make RESERVE_ONLY the current definition (version 2), keeping version 1 for sagas in
    flight."""
    monkeypatch.setattr(fulfilment, "version", 2)
    monkeypatch.setattr(fulfilment, "STEPS", RESERVE_ONLY)
    monkeypatch.setattr(fulfilment, "DEFINITIONS", {1: OrderFulfillmentSaga.STEPS, 2: RESERVE_ONLY})


@pytest.fixture
def version_2(monkeypatch):
    upgrade_to_version_2(monkeypatch)


def test_a_saga_in_flight_keeps_the_definition_it_started_with(
    make_product, place, switched_off, deliver, monkeypatch
):
    make_product("p1")
    with switched_off("inventory.requests"):
        before_upgrade = place()
        upgrade_to_version_2(monkeypatch)
        after_upgrade = place()

    deliver()

    old, new = saga_of(before_upgrade), saga_of(after_upgrade)
    assert (old.definition_version, old.state) == (1, Saga.COMPLETED)
    assert old.succeeded_steps == [step.name for step in OrderFulfillmentSaga.STEPS]
    assert order_of(before_upgrade).status == Order.COMPLETED
    assert (new.definition_version, new.state) == (2, Saga.COMPLETED)
    assert new.succeeded_steps == ["reserve_inventory"]


def test_a_step_without_order_handlers_only_moves_the_saga(make_product, place, version_2):
    make_product("p1")

    order_id = place()

    saga = saga_of(order_id)
    assert (saga.definition_version, saga.state) == (2, Saga.COMPLETED)
    assert event_store.read_stream(events.SAGA, order_id)[0].payload["steps"] == [
        "reserve_inventory"
    ]
    assert order_of(order_id).status == Order.PENDING


def test_a_step_without_a_failure_handler_is_compensated_without_touching_the_order(
    make_product, place, version_2, switched_off
):
    make_product("p1")
    with switched_off("inventory.requests"):
        order_id = place()

        saga = fulfilment.compensate(order_id, "reserve_inventory")

    assert saga.state == Saga.COMPENSATED
    assert order_of(order_id).status == Order.PENDING


def test_a_saga_whose_definition_is_no_longer_kept_fails_loudly(make_product, place, monkeypatch):
    make_product("p1")
    order_id = place(token="tok_timeout")
    monkeypatch.setattr(fulfilment, "DEFINITIONS", {2: RESERVE_ONLY})
    count = Event.objects.count()

    with pytest.raises(LookupError, match="No saga definition version 1 is kept"):
        fulfilment.compensate(order_id, "process_payment")

    assert Event.objects.count() == count


def test_a_compensation_the_definition_no_longer_has_is_refused(release_given_up, monkeypatch):
    order_id = release_given_up()
    without_compensations = tuple(
        Step(step.name, start=step.start) for step in OrderFulfillmentSaga.STEPS
    )
    monkeypatch.setattr(fulfilment, "DEFINITIONS", {1: without_compensations})
    count = Event.objects.count()

    with pytest.raises(IllegalTransition, match="has no compensation 'release_inventory'"):
        fulfilment.retry(order_id)

    assert Event.objects.count() == count
