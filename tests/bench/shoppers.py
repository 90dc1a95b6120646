"""Customers placing orders over HTTP for the HTTP workloads, and what they saw.

Each customer is a thread with one keep-alive connection (reopened after an error). It places
orders of 1 or 2 lines of 1 to 3 units (seeded random, so a run repeats) on the given products
until the run's time is up, and follows each created order until it is final (completed or
cancelled): when the POST's answer is not final, as when processing runs in background workers,
it polls GET /api/orders/{id}/. An order placed before the time is up is followed to its end, so
`Tally.elapsed` covers every order counted.

With a `Backlog`, customers do not follow their orders: each places its next order as soon as
the POST is answered, as long as fewer than `Backlog.limit` of its orders are not final yet; the
caller tells the backlog which orders became final (from the log, without asking the server).
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.bench.serving import HOST

FINAL_STATUSES = frozenset({"completed", "cancelled"})
REQUEST_TIMEOUT = 60.0
# How long a customer waits for an order to become final before it counts as unsettled, and
# how often it asks meanwhile (short next to a 50 ms gateway, so it adds little to the time).
FINAL_TIMEOUT = 60.0
POLL_INTERVAL = 0.01
RECONNECT_PAUSE = 0.05


def create_customers(count: int) -> list[str]:
    """`count` customer accounts, each with an API token: their tokens."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user_model = get_user_model()
    tokens = []
    for n in range(count):
        # No password: hashing one is slow on purpose, and the customers use tokens. An email
        # address, so that every order's notifications are delivered as in production.
        user = user_model.objects.create_user(
            username=f"bench-customer-{n}", email=f"bench-customer-{n}@example.com"
        )
        tokens.append(Token.objects.create(user=user).key)
    return tokens


