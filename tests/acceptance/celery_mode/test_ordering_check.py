"""The ordering check the celery-mode tests rely on (checks.out_of_order_reactions), on made-up
logs: it runs without any service."""

from __future__ import annotations

from collections import Counter

from tests.acceptance.celery_mode.checks import Logged, out_of_order_reactions


def _event(position: int, event_type: str, cause: Logged | None, actor: str) -> Logged:
    metadata = {"actor": actor, "correlation_id": "o1"}
    if cause is not None:
        metadata["causation_id"] = cause.event_id
    return Logged(position, f"e{position}", "x", "o1", event_type, {}, metadata, "o1")


def test_the_ordering_check_finds_reactions_to_one_order_out_of_log_order():
    """The check the tests above rely on, on a made-up log: the saga appends OrderConfirmed and
    OrderCompleted together; notifications.orders must react to them in that order."""
    confirmed = _event(10, "OrderConfirmed", None, "service:orders")
    completed = _event(11, "OrderCompleted", None, "service:orders")
    in_order = [
        confirmed,
        completed,
        _event(12, "NotificationSent", confirmed, "service:notifications"),
        _event(13, "NotificationSent", completed, "service:notifications"),
    ]
    swapped = [
        confirmed,
        completed,
        _event(12, "NotificationSent", completed, "service:notifications"),
        _event(13, "NotificationSent", confirmed, "service:notifications"),
    ]

    assert out_of_order_reactions(in_order) == ([], Counter({"notifications.orders": 1}))
    problems, _ = out_of_order_reactions(swapped)
    assert problems == [
        "notifications.orders, order o1: #13 NotificationSent reacts to #10, after a reaction "
        "to #11"
    ]
