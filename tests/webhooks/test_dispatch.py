"""The dispatcher on the effects machinery: a call owed at append, made outside the append's
transaction; orders shown as the API shows them; deliveries counted by outcome."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from eventstore.follower.effects import run_due
from eventstore.follower.subscriptions import catch_up
from eventstore.models import Effect
from orders.models import OrderSummary
from tests.factories import append_event
from webhooks import services
from webhooks.handlers import WebhookDispatcher
from webhooks.metrics import deliveries as delivery_counter
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db


def order_completed(order_id="o1"):
    return append_event(
        "order",
        order_id,
        event_type="OrderCompleted",
        payload={"order_id": order_id, "customer_id": "c1", "items": [], "total_amount": "7.50"},
    )


def test_the_worker_owes_a_call_for_a_wanted_public_event_and_delivers_it(receiver):
    services.endpoint_create(url=receiver.url, event_types=["order.completed"])
    event = order_completed()
    append_event("order", event_type="OrderConfirmed", payload={"order_id": "o2"})
    assert not Effect.objects.filter(subscriber=WebhookDispatcher.name).exists()  # not at append

    catch_up(WebhookDispatcher())

    [effect] = Effect.objects.filter(subscriber=WebhookDispatcher.name)
    assert effect.event_id == event.event_id
    assert Delivery.objects.get().status == "delivered"
    assert json.loads(receiver.requests[0][1])["type"] == "order.completed"


def test_an_endpoint_registered_elsewhere_is_seen_by_the_next_event(receiver):
    dispatcher = WebhookDispatcher()
    order_completed("o1")
    catch_up(dispatcher)  # no endpoint yet: nothing owed
    assert not Effect.objects.filter(subscriber=WebhookDispatcher.name).exists()
    # Another process registers an endpoint: written straight to the table, no signal here.
    services.endpoint_create(url=receiver.url)
    event = order_completed("o2")
    catch_up(dispatcher)
    [effect] = Effect.objects.filter(subscriber=WebhookDispatcher.name)
    assert effect.event_id == event.event_id
    assert run_due(dispatcher) == 0  # made by the catch-up already
    assert [h["webhook-id"] for h, _ in receiver.requests] == [f"msg_{event.event_id.hex}"]


def test_with_no_endpoint_an_append_owes_nothing_and_a_batch_reads_endpoints_once(
    django_assert_num_queries,
):
    dispatcher = WebhookDispatcher()
    public = [order_completed("o1"), order_completed("o2")]
    other = append_event("order", event_type="OrderConfirmed", payload={"order_id": "o3"})
    assert not any(dispatcher.owes(event) for event in [*public, other])
    with django_assert_num_queries(0):
        dispatcher.handle_batch([other])
    with django_assert_num_queries(1):
        dispatcher.handle_batch([*public, other])
    assert not Effect.objects.exists()


def test_an_order_is_shown_as_get_api_orders_shows_it(receiver, staff_client):
    now = timezone.now()
    OrderSummary.objects.create(
        order_id="o1",
        customer_id="c1",
        status="completed",
        items=[{"product_id": "p1", "quantity": 1, "unit_price": "7.50"}],
        total_amount="7.50",
        version=5,
        created_at=now,
        updated_at=now,
    )
    services.endpoint_create(url=receiver.url)
    WebhookDispatcher().perform(order_completed(), attempt=1)

    data = json.loads(receiver.requests[0][1])["data"]
    assert data == staff_client.get("/api/orders/o1/").json()


def test_deliveries_are_counted_by_outcome(receiver):
    services.endpoint_create(url=receiver.url)
    delivered = delivery_counter.labels("delivered")._value.get()
    retried = delivery_counter.labels("retry")._value.get()
    receiver.answer(503)
    WebhookDispatcher().perform(order_completed("o1"), attempt=1)
    WebhookDispatcher().perform(order_completed("o2"), attempt=1)
    assert delivery_counter.labels("retry")._value.get() == retried + 1
    assert delivery_counter.labels("delivered")._value.get() == delivered + 1


def test_a_delivery_whose_worker_died_is_sent_again_with_the_same_id(receiver):
    services.endpoint_create(url=receiver.url)
    event = order_completed()
    [delivery] = services.owe_deliveries(event)
    assert services.claim(delivery)  # a worker took it and died before recording the answer
    assert services.deliver_due() == 0  # its lease holds
    Delivery.objects.update(next_attempt_at=timezone.now())  # the lease ran out
    assert services.deliver_due() == 1
    assert receiver.requests[0][0]["webhook-id"] == f"msg_{event.event_id.hex}"


def test_events_recorded_before_an_endpoint_was_registered_are_only_sent_by_replay(receiver):
    before = order_completed("o1")
    endpoint = services.endpoint_create(url=receiver.url)
    catch_up(WebhookDispatcher())  # the worker follows after the endpoint was registered
    assert not Effect.objects.filter(subscriber=WebhookDispatcher.name).exists()
    assert services.owe_deliveries(before) == []

    services.replay_start(endpoint, after_position=before.position - 1)
    services.replay_continue()
    services.deliver_due()
    assert [h["webhook-id"] for h, _ in receiver.requests] == [f"msg_{before.event_id.hex}"]
