"""The Order state machine and the Saga's bookkeeping: legal transitions only, state from events."""

import uuid

import pytest

from eventstore.upcasting import upcast
from orders import events
from orders.aggregates import IllegalTransition, Order, Saga, total_of

ORDER_ID = "o-1"
ITEMS = [{"product_id": "p1", "quantity": 2}, {"product_id": "p2", "quantity": 1}]
LINES = [
    {"product_id": "p1", "quantity": 2, "unit_price": "12.50"},
    {"product_id": "p2", "quantity": 1, "unit_price": "3.00"},
]
STEPS = ["reserve_inventory", "process_payment", "confirm_order", "complete_order"]
METHOD = {"kind": "tok_visa", "last4": "cess", "fingerprint": "0123456789abcdef"}

# --- Order ---------------------------------------------------------------------------------------

# Each command of the order, as the event it records.
COMMANDS = {
    events.ORDER_CREATED: lambda order: order.create(
        customer_id="c-1",
        items=ITEMS,
        payment_method=METHOD,
        payment_token_ref="3f1c6e2a-0000-4000-8000-000000000001",
    ),
    events.ORDER_INVENTORY_RESERVED: lambda order: order.inventory_reserved(
        lines=LINES, total_amount="28.00"
    ),
    events.ORDER_INVENTORY_FAILED: lambda order: order.inventory_failed(
        reason="insufficient_stock"
    ),
    events.ORDER_PAYMENT_PROCESSED: lambda order: order.payment_processed(
        transaction_id="txn_1", amount="28.00"
    ),
    events.ORDER_PAYMENT_FAILED: lambda order: order.payment_failed(reason="card_declined"),
    events.ORDER_INVENTORY_RELEASED: lambda order: order.inventory_released(),
    events.ORDER_CONFIRMED: lambda order: order.confirm(),
    events.ORDER_COMPLETED: lambda order: order.complete(),
    events.ORDER_CANCELLED: lambda order: order.cancel(reason="card_declined"),
}

# The events that bring a new order into each situation ("confirmed": paid and confirmed).
HISTORIES = {
    "new": [],
    Order.PENDING: [events.ORDER_CREATED],
    Order.INVENTORY_RESERVED: [events.ORDER_CREATED, events.ORDER_INVENTORY_RESERVED],
    Order.PAYMENT_PROCESSED: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_PROCESSED,
    ],
    "confirmed": [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_PROCESSED,
        events.ORDER_CONFIRMED,
    ],
    Order.COMPLETED: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_PROCESSED,
        events.ORDER_CONFIRMED,
        events.ORDER_COMPLETED,
    ],
    Order.INVENTORY_FAILED: [events.ORDER_CREATED, events.ORDER_INVENTORY_FAILED],
    Order.PAYMENT_FAILED: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_FAILED,
    ],
    Order.INVENTORY_RELEASED: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_RESERVED,
        events.ORDER_PAYMENT_FAILED,
        events.ORDER_INVENTORY_RELEASED,
    ],
    Order.CANCELLED: [
        events.ORDER_CREATED,
        events.ORDER_INVENTORY_FAILED,
        events.ORDER_CANCELLED,
    ],
}

# Every legal (situation, command) and the status it leads to; everything else is illegal.
LEGAL = {
    ("new", events.ORDER_CREATED): Order.PENDING,
    (Order.PENDING, events.ORDER_INVENTORY_RESERVED): Order.INVENTORY_RESERVED,
    (Order.PENDING, events.ORDER_INVENTORY_FAILED): Order.INVENTORY_FAILED,
    (Order.INVENTORY_RESERVED, events.ORDER_PAYMENT_PROCESSED): Order.PAYMENT_PROCESSED,
    (Order.INVENTORY_RESERVED, events.ORDER_PAYMENT_FAILED): Order.PAYMENT_FAILED,
    (Order.PAYMENT_FAILED, events.ORDER_INVENTORY_RELEASED): Order.INVENTORY_RELEASED,
    (Order.PAYMENT_PROCESSED, events.ORDER_CONFIRMED): Order.PAYMENT_PROCESSED,
    ("confirmed", events.ORDER_COMPLETED): Order.COMPLETED,
    (Order.INVENTORY_FAILED, events.ORDER_CANCELLED): Order.CANCELLED,
    (Order.INVENTORY_RELEASED, events.ORDER_CANCELLED): Order.CANCELLED,
}
ILLEGAL = [
    (situation, command)
    for situation in HISTORIES
    for command in COMMANDS
    if (situation, command) not in LEGAL
]


def order_in(situation, order_id=ORDER_ID):
    """An order brought into `situation` by its commands, with its events already saved."""
    order = Order(order_id)
    for command in HISTORIES[situation]:
        COMMANDS[command](order)
    order.mark_saved()
    return order


def replayed(aggregate):
    """A fresh copy of the aggregate rebuilt from the events it recorded."""
    copy = type(aggregate)(aggregate.id)
    for event in aggregate.pending_events:
        copy._apply(event.event_type, event.payload)
    return copy


