"""The Saga's bookkeeping: which steps ran, which compensations were sent and answered, what it
waits for and its state, from its events."""

import pytest

from orders import events
from orders.aggregates import IllegalTransition, Saga, Waiting
from tests.orders.sagas import compensation_entry

ORDER_ID = "o-1"
ITEMS = [{"product_id": "p1", "quantity": 2}, {"product_id": "p2", "quantity": 1}]
STEPS = ["reserve_inventory", "process_payment", "confirm_order", "complete_order"]


def started_saga(order_id=ORDER_ID):
    saga = Saga(order_id)
    saga.start(order_id=order_id, definition_version=1, steps=STEPS)
    return saga


def waiting_on_payment(order_id=ORDER_ID):
    """A saga whose stock is reserved and which waits for the payment's answer."""
    saga = started_saga(order_id)
    saga.request_step(
        step="reserve_inventory",
        event_type=events.INVENTORY_RESERVATION_REQUESTED,
        payload={"order_id": order_id, "items": ITEMS},
    )
    saga.step_succeeded(step="reserve_inventory")
    saga.request_step(
        step="process_payment",
        event_type=events.PAYMENT_REQUESTED,
        payload={"payment_id": order_id, "customer_id": "c-1", "amount": "28.00"},
    )
    return saga


def releasing(order_id=ORDER_ID):
    """A saga whose payment failed and which waits for the stock's release."""
    saga = waiting_on_payment(order_id)
    saga.step_failed(
        step="process_payment",
        error="refused: card_declined",
        reason="card_declined",
        compensations=["release_inventory"],
    )
    request_release(saga)
    return saga


def request_release(saga):
    saga.request_compensation(
        compensation="release_inventory",
        event_type=events.INVENTORY_RELEASE_REQUESTED,
        payload={"order_id": saga.id},
    )


def release(saga):
    """The bookkeeping of the saga's stock release."""
    return saga.compensations["release_inventory"]


def request_refund(saga):
    saga.request_compensation(
        compensation="refund_payment",
        event_type=events.PAYMENT_REFUND_REQUESTED,
        payload={"payment_id": saga.id},
    )


def test_a_new_saga_does_not_exist_and_waits_for_nothing():
    saga = Saga(ORDER_ID)

    assert saga.exists is False
    assert saga.waiting_for() is None


def test_start_records_the_definition_it_follows():
    saga = started_saga()

    [event] = saga.pending_events
    assert event.event_type == events.SAGA_STARTED
    assert event.payload == {
        "saga_id": ORDER_ID,
        "order_id": ORDER_ID,
        "definition_version": 1,
        "steps": STEPS,
    }
    assert (saga.exists, saga.state, saga.definition_version, saga.order_id) == (
        True,
        Saga.RUNNING,
        1,
        ORDER_ID,
    )


def test_a_saga_starts_only_once():
    saga = started_saga()

    with pytest.raises(IllegalTransition, match="is running: cannot start"):
        saga.start(order_id=ORDER_ID, definition_version=1, steps=STEPS)

    assert len(saga.pending_events) == 1


@pytest.mark.parametrize(
    "command",
    [
        lambda saga: saga.request_step(step="x", event_type=events.PAYMENT_REQUESTED, payload={}),
        lambda saga: saga.step_succeeded(step="x"),
        lambda saga: saga.step_failed(step="x", error="e", reason="r", compensations=[]),
        lambda saga: saga.completed(),
        lambda saga: saga.compensated(),
    ],
    ids=["request_step", "step_succeeded", "step_failed", "completed", "compensated"],
)
def test_a_saga_that_has_not_started_refuses_every_step_command(command):
    saga = Saga(ORDER_ID)

    with pytest.raises(IllegalTransition, match="'o-1' is not started: cannot"):
        command(saga)

    assert saga.pending_events == []


def test_a_requested_step_is_what_the_saga_waits_for():
    saga = waiting_on_payment()

    assert saga.waiting_for() == Waiting("step", "process_payment")
    assert saga.current_step == "process_payment"
    assert saga.succeeded_steps == ["reserve_inventory"]
    assert saga.pending_events[-1].payload == {
        "payment_id": ORDER_ID,
        "customer_id": "c-1",
        "amount": "28.00",
        "step": "process_payment",
    }


def test_a_failed_step_turns_the_saga_to_its_compensations():
    saga = waiting_on_payment()

    saga.step_failed(
        step="process_payment",
        error="refused: card_declined",
        reason="card_declined",
        compensations=["release_inventory"],
    )

    assert saga.state == Saga.COMPENSATING
    assert saga.steps["process_payment"] == {
        "status": Saga.FAILED,
        "error": "refused: card_declined",
    }
    assert saga.failure_reason == "card_declined"
    assert saga.pending_compensations == ["release_inventory"]
    assert saga.waiting_for() is None
    with pytest.raises(IllegalTransition, match="is compensating: cannot start confirm_order"):
        saga.request_step(step="confirm_order", event_type=events.PAYMENT_REQUESTED, payload={})
    with pytest.raises(IllegalTransition, match="cannot complete"):
        saga.completed()


