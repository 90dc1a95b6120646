"""Orders' read models: OrderSummary, SagaSummary and the catalogue, as the events make them."""

import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from eventstore.records import RecordedEvent
from eventstore.store import NewEvent, event_store
from inventory.services import product_update
from orders import events
from orders.aggregates import Order, Saga
from orders.models import CatalogProduct, OrderSummary, SagaSummary
from orders.projections import CatalogProjection, OrderProjection, SagaProjection
from orders.saga import fulfilment
from orders.services import sagas
from payments.services import payment_charge
from tests.factories import append_event

pytestmark = pytest.mark.django_db

STEP_NAMES = ["reserve_inventory", "process_payment", "confirm_order", "complete_order"]


def summary(order_id):
    return OrderSummary.objects.get(pk=order_id)


def saga_row(order_id):
    return SagaSummary.objects.get(order_id=order_id)


def steps_by_name(row):
    return {step["name"]: step for step in row.steps}


def at(iso):
    return datetime.fromisoformat(iso)


# --- OrderSummary --------------------------------------------------------------------------------


def test_a_placed_order_is_listed_pending_with_unpriced_items(make_product, place):
    make_product("p1")

    order_id = place([("p1", 2)], customer_id="c-7", run_saga=False)

    [created] = event_store.read_stream(events.ORDER, order_id)
    row = summary(order_id)
    assert (row.customer_id, row.status, row.total_amount, row.cancel_reason, row.version) == (
        "c-7",
        OrderSummary.Status.PENDING,
        None,
        "",
        1,
    )
    assert row.items == [{"product_id": "p1", "quantity": 2, "unit_price": None}]
    assert row.created_at == row.updated_at == created.recorded_at


def test_a_completed_order_shows_inventorys_prices_and_total(make_product, place):
    make_product("p1", price="12.50")
    make_product("p2", price="0.99")

    order_id = place([("p1", 2), ("p2", 3)])

    stream = event_store.read_stream(events.ORDER, order_id)
    row = summary(order_id)
    assert row.status == OrderSummary.Status.COMPLETED
    assert row.items == [
        {"product_id": "p1", "quantity": 2, "unit_price": "12.50"},
        {"product_id": "p2", "quantity": 3, "unit_price": "0.99"},
    ]
    assert row.total_amount == Decimal("27.97")
    assert row.version == len(stream) == 5
    assert (row.created_at, row.updated_at) == (stream[0].recorded_at, stream[-1].recorded_at)


@pytest.mark.parametrize(
    ("stock", "token", "reason"),
    [(1, "tok_visa_success", "insufficient_stock"), (10, "tok_decline", "card_declined")],
)
def test_a_cancelled_order_shows_why(make_product, place, stock, token, reason):
    make_product("p1", stock=stock)

    order_id = place([("p1", 2)], token=token)

    row = summary(order_id)
    assert (row.status, row.cancel_reason) == (OrderSummary.Status.CANCELLED, reason)


@pytest.mark.parametrize(
    ("stock", "token"),
    [(10, "tok_visa_success"), (1, "tok_visa_success"), (10, "tok_decline")],
    ids=["completed", "out of stock", "declined"],
)
def test_the_summary_status_follows_the_order_after_every_event(make_product, place, stock, token):
    make_product("p1", stock=stock)
    order_id = place([("p1", 2)], token=token)
    stream = event_store.read_stream(events.ORDER, order_id)
    OrderSummary.objects.all().delete()
    projection, order = OrderProjection(), Order(order_id)

    seen = []
    for event in stream:
        projection.apply(event)
        order.replay(event)
        row = summary(order_id)
        seen.append(row.status)
        assert (row.status, row.version) == (order.status, event.version)

    assert seen[-1] in Order.FINAL_STATUSES


def test_the_saga_log_applied_one_event_at_a_time_equals_the_live_one(make_product, place):
    make_product("p1")
    order_id = place([("p1", 1)])
    live = SagaSummary.objects.values().get(order_id=order_id)
    SagaSummary.objects.all().delete()
    projection = SagaProjection()

    for event in event_store.read_stream(events.SAGA, order_id):
        projection.apply(event)

    assert SagaSummary.objects.values().get(order_id=order_id) == live
    assert live["state"] == "completed"


