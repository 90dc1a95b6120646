"""Scenario: with tracing on, one order is one trace, from the POST through every reaction; with
tracing off, no trace context is stored."""

import pytest
from django.core.management import call_command
from opentelemetry.trace import SpanKind

from eventstore.store import event_store

pytestmark = pytest.mark.django_db(transaction=True)

TRACE_KEYS = {"traceparent", "tracestate"}


def place_order(spans, shop, customer_client):
    """Stock a product, forget the spans that took, place an order; (order id, its spans)."""
    shop.add_product("sku-widget", price="9.99", stock=10)
    spans.clear()
    placed = shop.place_order(customer_client, {"sku-widget": 2})
    assert placed["status"] == "completed"
    return placed["order_id"], list(spans.get_finished_spans())


def named(finished, name, **attributes):
    """The spans called `name` whose attributes include `attributes`."""
    return [
        span
        for span in finished
        if span.name == name
        and all(span.attributes.get(key) == value for key, value in attributes.items())
    ]


def one(finished, name, **attributes):
    [span] = named(finished, name, **attributes)
    return span


def parent_of(finished, span):
    [parent] = [other for other in finished if other.context.span_id == span.parent.span_id]
    return parent


def test_the_request_and_every_reaction_share_one_trace(spans, shop, customer_client):
    order_id, finished = place_order(spans, shop, customer_client)

    [request] = [span for span in finished if span.kind == SpanKind.SERVER]
    assert request.attributes["http.method"] == "POST"
    assert request.parent is None
    assert {span.context.trace_id for span in finished} == {request.context.trace_id}
    assert [span for span in finished if span.parent is None] == [request]
    names = {span.name for span in finished}
    assert {
        "eventstore.append",
        "eventstore.subscriber_batch",
        "saga.step reserve_inventory",
        "saga.reply reserve_inventory",
        "saga.step process_payment",
        "saga.reply process_payment",
        "saga.step confirm_order",
        "saga.step complete_order",
        "payments.gateway.charge",
        "notifications.email.send",
        # Calls are owed as their intents are appended: they are made, not handled in a batch.
        "perform payments.requests",
        "perform notifications.delivery",
    } <= names
    batches = {
        span.attributes["eventstore.subscriber"]
        for span in named(finished, "eventstore.subscriber_batch")
    }
    assert batches == {"orders.saga", "inventory.requests", "notifications.orders"}
    assert all(
        span.attributes["eventstore.correlation_id"] == order_id
        for span in finished
        if span.name.startswith("handle ")
    )


def test_each_reaction_is_a_child_of_the_append_that_recorded_its_event(
    spans, shop, customer_client
):
    order_id, finished = place_order(spans, shop, customer_client)
    [request] = [span for span in finished if span.kind == SpanKind.SERVER]

    # The request appends the order; the saga handles it as a child of that append, in a
    # batch the request's after-commit wake-up ran (linked).
    placed = one(finished, "eventstore.append", **{"eventstore.streams": (f"order/{order_id}",)})
    assert parent_of(finished, placed) is request
    started = one(finished, "handle OrderCreated", **{"eventstore.subscriber": "orders.saga"})
    assert parent_of(finished, started) is placed
    [link] = started.links
    batch = next(s for s in finished if s.context.span_id == link.context.span_id)
    assert batch.name == "eventstore.subscriber_batch"
    assert batch.attributes["eventstore.subscriber"] == "orders.saga"
    assert parent_of(finished, batch) is request
    assert parent_of(finished, one(finished, "saga.step reserve_inventory")) is started

    # The charge: the saga's step after the reservation, the request event appended with it,
    # the call made for that event, and the gateway's span inside the call.
    reserved = one(finished, "handle InventoryReserved", **{"eventstore.subscriber": "orders.saga"})
    reply = one(finished, "saga.reply reserve_inventory")
    assert parent_of(finished, reply) is reserved
    assert parent_of(finished, one(finished, "saga.step process_payment")) is reply
    charge = one(finished, "payments.gateway.charge")
    assert charge.kind == SpanKind.CLIENT
    assert charge.attributes["payments.approved"] is True
    call = parent_of(finished, charge)
    assert call.name == "perform payments.requests"
    assert call.attributes["eventstore.event_type"] == "PaymentRequested"
    requested = parent_of(finished, call)
    assert requested.name == "eventstore.append"
    assert f"saga/{order_id}" in requested.attributes["eventstore.streams"]
    assert parent_of(finished, requested) is reserved

    # The payment's outcome, appended inside the call, drives the saga on to completion.
    processed = one(finished, "handle PaymentProcessed", **{"eventstore.subscriber": "orders.saga"})
    assert parent_of(finished, parent_of(finished, processed)) is call
    for step in ("confirm_order", "complete_order"):
        assert (
            parent_of(finished, one(finished, f"saga.step {step}")).name
            == "saga.reply process_payment"
        )


