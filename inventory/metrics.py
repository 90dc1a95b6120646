"""Inventory's Prometheus series: the units staff's stock corrections added and removed, by
reason (what an operator reads to see shrinkage: damaged, lost, stolen).

Counted from StockAdjusted events as they are appended, in an on-commit callback: an append
that rolls back counts nothing, and replays and rebuilds append (and count) nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter

from eventstore.api import RecordedEvent, on_commit_robust
from inventory.events import STOCK_ADJUSTED

inventory_stock_adjusted_units_total = Counter(
    "inventory_stock_adjusted_units_total",
    "Units staff's stock corrections added to or removed from available stock, by reason.",
    ["reason", "direction"],
)


def count_stock_adjustments(sender: Any = None, events: Iterable[RecordedEvent] = (), **kwargs):
    """`events_recorded` receiver: once the append commits, count each correction's units."""
    corrections = [
        (event.payload["reason"], event.payload["quantity"])
        for event in events
        if event.event_type == STOCK_ADJUSTED
    ]
    if corrections:
        on_commit_robust(_count, corrections)


def _count(corrections: list[tuple[str, int]]) -> None:
    for reason, quantity in corrections:
        direction = "added" if quantity > 0 else "removed"
        inventory_stock_adjusted_units_total.labels(reason=reason, direction=direction).inc(
            abs(quantity)
        )
