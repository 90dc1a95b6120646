"""The checks of a celery-mode run's end state (see test_workers.py's docstring): the log, the
gateway's calls, the emails, the stock and the checkpoints, read after every order settled."""

from __future__ import annotations

import email
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from eventstore.follower.subscriptions import get_subscribers
from tests.acceptance.celery_mode.cluster import (
    DECLINED,
    FINAL,
    PAID,
    PARTITIONS,
    PRICES,
    STAFF,
    STOCK,
    Cluster,
    Placed,
)
from tests.gateways import recorded_calls
from tests.processes import (
    manage,
)

ORDER = "order"  # the aggregate type of orders' own streams
SUBJECT = re.compile(r"^Your order (\S+) (is confirmed|is complete|was cancelled)$")
OUTCOMES = {"is confirmed": "confirmed", "is complete": "completed", "was cancelled": "cancelled"}
EXPECTED_EMAILS = {"completed": ("confirmed", "completed"), "cancelled": ("cancelled",)}
CAUGHT_UP = re.compile(r"Task eventstore\.tasks\.catch_up_partition\[[^]]+\] succeeded")


# --- the log -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Logged:
    """One event of the log, as the test reads it."""

    position: int
    event_id: str
    aggregate_type: str
    aggregate_id: str
    event_type: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    correlation_id: str = ""
    partition_hash: int = 0
    recorded_at: datetime | None = None


def read_log(cluster: Cluster) -> list[Logged]:
    rows = cluster.query(
        "SELECT position, event_id::text AS event_id, aggregate_type, aggregate_id, event_type, "
        "payload, metadata, correlation_id, partition_hash, recorded_at FROM eventstore_event "
        "ORDER BY position"
    )
    return [Logged(**row) for row in rows]


def reacting_subscriber(event: Logged) -> str | None:
    """The checkpointed subscriber whose handling of another event appended `event` (None: not
    a checkpointed reaction). Effect subscribers' outcomes (payments, deliveries) are left out:
    their calls run after the checkpoint, in any order, by design."""
    actor = event.metadata.get("actor")
    if actor == "service:orders":
        return "orders.saga"
    if actor == "service:inventory":
        return "inventory.requests"
    if event.event_type == "NotificationSent":
        return "notifications.orders"
    return None


def out_of_order_reactions(events: list[Logged]) -> tuple[list[str], Counter]:
    """Evidence that a subscriber handled one order's events out of log order, and how many
    orders had two or more reactions of each subscriber (what the check rests on).

    A checkpointed subscriber appends its reaction to an event in the transaction that handles
    it, with that event as `causation_id`, and the log numbers events in commit order. So if
    it handles an order's events in log order, the events each of its reactions was caused
    by have positions that never decrease along the reactions' positions. Had a partition
    handled an order's events out of order, a later reaction would point to an earlier cause:
    e.g. the saga appends OrderConfirmed and OrderCompleted together, and notifications.orders
    would record the completion's NotificationSent before the confirmation's.
    """
    position_of = {event.event_id: event.position for event in events}
    latest: dict[tuple[str, str], int] = {}
    reactions: Counter = Counter()
    problems = []
    for event in events:
        subscriber = reacting_subscriber(event)
        cause = event.metadata.get("causation_id")
        if subscriber is None or cause is None or cause not in position_of:
            continue
        key = (subscriber, event.correlation_id)
        reactions[key] += 1
        cause_position = position_of[cause]
        if cause_position < latest.get(key, 0):
            problems.append(
                f"{subscriber}, order {event.correlation_id}: #{event.position} "
                f"{event.event_type} reacts to #{cause_position}, after a reaction to "
                f"#{latest[key]}"
            )
        latest[key] = max(latest.get(key, 0), cause_position)
    chained = Counter(subscriber for (subscriber, _), count in reactions.items() if count > 1)
    return problems, chained


# --- what the outside world saw -------------------------------------------------------------------


@dataclass
class Email:
    order_id: str
    outcome: str
    message_id: str
    to: str


def sent_emails(folder: Path) -> list[Email]:
    """Every message the file-based email backends wrote (several per file, each followed by
    a line of 79 dashes)."""
    found = []
    for path in sorted(folder.iterdir()):
        for text in path.read_text(errors="replace").split("\n" + "-" * 79 + "\n"):
            if not text.strip():
                continue
            message = email.message_from_string(text)
            match = SUBJECT.match(str(message["Subject"]))
            assert match, (path.name, message["Subject"])
            found.append(
                Email(
                    order_id=match.group(1),
                    outcome=OUTCOMES[match.group(2)],
                    message_id=str(message["Message-ID"]),
                    to=str(message["To"]),
                )
            )
    return found


# --- the end state -------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a run ended with, for the test's report."""

    statuses: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    repeated_charges: int = 0
    repeated_emails: int = 0
    refunds: int = 0

    order_seconds: list[float] = field(default_factory=list)
    payment_seconds: list[float] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "order_s_p50_max": p50_max(self.order_seconds),
            "payment_s_p50_max": p50_max(self.payment_seconds),
            "statuses": dict(self.statuses),
            "cancel_reasons": dict(self.reasons),
            "refunds": self.refunds,
            "repeated_charges": self.repeated_charges,
            "repeated_emails": self.repeated_emails,
        }


