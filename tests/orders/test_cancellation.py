"""Cancelling an order after it was placed: `order_cancel`, the fulfilment stopping at its next
step, and the cancellation saga of a completed order (refund, stock returned, customer told)."""

import pytest

from eventstore.models import Event
from eventstore.store import event_store
from orders import events
from orders.aggregates import Saga
from orders.models import OrderSummary, SagaSummary
from orders.saga import cancellation, saga_retry
from orders.services import IdempotencyKeyReused, OrderNotCancellable, order_cancel, orders
from payments.gateway import get_gateway


@pytest.fixture
def cancel(run_after_commit):
    """A function asking to cancel an order and running what that sets off."""

    def cancel_order(order_id, **kwargs):
        with run_after_commit():
            return order_cancel(order_id=order_id, **kwargs)

    return cancel_order


def refunds_at_provider():
    return dict(get_gateway().refunds)


def sent_types(order_id):
    return list(
        Event.objects.filter(event_type="NotificationSent", payload__order_id=order_id).values_list(
            "payload__type", flat=True
        )
    )


def test_a_completed_order_is_refunded_once_its_stock_returned_and_its_customer_told(
    product, place, cancel, stock_of
):
    order_id = place(items=(("p1", 3),))
    assert stock_of("p1") == (97, 0, 3)

    cancelled = cancel(order_id, reason="changed my mind")

    assert cancelled.recorded
    order = orders.load(order_id)
    assert order.status == "refunded"
    assert refunds_at_provider() == {f"refund:{order_id}": order.transaction_id}
    assert stock_of("p1") == (100, 0, 0)
    assert sent_types(order_id) == ["order_confirmed", "order_completed", "order_refunded"]
    refunded = Event.objects.get(event_type="NotificationSent", payload__type="order_refunded")
    assert "changed my mind" in refunded.payload["body"]
    assert "37.50 is refunded in full" in refunded.payload["body"]
    row = OrderSummary.objects.get(pk=order_id)
    assert (row.status, row.cancellation_note) == ("refunded", "changed my mind")


def test_the_cancellation_saga_has_its_own_stream_step_log_and_definition(product, place, cancel):
    order_id = place()

    cancel(order_id)

    saga = cancellation.repository.load(order_id)
    assert (saga.state, saga.definition_version) == (Saga.COMPLETED, 1)
    assert saga.succeeded_steps == ["refund_payment", "return_stock", "refund_order"]
    rows = {row.kind: row for row in SagaSummary.objects.filter(order_id=order_id)}
    assert (rows["fulfilment"].state, rows["cancellation"].state) == ("completed", "completed")
    assert [s["status"] for s in rows["cancellation"].steps] == ["succeeded"] * 3
    assert rows["cancellation"].saga_id == f"cancellation/{order_id}"


def test_a_second_cancellation_is_refused_with_the_orders_status(product, place, cancel):
    order_id = place()
    cancel(order_id)

    with pytest.raises(OrderNotCancellable) as refused:
        cancel(order_id)

    assert refused.value.status == "refunded"
    assert len(refunds_at_provider()) == 1


def test_a_repeat_under_the_same_idempotency_key_is_a_replay(product, place, cancel):
    order_id = place()
    cancel(order_id, idempotency_key="k1", idempotency_scope="user:1")

    again = cancel(order_id, idempotency_key="k1", idempotency_scope="user:1")

    assert not again.recorded
    assert again.order.status == "refunded"
    with pytest.raises(OrderNotCancellable):
        cancel(order_id, idempotency_key="k2", idempotency_scope="user:1")
    with pytest.raises(IdempotencyKeyReused):
        cancel(order_id, reason="another", idempotency_key="k1", idempotency_scope="user:1")


def test_an_order_cancelled_before_its_saga_started_is_cancelled_without_a_request(
    product, place, cancel, stock_of
):
    order_id = place(run_saga=False)

    cancel(order_id)

    order = orders.load(order_id)
    assert order.status == "cancelled"
    assert OrderSummary.objects.get(pk=order_id).cancel_reason == "cancel_requested"
    assert stock_of("p1") == (100, 0, 0)
    assert sent_types(order_id) == ["order_cancelled"]


def test_a_cancellation_while_the_stock_is_reserved_stops_before_the_payment(
    product, place, cancel, deliver, switched_off, stock_of
):
    with switched_off("inventory.requests"):
        order_id = place()
        cancel(order_id)
        assert orders.load(order_id).status == "pending"  # the saga waits on its reservation
    deliver()

    assert orders.load(order_id).status == "cancelled"
    assert OrderSummary.objects.get(pk=order_id).cancel_reason == "cancel_requested"
    assert stock_of("p1") == (100, 0, 0)
    assert not Event.objects.filter(event_type=events.PAYMENT_REQUESTED).exists()
    body = Event.objects.get(event_type="NotificationSent").payload["body"]
    assert "you have not been charged" in body


def test_a_cancellation_while_the_payment_is_asked_for_refunds_it_once_paid(
    product, place, cancel, deliver, switched_off, stock_of
):
    with switched_off("payments.requests"):
        order_id = place()
        cancel(order_id)
        assert orders.load(order_id).status == "inventory_reserved"
    deliver()

    order = orders.load(order_id)
    assert order.status == "refunded"
    assert refunds_at_provider() == {f"refund:{order_id}": order.transaction_id}
    assert stock_of("p1") == (100, 0, 0)


def test_a_refund_that_times_out_is_asked_again_and_done_once(
    product, place, cancel, deliver, switched_off, expire_overdue, stock_of, settings
):
    settings.PAYMENTS_GATEWAY = "tests.gateways.AskedGateway"
    get_gateway.cache_clear()
    order_id = place()
    with switched_off("payments.requests"):
        cancel(order_id)
        assert expire_overdue() == [order_id]
        saga = cancellation.repository.load(order_id)
        assert (saga.state, saga.steps["refund_payment"]["attempt"]) == (Saga.RUNNING, 2)
        assert orders.load(order_id).status == "cancelling"
    deliver()

    assert orders.load(order_id).status == "refunded"
    assert len(refunds_at_provider()) == 1
    assert [call for call, _ in get_gateway().asked if call == "refund"] == ["refund"]
    assert stock_of("p1") == (100, 0, 0)


def test_a_refund_never_answered_parks_the_saga_with_the_order_cancelling(
    product, place, cancel, deliver, switched_off, expire_overdue, settings, stock_of
):
    settings.SAGA_COMPENSATION_ATTEMPTS = 2
    order_id = place()
    with switched_off("payments.requests"):
        cancel(order_id)
        expire_overdue()
        expire_overdue()

        row = SagaSummary.objects.get(order_id=order_id, kind="cancellation")
        assert row.state == "compensation_failed"
        assert row.steps[0]["status"] == "failed"
        assert "no reply after 2 request(s)" in row.steps[0]["error"]
        assert OrderSummary.objects.get(pk=order_id).status == "cancelling"
        assert stock_of("p1") == (98, 0, 2)  # nothing returned while the money is not

        saga_retry(order_id=order_id, kind="cancellation")
    deliver()

    assert orders.load(order_id).status == "refunded"
    assert stock_of("p1") == (100, 0, 0)


def test_an_order_failing_or_cancelled_cannot_be_cancelled(make_product, place, cancel):
    make_product("p1", stock=1)
    order_id = place(items=(("p1", 2),))  # short of stock: cancelled

    with pytest.raises(OrderNotCancellable) as refused:
        cancel(order_id)

    assert refused.value.status == "cancelled"
    assert not event_store.read_stream(events.CANCELLATION, order_id)
