"""Notifications' Prometheus series: email deliveries and pushes by outcome.

Counted from the delivery events as they are appended (NotificationDelivered: delivered;
NotificationDeliveryFailed: failed, or parked when no automatic attempt follows; likewise
NotificationPushed and NotificationPushFailed for pushes, and a subscription removed as gone
counts a push outcome `gone`), in an
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

pushes = Counter(
    "notifications_push_total",
    "Web Push outcomes recorded, by outcome (delivered, failed, parked, gone).",
    ["outcome"],
)


def _outcome(event) -> tuple[Counter, str] | None:
    if event.aggregate_type == notification_events.PUSH_SUBSCRIPTION:
        if event.event_type == notification_events.PUSH_SUBSCRIPTION_REMOVED:
            return (pushes, "gone") if event.payload.get("reason") == "gone" else None
        return None
    if event.aggregate_type != notification_events.NOTIFICATION:
        return None
    failed = "parked" if event.payload.get("parked") else "failed"
    return {
        notification_events.NOTIFICATION_DELIVERED: (deliveries, "delivered"),
        notification_events.NOTIFICATION_DELIVERY_FAILED: (deliveries, failed),
        notification_events.NOTIFICATION_PUSHED: (pushes, "delivered"),
        notification_events.NOTIFICATION_PUSH_FAILED: (pushes, failed),
    }.get(event.event_type)


def count_deliveries(sender: Any = None, events=(), **kwargs: Any) -> None:
    """`events_recorded` receiver: once the append commits, count each delivery outcome."""
    outcomes = [outcome for outcome in map(_outcome, events) if outcome]
    if outcomes:
        transaction.on_commit(partial(_count, outcomes), robust=True)


def _count(outcomes: list[tuple[Counter, str]]) -> None:
    for counter, outcome in outcomes:
        counter.labels(outcome=outcome).inc()