def test_order_events_on_another_stream_make_no_order_row():
    append_event(
        aggregate_type="import",
        event_type=events.ORDER_CREATED,
        payload={"order_id": "x", "customer_id": "c-1", "items": [], "payment_token": "t"},
    )

    assert not OrderSummary.objects.exists()


# --- SagaSummary ---------------------------------------------------------------------------------


def test_a_started_saga_shows_its_steps_and_the_reply_it_waits_for(make_product, place):
    make_product("p1")
    order_id = place(run_saga=False)

    fulfilment.execute(order_id)

    started, requested = event_store.read_stream(events.SAGA, order_id)
    row = saga_row(order_id)
    assert (row.saga_id, row.state, row.definition_version, row.current_step) == (
        order_id,
        SagaSummary.State.RUNNING,
        1,
        "reserve_inventory",
    )
    assert row.steps == [
        {
            "name": "reserve_inventory",
            "status": "started",
            "started_at": requested.recorded_at.isoformat(),
            "finished_at": None,
            "error": "",
        },
        *(
            {
                "name": name,
                "status": "pending",
                "started_at": None,
                "finished_at": None,
                "error": "",
            }
            for name in STEP_NAMES[1:]
        ),
    ]
    assert row.compensations == []
    assert (row.waiting_kind, row.waiting_for, row.waiting_attempt, row.waiting_since) == (
        "step",
        "reserve_inventory",
        0,
        requested.recorded_at,
    )
    assert (row.started_at, row.version) == (started.recorded_at, 2)


def test_a_completed_saga_shows_every_step_succeeded_and_waits_for_nothing(make_product, place):
    make_product("p1")

    order_id = place()

    row = saga_row(order_id)
    assert (row.state, row.current_step, row.version) == (SagaSummary.State.COMPLETED, "", 8)
    assert [(step["name"], step["status"]) for step in row.steps] == [
        (name, "succeeded") for name in STEP_NAMES
    ]
    for step in row.steps:
        assert at(step["started_at"]) <= at(step["finished_at"])
    # Local steps are done the moment they start.
    confirm = steps_by_name(row)["confirm_order"]
    assert confirm["started_at"] == confirm["finished_at"]
    assert (row.waiting_kind, row.waiting_for, row.waiting_attempt, row.waiting_since) == (
        "",
        "",
        0,
        None,
    )


def test_a_compensated_saga_shows_the_failed_step_and_its_compensation(make_product, place):
    make_product("p1")

    order_id = place(token="tok_decline")

    row = saga_row(order_id)
    assert row.state == SagaSummary.State.COMPENSATED
    assert row.current_step == "process_payment"
    payment = steps_by_name(row)["process_payment"]
    assert (payment["status"], payment["error"]) == ("failed", "refused: card_declined")
    assert steps_by_name(row)["confirm_order"]["status"] == "pending"
    [release] = row.compensations
    assert release["name"] == "release_inventory"
    assert (release["status"], release["attempt"], release["error"]) == ("succeeded", 1, "")
    assert release["started_at"] == release["requested_at"]
    assert at(release["requested_at"]) <= at(release["finished_at"])
    assert row.waiting_since is None


def test_a_compensation_sent_again_counts_its_attempts_and_is_waited_for_anew(
    place_waiting, switched_off, expire_overdue
):
    order_id = place_waiting()
    with switched_off("inventory.requests"):
        expire_overdue()
        first = saga_row(order_id).compensations[0]
        expire_overdue()

    row = saga_row(order_id)
    [again] = row.compensations
    assert (first["attempt"], again["attempt"]) == (1, 2)
    assert again["started_at"] == first["started_at"]
    assert at(again["requested_at"]) > at(first["requested_at"])
    assert (row.state, row.waiting_kind, row.waiting_for, row.waiting_attempt) == (
        SagaSummary.State.COMPENSATING,
        "compensation",
        "release_inventory",
        2,
    )
    assert row.waiting_since == at(again["requested_at"])


