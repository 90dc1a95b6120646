"""Orders' series (orders_total, orders_seconds_to_final, saga_instances), and a scrape after an
order placed through the API naming every series of the project."""

from collections import OrderedDict

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from eventstore.observability.metrics import scrape_registry
from eventstore.store import NewEvent, event_store
from orders import events, metrics
from orders.models import SagaSummary
from orders.services import order_cancel

pytestmark = pytest.mark.django_db

SERIES = [
    "eventstore_events_appended_total",
    "eventstore_subscriber_lag_events",
    "eventstore_subscriber_errors_total",
    "eventstore_subscribers_parked",
    "orders_total",
    "orders_seconds_to_final",
    "saga_instances",
    "payments_gateway_seconds",
    "notifications_delivery_total",
]


def orders(outcome, reason=""):
    labels = {"outcome": outcome, "reason": reason}
    return REGISTRY.get_sample_value("orders_total", labels) or 0.0


def finals():
    return REGISTRY.get_sample_value("orders_seconds_to_final_count") or 0.0


def sagas(state):
    return scrape_registry().get_sample_value("saga_instances", {"state": state})


def test_a_completed_order_counts_once_with_its_time_to_completion(make_product, place):
    make_product("p1", stock=10)
    completed, timed = orders("completed"), finals()

    place([("p1", 2)])

    assert orders("completed") == completed + 1
    assert finals() == timed + 1


def test_an_order_placed_by_another_process_is_timed_from_its_read_model(
    make_product, place, deliver, monkeypatch
):
    make_product("p1", stock=10)
    place([("p1", 2)], run_saga=False)
    # This process never saw the order placed: its creation time comes from the read model.
    monkeypatch.setattr(metrics, "_created_at", OrderedDict())
    timed = finals()

    deliver()

    assert finals() == timed + 1  # timed only when its creation time was found


def test_a_cancelled_order_counts_with_its_reason(make_product, place):
    make_product("p1", stock=1)
    cancelled, timed = orders("cancelled", "insufficient_stock"), finals()

    place([("p1", 2)])

    assert orders("cancelled", "insufficient_stock") == cancelled + 1
    assert finals() == timed + 1


def test_a_completed_order_cancelled_counts_again_as_refunded_untimed(
    make_product, place, run_after_commit
):
    make_product("p1", stock=10)
    order_id = place([("p1", 2)])
    refunded, completed, timed = orders("refunded"), orders("completed"), finals()

    with run_after_commit():
        order_cancel(order_id=order_id, reason="a reason that is no label")

    assert orders("refunded") == refunded + 1
    assert orders("completed") == completed
    assert finals() == timed


def test_an_order_whose_saga_has_not_run_counts_nothing(make_product, place):
    make_product("p1", stock=10)
    completed = orders("completed")

    place([("p1", 2)], run_saga=False)

    assert orders("completed") == completed


def test_sagas_are_counted_by_state_at_scrape_time_every_state_shown(make_product, place):
    make_product("p1", stock=10)
    assert {state: sagas(state) for state in SagaSummary.State.values} == dict.fromkeys(
        SagaSummary.State.values, 0
    )

    place([("p1", 2)])
    place([("p1", 2)], token="tok_decline")

    assert sagas("completed") == 1
    assert sagas("compensated") == 1
    assert sagas("running") == 0


def test_a_scrape_after_an_order_placed_through_the_api_names_every_series(
    customer_client, staff_client, make_product, run_after_commit
):
    make_product("p1", stock=10)
    with run_after_commit():
        placed = customer_client.post(
            "/api/orders/", {"items": [{"product_id": "p1", "quantity": 1}]}, format="json"
        )
    assert placed.status_code == 201

    response = staff_client.get("/metrics")

    assert response.status_code == 200
    text = response.content.decode()
    missing = [name for name in SERIES if f"# TYPE {name.removesuffix('_total')}" not in text]
    assert missing == []
    assert 'orders_total{outcome="completed",reason=""}' in text
    assert 'saga_instances{state="completed"} 1.0' in text


def test_a_final_event_counts_only_when_its_append_commits(
    django_capture_on_commit_callbacks,
):
    completed = orders("completed")
    final = NewEvent(events.ORDER_COMPLETED, {"order_id": "o-1"})

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        event_store.append_to_stream(events.ORDER, "o-1", [final])
        raise RuntimeError("rolled back")
    assert orders("completed") == completed

    with django_capture_on_commit_callbacks(execute=True):
        event_store.append_to_stream(events.ORDER, "o-1", [final])  # the retry commits
    assert orders("completed") == completed + 1