def test_every_event_of_the_order_carries_the_context_of_the_append_that_recorded_it(
    spans, shop, customer_client
):
    order_id, finished = place_order(spans, shop, customer_client)
    appends = {span.context.span_id: span for span in named(finished, "eventstore.append")}
    trace_id = finished[0].context.trace_id

    history = event_store.read_correlated(order_id)
    assert len(history) > 10
    for event in history:
        version, trace, parent, flags = event.metadata["traceparent"].split("-")
        assert (version, int(trace, 16)) == ("00", trace_id)
        assert int(flags, 16) & 1  # sampled
        append = appends[int(parent, 16)]
        assert (
            f"{event.aggregate_type}/{event.aggregate_id}"
            in append.attributes["eventstore.streams"]
        )
        assert event.correlation_id == order_id


def test_without_tracing_no_trace_context_is_stored(shop, customer_client):
    shop.add_product("sku-widget", price="9.99", stock=10)
    placed = shop.place_order(customer_client, {"sku-widget": 2})

    history = event_store.read_correlated(placed["order_id"])
    assert placed["status"] == "completed"
    assert len(history) > 10
    assert all(TRACE_KEYS.isdisjoint(event.metadata) for event in history)
    assert all(TRACE_KEYS.isdisjoint(event.metadata) for event in event_store.read_all())


def test_a_declined_order_traces_its_failure_and_compensation_in_the_same_trace(
    spans, shop, customer_client
):
    shop.add_product("sku-widget", price="9.99", stock=10)
    spans.clear()
    placed = shop.place_order(customer_client, {"sku-widget": 1}, payment_token="tok_decline")
    assert placed["status"] == "cancelled"
    finished = list(spans.get_finished_spans())

    assert len({span.context.trace_id for span in finished}) == 1
    charge = one(finished, "payments.gateway.charge")
    assert charge.attributes["payments.approved"] is False
    assert charge.attributes["payments.reason"] == "card_declined"
    reply = one(finished, "saga.reply process_payment", **{"saga.succeeded": False})
    failed = one(finished, "saga.failed process_payment", **{"saga.reason": "card_declined"})
    assert parent_of(finished, failed) is reply
    compensate = one(finished, "saga.compensate release_inventory")
    assert parent_of(finished, compensate) is reply
    released = one(finished, "handle InventoryReleased", **{"eventstore.subscriber": "orders.saga"})
    assert parent_of(finished, one(finished, "saga.compensated release_inventory")) is released


def test_a_timed_out_step_is_given_up_in_the_orders_trace(spans, shop, customer_client, settings):
    shop.add_product("sku-widget", price="9.99", stock=10)
    spans.clear()
    placed = shop.place_order(customer_client, {"sku-widget": 1}, payment_token="tok_timeout")
    [request] = [span for span in spans.get_finished_spans() if span.kind == SpanKind.SERVER]
    spans.clear()

    settings.SAGA_STEP_TIMEOUT = settings.SAGA_QUEUE_TIMEOUT = 0
    call_command("expire_sagas", verbosity=0)

    assert shop.order(customer_client, placed["order_id"])["status"] == "cancelled"
    finished = list(spans.get_finished_spans())
    expired = one(finished, "saga.expire process_payment")
    assert expired.context.trace_id == request.context.trace_id
    assert parent_of(finished, one(finished, "saga.failed process_payment")) is expired
    compensated = one(finished, "saga.compensated release_inventory")
    assert compensated.context.trace_id == request.context.trace_id