def test_the_legal_table_is_exactly_the_orders_transition_table():
    def status_of(situation):
        return {"new": "", "confirmed": Order.PAYMENT_PROCESSED}.get(situation, situation)

    table = {(status_of(situation), command): to for (situation, command), to in LEGAL.items()}

    assert table == Order.TRANSITIONS


@pytest.mark.parametrize(("situation", "command"), list(LEGAL), ids="{0[0]}-{0[1]}".format)
def test_a_legal_transition_records_its_event_and_moves_the_status(situation, command):
    order = order_in(situation)

    COMMANDS[command](order)

    [event] = order.pending_events
    assert event.event_type == command
    assert event.payload["order_id"] == ORDER_ID
    assert order.status == LEGAL[(situation, command)]
    assert order.version == len(HISTORIES[situation]) + 1


@pytest.mark.parametrize(("situation", "command"), ILLEGAL, ids="{0[0]}-{0[1]}".format)
def test_an_illegal_transition_raises_and_records_nothing(situation, command):
    order = order_in(situation)
    before = (order.status, order.version, order.confirmed)

    with pytest.raises(IllegalTransition, match=r"is not allowed$"):
        COMMANDS[command](order)

    assert order.pending_events == []
    assert (order.status, order.version, order.confirmed) == before


def test_an_illegal_transition_names_the_order_and_its_status():
    with pytest.raises(IllegalTransition) as new_order:
        order_in("new").confirm()
    with pytest.raises(IllegalTransition) as pending_order:
        order_in(Order.PENDING).complete()

    assert str(new_order.value) == "Order 'o-1' is not created: OrderConfirmed is not allowed"
    assert str(pending_order.value) == "Order 'o-1' is pending: OrderCompleted is not allowed"


def test_an_order_is_confirmed_only_once_and_completed_only_after_confirmation():
    paid = order_in(Order.PAYMENT_PROCESSED)
    with pytest.raises(IllegalTransition):
        paid.complete()

    paid.confirm()
    with pytest.raises(IllegalTransition):
        paid.confirm()
    paid.complete()

    assert paid.confirmed is True
    assert [event.event_type for event in paid.pending_events] == [
        events.ORDER_CONFIRMED,
        events.ORDER_COMPLETED,
    ]


def test_an_order_exists_once_created():
    assert order_in("new").exists is False
    assert order_in(Order.PENDING).exists is True


def test_create_keeps_only_product_and_quantity_of_each_item():
    order = Order(ORDER_ID)
    event_id = uuid.uuid4()

    order.create(
        customer_id="c-1",
        items=[{"product_id": "p1", "quantity": 2, "unit_price": "1.00", "note": "x"}],
        payment_method=METHOD,
        payment_token_ref="ref-1",
        idempotency_key="key-1",
        event_id=event_id,
    )

    [event] = order.pending_events
    assert event.event_id == event_id
    assert event.payload == {
        "order_id": ORDER_ID,
        "customer_id": "c-1",
        "items": [{"product_id": "p1", "quantity": 2}],
        "payment_method": METHOD,
        "payment_token_ref": "ref-1",
        "idempotency_key": "key-1",
    }
    assert order.items == [{"product_id": "p1", "quantity": 2, "unit_price": None}]
    assert (
        order.customer_id,
        order.payment_method,
        order.payment_token_ref,
        order.idempotency_key,
    ) == ("c-1", METHOD, "ref-1", "key-1")


def test_an_order_created_before_idempotency_keys_existed_has_an_empty_key():
    order = Order(ORDER_ID)

    stored = {"order_id": ORDER_ID, "customer_id": "c-1", "items": ITEMS, "payment_token": "tok"}

    order._apply(events.ORDER_CREATED, upcast(events.ORDER_CREATED, 1, stored)[1])

    assert (order.status, order.idempotency_key) == (Order.PENDING, "")
    assert (order.payment_method["kind"], order.payment_token_ref) == ("token", None)


def test_inventory_reserved_prices_each_item_with_inventorys_unit_price():
    order = order_in(Order.PENDING)

    # p2 is missing from the reply: its price stays unknown rather than being made up.
    order.inventory_reserved(lines=LINES[:1], total_amount="25.00")

    assert order.items == [
        {"product_id": "p1", "quantity": 2, "unit_price": "12.50"},
        {"product_id": "p2", "quantity": 1, "unit_price": None},
    ]
    assert order.total_amount == "25.00"
    assert order.pending_events[-1].payload == {
        "order_id": ORDER_ID,
        "items": order.items,
        "total_amount": "25.00",
    }


def test_failures_record_their_reason():
    inventory = order_in(Order.PENDING)
    inventory.inventory_failed(reason="insufficient_stock")
    payment = order_in(Order.INVENTORY_RESERVED)
    payment.payment_failed(reason="card_declined")

    assert inventory.failure_reason == "insufficient_stock"
    assert payment.failure_reason == "card_declined"
    assert payment.pending_events[-1].payload == {"order_id": ORDER_ID, "reason": "card_declined"}


