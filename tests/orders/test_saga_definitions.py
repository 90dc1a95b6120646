"""The saga's definitions: the step table is the whole saga (its requests, the replies routed to
it), and across deploys a saga keeps the definition version it started with."""

from dataclasses import replace

import pytest

from eventstore.aggregates import UnknownEventError
from eventstore.models import Event
from eventstore.store import event_store
from orders import events
from orders.aggregates import IllegalTransition, Order, Saga, Waiting
from orders.saga import FULFILMENT_V1, Step, fulfilment
from tests.orders.sagas import order_of, saga_of

pytestmark = pytest.mark.django_db


# --- the step table ------------------------------------------------------------------------------


def test_the_requests_a_saga_sends_are_read_off_every_kept_definition(monkeypatch):
    wrap = Step("wrap_gift").invoke("GiftWrapRequested", lambda run: {}, key="order_id")
    monkeypatch.setattr(
        fulfilment, "definitions", {1: FULFILMENT_V1, 2: (*FULFILMENT_V1[:2], wrap)}
    )

    assert fulfilment.requests == {
        events.INVENTORY_RESERVATION_REQUESTED,
        events.INVENTORY_RELEASE_REQUESTED,
        events.PAYMENT_REQUESTED,
        events.PAYMENT_REFUND_REQUESTED,
        "GiftWrapRequested",
    }


def test_a_new_steps_request_is_applied_by_what_it_names_without_a_list_of_types(replayed):
    saga = Saga("o-1")
    saga.start(order_id="o-1", definition_version=2, steps=["wrap_gift"])
    saga.request_step(step="wrap_gift", event_type="GiftWrapRequested", payload={})
    saga.step_failed(step="wrap_gift", error="e", reason="r", compensations=["unwrap_gift"])
    saga.request_compensation(
        compensation="unwrap_gift", event_type="GiftUnwrapRequested", payload={}
    )

    assert saga.waiting_for() == Waiting("compensation", "unwrap_gift", 1)
    assert replayed(saga).snapshot() == saga.snapshot()


def test_an_event_that_is_neither_the_sagas_nor_a_request_is_refused():
    saga = Saga("o-1")

    with pytest.raises(UnknownEventError, match="Saga cannot apply GiftWrapped"):
        saga.replay_payload(1, "GiftWrapped", {"order_id": "o-1"})


def test_replies_name_the_order_by_the_services_own_id():
    keys = {event_type: reply.order_key for event_type, reply in fulfilment.replies.items()}

    assert set(keys.values()) == {"reservation_id", "payment_id"}
    assert keys[events.INVENTORY_RELEASED] == "reservation_id"
    assert keys[events.PAYMENT_REFUNDED] == "payment_id"


# --- definition versions -------------------------------------------------------------------------

# A later definition: stock only, and the order is left alone (no handlers on the order).
RESERVE_ONLY = (replace(FULFILMENT_V1[0], succeeded=None, failed=None),)


def upgrade_to_version_2(monkeypatch):
    """Make RESERVE_ONLY the current definition (version 2), keeping version 1 for sagas in
    flight."""
    monkeypatch.setattr(fulfilment, "definitions", {1: FULFILMENT_V1, 2: RESERVE_ONLY})


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
    assert old.succeeded_steps == [step.name for step in FULFILMENT_V1]
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
    monkeypatch.setattr(fulfilment, "definitions", {2: RESERVE_ONLY})
    count = Event.objects.count()

    with pytest.raises(LookupError, match="No saga definition version 1 is kept"):
        fulfilment.compensate(order_id, "process_payment")

    assert Event.objects.count() == count


def test_a_compensation_the_definition_no_longer_has_is_refused(release_given_up, monkeypatch):
    order_id = release_given_up()
    without_compensations = tuple(replace(step, compensation=None) for step in FULFILMENT_V1)
    monkeypatch.setattr(fulfilment, "definitions", {1: without_compensations})
    count = Event.objects.count()

    with pytest.raises(IllegalTransition, match="has no compensation 'release_inventory'"):
        fulfilment.retry(order_id)

    assert Event.objects.count() == count