def test_a_given_up_compensation_shows_its_error_until_a_late_answer_finishes_it(
    place_waiting, switched_off, expire_overdue, deliver, settings
):
    settings.SAGA_COMPENSATION_ATTEMPTS = 1
    order_id = place_waiting()
    with switched_off("inventory.requests"):
        expire_overdue()
        expire_overdue()

    failed = saga_row(order_id)
    assert failed.state == SagaSummary.State.COMPENSATION_FAILED
    assert failed.compensations[0]["status"] == "failed"
    assert failed.compensations[0]["error"] == "no reply after 1 request(s)"
    assert failed.waiting_since is None

    deliver()

    row = saga_row(order_id)
    assert row.state == SagaSummary.State.COMPENSATED
    assert (row.compensations[0]["status"], row.compensations[0]["error"]) == ("succeeded", "")


def test_a_compensation_sent_again_after_it_was_given_up_is_shown_unfinished(
    place_waiting, switched_off, expire_overdue, settings
):
    settings.SAGA_COMPENSATION_ATTEMPTS = 1
    order_id = place_waiting()
    with switched_off("inventory.requests"):
        expire_overdue()
        expire_overdue()  # given up: finished, with an error
        assert saga_row(order_id).compensations[0]["finished_at"] is not None

        fulfilment.retry(order_id)

    [release] = saga_row(order_id).compensations
    assert (release["status"], release["attempt"], release["error"]) == ("started", 2, "")
    assert release["finished_at"] is None


def test_the_rows_log_is_the_aggregates_with_each_entrys_name_and_times(
    place_waiting, switched_off, expire_overdue, settings
):
    settings.SAGA_COMPENSATION_ATTEMPTS = 2
    order_id = place_waiting()
    with switched_off("inventory.requests"):
        for _ in range(3):  # the payment step fails, its release is sent twice, then given up
            expire_overdue()
        fulfilment.retry(order_id)

    saga, row = sagas.load(order_id, use_snapshot=False), saga_row(order_id)
    times = {"name", "started_at", "requested_at", "finished_at"}

    def log_of(entries):
        return {
            entry["name"]: {key: value for key, value in entry.items() if key not in times}
            for entry in entries
            if entry["status"] != Saga.PENDING
        }

    assert (log_of(row.steps), log_of(row.compensations)) == (saga.steps, saga.compensations)
    assert saga.compensations["release_inventory"] == {
        "status": Saga.STARTED,
        "error": "",
        "attempt": 3,
        "tries": 1,
    }
    assert (row.state, row.current_step) == (saga.state, saga.current_step)


def test_the_saga_row_stays_failed_while_another_compensation_is_given_up(make_product, place):
    make_product("p1")
    order_id = place(token="tok_timeout")
    saga = sagas.load(order_id)
    saga.step_failed(
        step="process_payment",
        error="no reply",
        reason="payment_timeout",
        compensations=["release_inventory"],
    )
    for name, event_type in [
        ("release_inventory", events.INVENTORY_RELEASE_REQUESTED),
        ("refund_payment", events.PAYMENT_REFUND_REQUESTED),
    ]:
        saga.request_compensation(compensation=name, event_type=event_type, payload={})
    saga.compensation_failed(compensation="release_inventory", error="no reply")
    saga.compensation_failed(compensation="refund_payment", error="no reply")
    saga.compensation_succeeded(compensation="refund_payment")
    sagas.save(saga)

    row = saga_row(order_id)
    assert row.state == SagaSummary.State.COMPENSATION_FAILED == saga.state
    assert [(entry["name"], entry["status"]) for entry in row.compensations] == [
        ("release_inventory", "failed"),
        ("refund_payment", "succeeded"),
    ]


def test_a_step_the_saga_did_not_announce_is_added_to_its_log(db):
    saga = Saga("s-1")
    saga.start(order_id="s-1", definition_version=1, steps=["reserve_inventory"])
    saga.request_step(step="process_payment", event_type=events.PAYMENT_REQUESTED, payload={})
    sagas.save(saga)

    row = saga_row("s-1")
    assert [(step["name"], step["status"]) for step in row.steps] == [
        ("reserve_inventory", "pending"),
        ("process_payment", "started"),
    ]
    assert row.waiting_for == "process_payment"