@dataclass
class Tally:
    """What the customers saw; each thread adds to it under `lock`."""

    latencies: list[float] = field(default_factory=list)  # per answered POST: its answer
    to_final: list[float] = field(default_factory=list)  # per final order: POST sent to final
    outcomes: dict[str, int] = field(default_factory=dict)  # final status -> orders
    cancel_reasons: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> answers (any request)
    created: int = 0  # POSTs answered 2xx
    unsettled: int = 0  # orders not final within FINAL_TIMEOUT
    connection_errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0  # seconds from the first order sent to the last customer done
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answers(self, hundreds: int) -> int:
        """How many answers had a status of `hundreds`xx (2 for 2xx)."""
        return sum(n for code, n in self.statuses.items() if code // 100 == hundreds)

    def count(self, status: str) -> int:
        """How many orders the customers saw end in `status` ("completed" or "cancelled")."""
        return self.outcomes.get(status, 0)

    def per_second(self, status: str) -> float:
        return self.count(status) / self.elapsed if self.elapsed else 0.0

    def error(self, text: str) -> None:
        if len(self.first_errors) < 5:
            self.first_errors.append(text)


class Backlog:
    """The orders each customer placed that are not final yet, at most `limit` per customer.

    A customer waits for its turn (`wait_turn`) while `limit` of its orders are open; whoever
    learns that orders are final says so (`finished`). An order may be reported final before
    its customer has read the POST's answer: it is then never counted open."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._owner: dict[str, int] = {}  # open order id -> its customer
        self._open: dict[int, int] = {}  # customer -> its open orders
        self._early: set[str] = set()  # reported final before they were placed
        self._changed = threading.Condition()

    def placed(self, customer: int, order_id: str, final: bool) -> None:
        with self._changed:
            if final or order_id in self._early:
                self._early.discard(order_id)
                return
            self._owner[order_id] = customer
            self._open[customer] = self._open.get(customer, 0) + 1

    def finished(self, order_ids: Sequence[str]) -> None:
        with self._changed:
            for order_id in order_ids:
                customer = self._owner.pop(order_id, None)
                if customer is None:
                    self._early.add(order_id)
                else:
                    self._open[customer] -= 1
            self._changed.notify_all()

    def open_orders(self) -> int:
        with self._changed:
            return len(self._owner)

    def wait_turn(self, customer: int, until: float) -> None:
        """Until the customer has fewer than `limit` open orders, or `until` (monotonic)."""
        with self._changed:
            while self._open.get(customer, 0) >= self.limit:
                left = until - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every order to be final; whether they all are."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._owner, timeout)


class _Session:
    """One customer's keep-alive connection; every request's outcome goes to the tally."""

    def __init__(self, port: int, token: str, tally: Tally) -> None:
        self.tally = tally
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
        self.retry_after = 0.0  # the last answer's Retry-After, in seconds (0: none)

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes] | None:
        """(status, body), or None after a connection error (the connection is reopened)."""
        try:
            self.connection.request(method, path, body, self.headers)
            response = self.connection.getresponse()
            answer = response.read()
            wait = response.getheader("Retry-After") or ""  # seconds (an HTTP date: ignored)
            self.retry_after = float(wait) if wait.isdigit() else 0.0
        except (OSError, http.client.HTTPException) as error:
            self.connection.close()  # http.client reconnects on the next request
            with self.tally.lock:
                self.tally.connection_errors += 1
                self.tally.error(f"connection error: {error!r}")
            time.sleep(RECONNECT_PAUSE)
            return None
        with self.tally.lock:
            self.tally.statuses[response.status] = self.tally.statuses.get(response.status, 0) + 1
            if response.status >= 400:
                self.tally.error(
                    f"{method} {response.status}: {answer[:200].decode(errors='replace')}"
                )
        return response.status, answer

    def close(self) -> None:
        self.connection.close()


def _follow(session: _Session, order: dict, sent: float) -> None:
    """Wait until `order` (as the POST answered it) is final; tally its outcome and the time
    from `sent` (the POST's perf_counter) to the answer that showed it final."""
    tally = session.tally
    deadline = time.monotonic() + FINAL_TIMEOUT
    while order.get("status") not in FINAL_STATUSES:
        if time.monotonic() > deadline:
            with tally.lock:
                tally.unsettled += 1
            return
        time.sleep(POLL_INTERVAL)
        answer = session.request("GET", f"/api/orders/{order['order_id']}/")
        if answer is not None and answer[0] == 200:
            order = json.loads(answer[1])
    to_final = time.perf_counter() - sent
    with tally.lock:
        tally.to_final.append(to_final)
        tally.outcomes[order["status"]] = tally.outcomes.get(order["status"], 0) + 1
        if order["status"] == "cancelled":
            reason = order.get("cancel_reason") or "unknown"
            tally.cancel_reasons[reason] = tally.cancel_reasons.get(reason, 0) + 1


def _customer(
    port: int,
    token: str,
    product_ids: Sequence[str],
    seed: int,
    until: float,
    tally: Tally,
    backlog: Backlog | None = None,
    customer: int = 0,
    stop: threading.Event | None = None,
) -> None:
    """Place and follow orders one after another until `until` (time.monotonic) or `stop` is
    set; with a backlog, place them without following them, `backlog.limit` open at most."""
    rng = random.Random(seed)
    session = _Session(port, token, tally)
    try:
        while time.monotonic() < until and not (stop is not None and stop.is_set()):
            lines = rng.sample(list(product_ids), rng.randint(1, 2))
            body = json.dumps(
                {"items": [{"product_id": p, "quantity": rng.randint(1, 3)} for p in lines]}
            )
            sent = time.perf_counter()
            answer = session.request("POST", "/api/orders/", body)
            if answer is None:
                continue
            latency = time.perf_counter() - sent
            with tally.lock:
                tally.latencies.append(latency)
            status, data = answer
            if status // 100 != 2:
                # Asked to come back later (429, 503): wait as told, as a polite client does.
                time.sleep(min(session.retry_after, max(0.0, until - time.monotonic())))
                continue
            with tally.lock:
                tally.created += 1
            order = json.loads(data)
            if backlog is None:
                _follow(session, order, sent)
                continue
            backlog.placed(customer, order["order_id"], order.get("status") in FINAL_STATUSES)
            backlog.wait_turn(customer, until)
    finally:
        session.close()


def place_orders(
    port: int,
    tokens: Sequence[str],
    product_ids: Sequence[str],
    seconds: float,
    seed: int,
    backlog: Backlog | None = None,
    stop: threading.Event | None = None,
) -> Tally:
    """One customer thread per token placing orders for `seconds` (or until `stop` is set),
    each followed to its end (with a backlog: not followed, the backlog's limit open per
    customer); returns once every thread has finished."""
    tally = Tally()
    started = time.perf_counter()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=_customer,
            args=(port, token, product_ids, seed + n, until, tally, backlog, n, stop),
        )
        for n, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.elapsed = time.perf_counter() - started
    return tally


def note_discrepancies(tallies: Sequence[Tally], by_status: dict[str, int], notes: list[str]):
    """Add to `notes` where the orders in the database (`by_status`, after every subscriber
    caught up) differ from what the customers saw, why orders were cancelled, and the first
    errors the customers met."""
    created = sum(tally.created for tally in tallies)
    if sum(by_status.values()) != created:
        notes.append(f"{sum(by_status.values())} orders exist, {created} were answered 2xx")
    for status in sorted(FINAL_STATUSES):
        seen = sum(tally.count(status) for tally in tallies)
        if by_status.get(status, 0) != seen:
            notes.append(f"{by_status.get(status, 0)} orders {status}, the customers saw {seen}")
    unsettled = sum(tally.unsettled for tally in tallies)
    if unsettled:
        notes.append(f"{unsettled} orders not final within {FINAL_TIMEOUT:g} s of being placed")
    reasons: dict[str, int] = {}
    for tally in tallies:
        for reason, n in tally.cancel_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
    if reasons:
        notes.append("cancelled: " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())))
    for tally in tallies:
        notes.extend(tally.first_errors)