def p50_max(seconds: list[float]) -> tuple[float, float] | None:
    if not seconds:
        return None
    ordered = sorted(seconds)
    return round(ordered[len(ordered) // 2], 1), round(ordered[-1], 1)


def latencies(events: list[Logged], first: set[str], last: set[str]) -> list[float]:
    """Per order, seconds from its first event of a type in `first` to its last in `last`."""
    began: dict[str, datetime] = {}
    ended: dict[str, datetime] = {}
    for event in events:
        order_id = event.correlation_id
        if event.event_type in first and order_id not in began:
            began[order_id] = event.recorded_at
        if event.event_type in last:
            ended[order_id] = event.recorded_at
    return [(ended[o] - began[o]).total_seconds() for o in began if o in ended]


def assert_end_state(cluster: Cluster, placed: list[Placed], *, crashed: bool) -> Outcome:
    """Every check of the end state (test_workers.py's docstring lists them). `crashed`: a
    worker was killed, so a call to the gateway or an email may have been made twice with one
    key."""
    with cluster.explained():
        return _assert_end_state(cluster, placed, crashed=crashed)


def _assert_end_state(cluster: Cluster, placed: list[Placed], *, crashed: bool) -> Outcome:
    outcome = Outcome()
    by_id = {p.order_id: p for p in placed}
    order_ids = sorted(by_id)
    orders = {
        row["order_id"]: row
        for row in cluster.query(
            "SELECT order_id, status, cancel_reason FROM orders_ordersummary "
            "WHERE order_id = ANY(%s)",
            [order_ids],
        )
    }
    assert sorted(orders) == order_ids
    outcome.statuses = Counter(row["status"] for row in orders.values())
    outcome.reasons = Counter(r["cancel_reason"] for r in orders.values() if r["cancel_reason"])
    assert set(outcome.statuses) <= set(FINAL), outcome.statuses
    completed = {o for o, row in orders.items() if row["status"] == "completed"}
    cancelled = set(order_ids) - completed
    assert completed and cancelled, outcome.statuses

    events = read_log(cluster)
    outcome.order_seconds = latencies(
        events, {"OrderCreated"}, {"OrderCompleted", "OrderCancelled"}
    )
    outcome.payment_seconds = latencies(
        events, {"PaymentRequested"}, {"PaymentProcessed", "PaymentFailed"}
    )
    of_type: dict[str, list[Logged]] = defaultdict(list)
    for event in events:
        of_type[event.event_type].append(event)

    # Every order placed is in the log once, and its saga started once.
    created = Counter(e.aggregate_id for e in of_type["OrderCreated"] if e.aggregate_type == ORDER)
    assert created == Counter(order_ids), "orders in the log differ from the orders placed"
    started = Counter(e.aggregate_id for e in of_type["SagaStarted"])
    assert started == Counter(order_ids), {o: n for o, n in started.items() if n != 1}

    # Paid orders completed and declined ones were cancelled for their reason, unless a reply
    # came later than SAGA_STEP_TIMEOUT: the order was then cancelled for the timeout (and a
    # late charge refunded, see below).
    for order_id, row in orders.items():
        token = by_id[order_id].token
        if row["status"] == "completed":
            assert token == PAID, (order_id, token, row)
        else:
            reasons = (DECLINED.get(token), "payment_timeout", "inventory_timeout")
            assert row["cancel_reason"] in reasons, (order_id, token, row)

    # The gateway: one charge per payment the saga asked for (a repeat gets the same answer).
    requested = Counter(e.payload["payment_id"] for e in of_type["PaymentRequested"])
    assert set(requested.values()) == {1}, "a payment was asked for twice"
    for order_id in set(order_ids) - set(requested):
        assert orders[order_id]["cancel_reason"] == "inventory_timeout", orders[order_id]
    # A charge its saga gave up is withdrawn, never made after that: one never attempted is not
    # at the gateway at all; one attempted is settled by a lookup, not a call. (A refusal the
    # saga read before the worker that got it recorded its call done is withdrawn too.)
    withdrawn = {
        row["payment_id"]: row
        for row in cluster.query(
            "SELECT ev.payload->>'payment_id' AS payment_id, ef.attempts, ef.due_at "
            "FROM eventstore_effect ef JOIN eventstore_event ev ON ev.event_id = ef.event_id "
            "WHERE ef.status = 'withdrawn'"
        )
    }
    for payment_id, row in withdrawn.items():
        assert orders[payment_id]["status"] == "cancelled", (row, orders[payment_id])
        assert row["due_at"] is None, ("a withdrawn call was left to reconcile", row)
    unmade = {o for o, row in withdrawn.items() if row["attempts"] == 0}
    calls = recorded_calls(cluster.gateway_file)
    charges = [c for c in calls if c["call"] == "charge"]
    charged = Counter(c["key"] for c in charges)
    assert set(charged) == {f"charge:{o}" for o in set(requested) - unmade}, "charges differ"
    answers = defaultdict(set)
    for call in charges:
        answers[call["key"]].add((call["approved"], call["transaction_id"], call["reason"]))
    assert all(len(given) == 1 for given in answers.values()), "a key was answered two ways"
    outcome.repeated_charges = sum(charged.values()) - len(charged)
    if not crashed:
        assert outcome.repeated_charges == 0, {k: n for k, n in charged.items() if n > 1}

    # One PaymentProcessed per completed order; an approved charge of an order that did not
    # complete was refunded, at the gateway and in the log.
    processed = Counter(e.payload["payment_id"] for e in of_type["PaymentProcessed"])
    refunded = Counter(e.payload["payment_id"] for e in of_type["PaymentRefunded"])
    refund_calls = Counter(c["key"] for c in calls if c["call"] == "refund")
    outcome.refunds = len(refunded)
    assert processed == Counter({**dict.fromkeys(completed, 1), **dict.fromkeys(refunded, 1)})
    assert set(refunded) <= cancelled, "a completed order was refunded"
    assert set(refund_calls) == {f"refund:{o}" for o in refunded}
    if not crashed:
        assert set(refund_calls.values()) <= {1}, refund_calls
    approved = {c["key"].removeprefix("charge:") for c in charges if c["approved"]}
    assert approved == completed | set(refunded), "charged without completing or a refund"

    # Emails: one per order and outcome (a crash may send one again, under its Message-ID).
    emails = sent_emails(cluster.emails)
    told = Counter((e.order_id, e.outcome) for e in emails)
    expected = Counter(
        (order_id, kind)
        for order_id, row in orders.items()
        for kind in EXPECTED_EMAILS[row["status"]]
    )
    assert set(told) == set(expected), set(told) ^ set(expected)
    ids = defaultdict(set)
    for sent in emails:
        ids[(sent.order_id, sent.outcome)].add(sent.message_id)
    assert all(len(message_ids) == 1 for message_ids in ids.values()), "one email, two ids"
    outcome.repeated_emails = sum(told.values()) - len(told)
    if not crashed:
        assert outcome.repeated_emails == 0, {k: n for k, n in told.items() if n > 1}
    delivered = Counter(e.aggregate_id for e in of_type["NotificationDelivered"])
    assert len(delivered) == len(expected) and set(delivered.values()) == {1}

    # Stock: nothing held, and sold is what the completed orders bought.
    sold = Counter()
    for order_id in completed:
        for item in by_id[order_id].items:
            sold[item["product_id"]] += item["quantity"]
    for product_id in PRICES:
        answer = cluster.request("GET", f"/api/inventory/{product_id}/", STAFF)
        assert answer.status == 200, answer
        stock = answer.body
        assert (stock["available_stock"], stock["reserved_stock"], stock["sold_stock"]) == (
            STOCK - sold[product_id],
            0,
            sold[product_id],
        ), (product_id, stock)
    for order_id in completed:
        expected_total = sum(
            Decimal(PRICES[i["product_id"]]) * i["quantity"] for i in by_id[order_id].items
        )
        charge = next(e for e in of_type["PaymentProcessed"] if e.payload["payment_id"] == order_id)
        assert Decimal(charge.payload["amount"]) == expected_total, (order_id, charge.payload)

    # The read models are what the log says; no checkpoint stopped; no call was parked or left
    # pending (withdrawn ones were checked with the charges).
    manage(cluster.environment(), "verify_projections")
    checkpoints = cluster.query(
        "SELECT subscriber, partition, partitions, last_error FROM eventstore_checkpoint"
    )
    assert [c for c in checkpoints if c["last_error"]] == []
    per_subscriber = Counter(c["subscriber"] for c in checkpoints if c["partitions"] == PARTITIONS)
    assert per_subscriber == Counter(dict.fromkeys([s.name for s in get_subscribers()], PARTITIONS))
    effects = cluster.query(
        "SELECT subscriber, status, count(*) AS n FROM eventstore_effect GROUP BY 1, 2"
    )
    assert {row["status"] for row in effects} <= {"done", "withdrawn"}, effects

    # The orders spread over every partition, and each subscriber handled each order's
    # events in log order.
    spread = {e.partition_hash % PARTITIONS for e in of_type["SagaStarted"]}
    assert spread == set(range(PARTITIONS))
    problems, chained = out_of_order_reactions(events)
    assert problems == []
    assert set(chained) == {"orders.saga", "inventory.requests", "notifications.orders"}, chained
    return outcome


def assert_every_worker_worked(cluster: Cluster) -> None:
    """Each worker caught partitions up: the work was shared, not done by one process."""
    with cluster.explained():
        tasks = {w.name: len(CAUGHT_UP.findall(cluster.log_text(w.name))) for w in cluster.workers}
        assert all(tasks.values()), tasks