def test_a_request_on_a_stream_no_saga_started_makes_no_saga_row(db):
    event_store.append_to_stream(
        events.SAGA,
        "o-1",
        [NewEvent(events.INVENTORY_RESERVATION_REQUESTED, {"order_id": "o-1", "step": "x"}, {})],
    )

    assert not SagaSummary.objects.exists()


def test_a_request_the_saga_log_cannot_place_changes_only_the_rows_version(place_waiting):
    order_id = place_waiting()
    before = saga_row(order_id)
    # e.g. a staff script's release request without the compensation's name and attempt
    [odd] = event_store.append_to_stream(
        events.SAGA,
        order_id,
        [NewEvent(events.INVENTORY_RELEASE_REQUESTED, {"order_id": order_id}, {})],
        expected_version=before.version,
    )

    row = saga_row(order_id)
    assert row.version == odd.version == before.version + 1
    assert (row.state, row.steps, row.compensations, row.waiting_for) == (
        before.state,
        before.steps,
        before.compensations,
        before.waiting_for,
    )


def test_saga_events_on_another_stream_make_no_saga_row(db):
    append_event(
        aggregate_type="import",
        event_type=events.SAGA_STARTED,
        payload={"saga_id": "x", "order_id": "x", "definition_version": 1, "steps": []},
    )

    assert not SagaSummary.objects.exists()


def test_rebuilding_the_orders_read_models_from_the_log_reproduces_them(
    make_product, place, place_waiting, switched_off, expire_overdue, run_after_commit, settings
):
    settings.SAGA_COMPENSATION_ATTEMPTS = 1
    make_product("p1", stock=100)
    make_product("p2", stock=1)
    place([("p2", 2)])  # refused
    place(token="tok_decline")  # compensated
    place()  # completed
    fulfilment.execute(place(run_saga=False))  # waits for its reservation
    late, given_up = place_waiting(), place_waiting()  # wait for their payment
    with switched_off("inventory.requests"):
        expire_overdue()  # every step waited on fails; the releases go unanswered
        expire_overdue()  # ... and are given up
        with run_after_commit():  # a late payment, refunded
            payment_charge(
                payment_id=late,
                customer_id="c-1",
                amount=Decimal("12.50"),
                payment_token="tok_visa_success",
                metadata={"correlation_id": late},
            )
    assert saga_row(given_up).state == SagaSummary.State.COMPENSATION_FAILED

    call_command(
        "verify_projections", "orders.orders", "orders.sagas", "orders.catalog", verbosity=0
    )

    assert OrderSummary.objects.count() == SagaSummary.objects.count() == 6
    assert CatalogProduct.objects.count() == 2


# --- CatalogProduct ------------------------------------------------------------------------------


def test_a_created_product_enters_the_catalogue(make_product):
    make_product("p1", name="Blue widget")

    created = next(
        event
        for event in event_store.read_stream("product", "p1")
        if event.event_type == events.PRODUCT_CREATED
    )
    product = CatalogProduct.objects.get()
    assert (product.product_id, product.name, product.created_at) == (
        "p1",
        "Blue widget",
        created.recorded_at,
    )


def test_a_renamed_product_keeps_its_entry_under_the_new_name(make_product):
    make_product("p1", name="Blue widget")

    product_update(product_id="p1", name="Navy widget", reason="typo")

    assert list(CatalogProduct.objects.values_list("product_id", "name")) == [("p1", "Navy widget")]


def test_a_product_created_again_updates_its_catalogue_entry(make_product):
    make_product("p1", name="Blue widget")
    again = RecordedEvent(
        position=999,
        event_id=uuid.uuid4(),
        aggregate_type="product",
        aggregate_id="p1",
        version=1,
        event_type=events.PRODUCT_CREATED,
        schema_version=1,
        payload={"product_id": "p1", "name": "Blue widget v2", "price": "1.00"},
        metadata={},
        recorded_at=timezone.now(),
    )

    CatalogProjection().apply(again)

    product = CatalogProduct.objects.get()
    assert (product.name, product.created_at) == ("Blue widget v2", again.recorded_at)