def test_confirm_complete_and_cancel_tell_the_customer_items_and_amount():
    confirmed = order_in(Order.PAYMENT_PROCESSED)
    confirmed.confirm()
    confirmed.complete()
    cancelled = order_in(Order.INVENTORY_FAILED)
    cancelled.cancel(reason="insufficient_stock")

    confirm, complete = confirmed.pending_events
    expected = {
        "order_id": ORDER_ID,
        "customer_id": "c-1",
        "items": LINES,
        "total_amount": "28.00",
    }
    assert confirm.payload == complete.payload == expected
    assert cancelled.pending_events[-1].payload == {
        "order_id": ORDER_ID,
        "customer_id": "c-1",
        # Never reserved: the items have no prices and the order no total.
        "items": [{**item, "unit_price": None} for item in ITEMS],
        "total_amount": None,
        "reason": "insufficient_stock",
    }


def test_a_cancelled_order_that_was_priced_tells_its_items_prices_and_total():
    order = order_in(Order.INVENTORY_RELEASED)

    order.cancel(reason="card_declined")

    payload = order.pending_events[-1].payload
    assert (payload["items"], payload["total_amount"]) == (LINES, "28.00")


def test_a_paid_order_keeps_its_transaction_id():
    order = order_in(Order.PAYMENT_PROCESSED)

    assert order.transaction_id == "txn_1"


@pytest.mark.parametrize("situation", list(HISTORIES))
def test_replaying_an_orders_events_rebuilds_the_same_state(situation):
    order = Order(ORDER_ID)
    for command in HISTORIES[situation]:
        COMMANDS[command](order)

    assert replayed(order).snapshot() == order.snapshot()


@pytest.mark.parametrize(
    ("lines", "total"),
    [
        ([], "0.00"),
        (LINES, "28.00"),
        ([{"product_id": "p1", "quantity": 3, "unit_price": "0.333"}], "1.00"),
        ([{"product_id": "p1", "quantity": 1, "unit_price": "19.995"}], "20.00"),
    ],
)
def test_total_of_sums_the_lines_to_two_places(lines, total):
    assert total_of(lines) == total


# --- Saga ----------------------------------------------------------------------------------------


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

    assert saga.waiting_for() == ("step", "process_payment", 0)
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
        "release_inventory": {"status": Saga.STARTED, "attempt": 1, "tries": 1, "error": ""}
    }
    assert saga.compensations_in_flight == ["release_inventory"]
    assert saga.waiting_for() == ("compensation", "release_inventory", 1)
    assert saga.pending_events[-1].payload == {
        "order_id": ORDER_ID,
        "compensation": "release_inventory",
        "attempt": 1,
    }


def test_sending_a_compensation_again_counts_its_attempts_and_tries():
    saga = releasing()

    request_release(saga)

    assert saga.compensations["release_inventory"] == {
        "status": Saga.STARTED,
        "attempt": 2,
        "tries": 2,
        "error": "",
    }
    assert saga.waiting_for() == ("compensation", "release_inventory", 2)


def test_a_compensation_retried_after_giving_up_gets_a_fresh_allowance_of_tries():
    saga = releasing()
    request_release(saga)
    saga.compensation_failed(compensation="release_inventory", error="no reply after 2")
    assert saga.state == Saga.COMPENSATION_FAILED
    assert saga.compensations["release_inventory"]["status"] == Saga.FAILED

    request_release(saga)

    assert saga.state == Saga.COMPENSATING
    assert saga.compensations["release_inventory"] == {
        "status": Saga.STARTED,
        "attempt": 3,
        "tries": 1,
        "error": "",
    }


def test_the_oldest_compensation_in_flight_is_waited_for_first():
    saga = releasing()
    request_refund(saga)

    assert saga.compensations_in_flight == ["release_inventory", "refund_payment"]
    assert saga.waiting_for() == ("compensation", "release_inventory", 1)

    saga.compensation_succeeded(compensation="release_inventory")

    assert saga.waiting_for() == ("compensation", "refund_payment", 1)


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
    assert saga.compensations["release_inventory"] == {
        "status": Saga.SUCCEEDED,
        "attempt": 1,
        "tries": 1,
        "error": "",
    }


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
    assert saga.waiting_for() == ("compensation", "refund_payment", 1)


def test_undoing_a_reply_a_running_saga_never_asked_for_leaves_it_running():
    saga = started_saga()
    saga.request_step(
        step="reserve_inventory",
        event_type=events.INVENTORY_RESERVATION_REQUESTED,
        payload={"order_id": ORDER_ID, "items": ITEMS},
    )

    request_refund(saga)

    assert saga.state == Saga.RUNNING
    assert saga.waiting_for() == ("step", "reserve_inventory", 0)


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


def test_replaying_a_sagas_events_rebuilds_the_same_state():
    saga = releasing()
    request_refund(saga)
    saga.compensation_failed(compensation="release_inventory", error="no reply")
    saga.compensation_succeeded(compensation="refund_payment")

    assert replayed(saga).snapshot() == saga.snapshot()
