"""Notifications' Prometheus series: email deliveries by outcome.

Counted from the delivery events as they are appended (NotificationDelivered: delivered;
NotificationDeliveryFailed: failed, or parked when no automatic attempt follows), in an
on-commit callback: each recorded outcome counts once, and an append that rolls back counts
nothing. An email sent whose delivery could not be recorded (a crash between the two) is
counted when its repeat is recorded.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from prometheus_client import Counter

from notifications import events as notification_events

deliveries = Counter(
    "notifications_delivery_total",
    "Notification delivery attempts recorded, by outcome (delivered, failed, parked).",
    ["outcome"],
)


def _outcome(event) -> str | None:
    if event.aggregate_type != notification_events.NOTIFICATION:
        return None
    if event.event_type == notification_events.NOTIFICATION_DELIVERED:
        return "delivered"
    if event.event_type == notification_events.NOTIFICATION_DELIVERY_FAILED:
        return "parked" if event.payload.get("parked") else "failed"
    return None


def count_deliveries(sender: Any = None, events=(), **kwargs: Any) -> None:
    """`events_recorded` receiver: once the append commits, count each delivery outcome."""
    outcomes = [outcome for outcome in map(_outcome, events) if outcome]
    if outcomes:
        transaction.on_commit(partial(_count, outcomes), robust=True)


def _count(outcomes: list[str]) -> None:
    for outcome in outcomes:
        deliveries.labels(outcome=outcome).inc()