def test_a_requested_compensation_leaves_the_pending_list_and_is_waited_for():
    saga = releasing()

    assert saga.pending_compensations == []
    assert saga.compensations == {
        "release_inventory": compensation_entry(Saga.STARTED, attempt=1, tries=1)
    }
    assert saga.compensations_in_flight == ["release_inventory"]
    assert saga.waiting_for() == Waiting("compensation", "release_inventory", 1)
    assert saga.pending_events[-1].payload == {
        "order_id": ORDER_ID,
        "compensation": "release_inventory",
        "attempt": 1,
    }


def test_sending_a_compensation_again_counts_its_attempts_and_tries():
    saga = releasing()

    request_release(saga)

    assert release(saga) == compensation_entry(Saga.STARTED, attempt=2, tries=2)
    assert saga.waiting_for() == Waiting("compensation", "release_inventory", 2)


def test_a_compensation_retried_after_giving_up_gets_a_fresh_allowance_of_tries():
    saga = releasing()
    request_release(saga)
    saga.compensation_failed(compensation="release_inventory", error="no reply after 2")
    assert saga.state == Saga.COMPENSATION_FAILED
    assert saga.compensations["release_inventory"]["status"] == Saga.FAILED

    request_release(saga)

    assert saga.state == Saga.COMPENSATING
    assert release(saga) == compensation_entry(Saga.STARTED, attempt=3, tries=1)


def test_the_oldest_compensation_in_flight_is_waited_for_first():
    saga = releasing()
    request_refund(saga)

    assert saga.compensations_in_flight == ["release_inventory", "refund_payment"]
    assert saga.waiting_for() == Waiting("compensation", "release_inventory", 1)

    saga.compensation_succeeded(compensation="release_inventory")

    assert saga.waiting_for() == Waiting("compensation", "refund_payment", 1)


def test_compensations_then_compensated_finish_the_saga():
    saga = releasing()

    saga.compensation_succeeded(compensation="release_inventory")
    saga.compensated()

    assert saga.compensations["release_inventory"]["status"] == Saga.SUCCEEDED
    assert saga.state == Saga.COMPENSATED
    assert saga.waiting_for() is None
    assert [event.event_type for event in saga.pending_events[-2:]] == [
        events.SAGA_COMPENSATION_SUCCEEDED,
        events.SAGA_COMPENSATED,
    ]


def test_a_late_answer_to_the_only_given_up_compensation_resumes_compensating():
    saga = releasing()
    saga.compensation_failed(compensation="release_inventory", error="no reply after 1")

    saga.compensation_succeeded(compensation="release_inventory")

    assert saga.state == Saga.COMPENSATING
    assert release(saga) == compensation_entry(Saga.SUCCEEDED, attempt=1, tries=1)


def test_a_late_answer_leaves_the_saga_failed_while_another_compensation_is_given_up():
    saga = releasing()
    request_refund(saga)
    saga.compensation_failed(compensation="release_inventory", error="no reply")
    saga.compensation_failed(compensation="refund_payment", error="no reply")

    saga.compensation_succeeded(compensation="refund_payment")

    assert saga.state == Saga.COMPENSATION_FAILED


def test_a_compensation_requested_while_another_is_given_up_keeps_the_saga_failed():
    saga = releasing()
    saga.compensation_failed(compensation="release_inventory", error="no reply")

    request_refund(saga)
    assert saga.state == Saga.COMPENSATION_FAILED
    saga.compensation_succeeded(compensation="refund_payment")

    assert saga.state == Saga.COMPENSATION_FAILED


def test_a_compensated_saga_reopens_to_undo_a_late_success():
    saga = releasing()
    saga.compensation_succeeded(compensation="release_inventory")
    saga.compensated()

    request_refund(saga)

    assert saga.state == Saga.COMPENSATING
    assert saga.waiting_for() == Waiting("compensation", "refund_payment", 1)


def test_undoing_a_reply_a_running_saga_never_asked_for_leaves_it_running():
    saga = started_saga()
    saga.request_step(
        step="reserve_inventory",
        event_type=events.INVENTORY_RESERVATION_REQUESTED,
        payload={"order_id": ORDER_ID, "items": ITEMS},
    )

    request_refund(saga)

    assert saga.state == Saga.RUNNING
    assert saga.waiting_for() == Waiting("step", "reserve_inventory")


def test_compensated_is_refused_unless_the_saga_is_compensating():
    saga = waiting_on_payment()

    with pytest.raises(IllegalTransition, match="is running: cannot finish compensating"):
        saga.compensated()


def test_a_completed_saga_waits_for_nothing_and_has_no_current_step():
    saga = waiting_on_payment()
    saga.step_succeeded(step="process_payment")
    saga.step_succeeded(step="confirm_order")
    saga.step_succeeded(step="complete_order")

    saga.completed()

    assert (saga.state, saga.current_step, saga.waiting_for()) == (Saga.COMPLETED, "", None)
    assert saga.succeeded_steps == STEPS
    with pytest.raises(IllegalTransition, match="is completed: cannot fail"):
        saga.step_failed(step="complete_order", error="e", reason="r", compensations=[])


def test_replaying_a_sagas_events_rebuilds_the_same_state(replayed):
    saga = releasing()
    request_refund(saga)
    saga.compensation_failed(compensation="release_inventory", error="no reply")
    saga.compensation_succeeded(compensation="refund_payment")

    assert replayed(saga).snapshot() == saga.snapshot()
