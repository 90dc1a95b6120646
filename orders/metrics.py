"""Orders' Prometheus series: orders by outcome, time to the final state, sagas by state.

Orders are counted from their final events (OrderCompleted, OrderCancelled, and OrderRefunded:
a completed order cancelled, counted again under its new outcome) as they are
appended, in an on-commit callback: an append that rolls back counts nothing, and a saga
step handled again after it rolled back appends (and counts) its final event once. Replays
and projection rebuilds append nothing, so they count nothing either. Sagas by state are read
from the saga read model at scrape time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db.models import Count
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from eventstore.api import RecordedEvent, on_commit_robust
from orders.events import ORDER, ORDER_CANCELLED, ORDER_COMPLETED, ORDER_CREATED, ORDER_REFUNDED
from orders.models import OrderSummary, SagaSummary

_OUTCOMES = {
    ORDER_COMPLETED: "completed",
    ORDER_CANCELLED: "cancelled",
    ORDER_REFUNDED: "refunded",
}

orders_total = Counter(
    "orders_total",
    "Orders that reached their final state, by outcome (and a cancellation's reason).",
    ["outcome", "reason"],
)

orders_seconds_to_final = Histogram(
    "orders_seconds_to_final",
    "Seconds from an order's OrderCreated to its final event.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 86400),
)


# When orders placed in this process were created (OrderCreated's recorded_at, as the order's
# read model has it), for the time to final without a query: a bounded, oldest-out memory.
_created_at: OrderedDict[str, datetime] = OrderedDict()
REMEMBERED_ORDERS = 10_000


def count_final_orders(sender: Any = None, events: Iterable[RecordedEvent] = (), **kwargs):
    """`events_recorded` receiver: once the append commits, count each order that reached its
    final state and the time it took."""
    final = []
    for event in events:
        if event.aggregate_type != ORDER:
            continue
        if event.event_type == ORDER_CREATED:
            _created_at[event.aggregate_id] = event.recorded_at
            if len(_created_at) > REMEMBERED_ORDERS:
                _created_at.popitem(last=False)
        elif event.event_type in _OUTCOMES:
            final.append(event)
    if not final:
        return
    created_at = {e.aggregate_id: _created_at.pop(e.aggregate_id, None) for e in final}
    unknown = {order_id for order_id, at in created_at.items() if at is None}
    if unknown:  # placed by another process, or before this one started
        created_at.update(
            OrderSummary.objects.filter(order_id__in=unknown).values_list("order_id", "created_at")
        )
    outcomes = []
    for event in final:
        cancelled = event.event_type == ORDER_CANCELLED
        reason = str(event.payload.get("reason") or "") if cancelled else ""
        started = created_at.get(event.aggregate_id)
        # The time to final is the fulfilment's: a refund later is not part of it.
        if event.event_type == ORDER_REFUNDED:
            started = None
        seconds = (event.recorded_at - started).total_seconds() if started else None
        outcomes.append((_OUTCOMES[event.event_type], reason, seconds))
    on_commit_robust(_count, outcomes)


def _count(outcomes: list[tuple[str, str, float | None]]) -> None:
    for outcome, reason, seconds in outcomes:
        orders_total.labels(outcome=outcome, reason=reason).inc()
        if seconds is not None:
            orders_seconds_to_final.observe(max(seconds, 0.0))


class SagaStateCollector(Collector):
    """saga_instances{state}: sagas in each state (every state, 0 included), one GROUP BY."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict.fromkeys(SagaSummary.State.values, 0)
        counts.update(
            SagaSummary.objects.order_by()
            .values_list("state")
            .annotate(count=Count("saga_id"))
            .values_list("state", "count")
        )
        family = GaugeMetricFamily(
            "saga_instances",
            "Sagas (fulfilment and cancellation) in each state.",
            labels=["state"],
        )
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family
