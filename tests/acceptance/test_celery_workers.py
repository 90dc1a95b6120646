"""Scenario: celery mode (EVENTSTORE_DISPATCH=celery) for real, in processes. gunicorn serves the
API, three Celery workers catch the partitioned subscribers up (EVENTSTORE_PARTITIONS=8) and
make the calls to the outside world, and Celery beat sweeps every second. Sixteen client
threads place 200 orders over HTTP, each with an Idempotency-Key and one of three payment
tokens (seven in ten are paid, the rest declined); the API may answer 201 or 202. The test
then waits until every order is completed or cancelled, every partition is caught up and no
call is pending, and checks the end state:

- every order ended completed or cancelled, and its saga started exactly once (SagaStarted);
- the payment gateway (tests/gateways.py, whose calls every process appends to one file) was
  called once per payment the saga asked for, and one PaymentProcessed was recorded per
  completed order; no order was charged without completing unless it was refunded;
- one email per order and outcome (confirmed and complete, or cancelled);
- stock adds up: nothing reserved, sold = what the completed orders bought;
- `manage.py verify_projections` passes; no checkpoint holds an error; no call is parked;
- each subscriber handled each order's events in log order (see `out_of_order_reactions`).

The tests differ in what happens meanwhile: nothing; one worker killed with SIGKILL three
times, each time restarted; every process's broker connection cut for a few seconds (through
tests/proxy.py), during which orders placed must still be accepted quickly. After a crash the
gateway may be called twice for one payment and an email sent twice, under the same
idempotency key (Message-ID) with the same answer, which that test allows.

Runs once in CI, in its PostgreSQL pass: marked `postgres`, the SQLite pass skips it as it
skips every PostgreSQL test. The processes do not use the suite's test database: each test
gets a database of its own on the suite's PostgreSQL server (a copy of one template, migrated
and seeded by `seed_demo` once for the module; every one dropped afterwards) and a RabbitMQ
vhost of its own (created with rabbitmqctl, deleted afterwards) on CELERY_BROKER_URL's server
(default 127.0.0.1:5672). The tests skip only when PostgreSQL or RabbitMQ does not answer, or
rabbitmqctl is missing, and say which. Every process started here is stopped, pass or fail;
a failure shows the tail of every process's log (all kept in the test's tmp_path). A passing
test prints its figures (timings, outcomes), shown with `pytest -s` or `-rP`.
"""

from __future__ import annotations

import email
import os
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from django.conf import settings
from psycopg.rows import dict_row

from eventstore.subscriptions import get_subscribers
from tests.gateways import FILE_VARIABLE, recorded_calls
from tests.processes import (
    HOST,
    Answer,
    RabbitmqctlUnavailable,
    Service,
    free_port,
    http_request,
    manage,
    postgres_database,
    postgres_missing,
    postgres_server,
    rabbitmq_missing,
    rabbitmq_vhost,
    rabbitmqctl_missing,
    tail,
    token_for,
)
from tests.proxy import TcpProxy

ORDERS = 200
CLIENTS = 16
WORKERS = 3
PARTITIONS = 8
# SAGA_STEP_TIMEOUT, seconds. On a busy two-core machine a reply can take longer (more so after
# a crash or an outage): its order is then cancelled for the timeout and a late charge refunded,
# which the checks allow; they hold whichever way each order went.
STEP_TIMEOUT = 20
START_TIMEOUT = 60  # until every process is ready
SETTLE_TIMEOUT = 120  # from the last order placed until nothing is left to do
STAFF = "admin"  # seed_demo's accounts
CUSTOMERS = ("alice", "bob")
STOCK = 100_000  # of each product: no order is short of stock
PRICES = {"cw-bolt": "2.50", "cw-nut": "0.75", "cw-gear": "12.00", "cw-belt": "7.25"}
PAID = "tok_visa_success"
DECLINED = {"tok_decline": "card_declined", "tok_insufficient_funds": "insufficient_funds"}
TOKENS = [PAID] * 7 + ["tok_decline"] * 2 + ["tok_insufficient_funds"]  # by order index
FINAL = ("completed", "cancelled")
ORDER = "order"  # the aggregate type of orders' own streams
SUBJECT = re.compile(r"^Your order (\S+) (is confirmed|is complete|was cancelled)$")
OUTCOMES = {"is confirmed": "confirmed", "is complete": "completed", "was cancelled": "cancelled"}
EXPECTED_EMAILS = {"completed": ("confirmed", "completed"), "cancelled": ("cancelled",)}
READY = r" ready\.$"  # a Celery worker's log line once it consumes
# gunicorn's access log: each request's Idempotency-Key, status and time taken (microseconds).
ACCESS_FORMAT = "%({idempotency-key}i)s %(s)s %(D)s"
CAUGHT_UP = re.compile(r"Task eventstore\.tasks\.catch_up_partition\[[^]]+\] succeeded")


# --- the services -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Services:
    """Where PostgreSQL and RabbitMQ answer."""

    postgres: str  # postgres://user@host:port
    broker: str  # amqp://user:password@host:port/vhost, as CELERY_BROKER_URL says

    @property
    def broker_address(self) -> tuple[str, int]:
        parts = urlsplit(self.broker)
        return parts.hostname or HOST, parts.port or 5672

    def broker_url(self, vhost: str, port: int | None = None) -> str:
        """The broker's URL for `vhost`, through `port` on HOST (a proxy) if given."""
        parts = urlsplit(self.broker)
        host, real_port = self.broker_address
        credentials = parts.netloc.rpartition("@")[0] or "guest:guest"
        address = f"{HOST}:{port}" if port else f"{host}:{real_port}"
        return f"{parts.scheme}://{credentials}@{address}/{vhost}"


@pytest.fixture(scope="module")
def services() -> Services:
    found = Services(postgres=postgres_server(), broker=settings.CELERY_BROKER_URL)
    missing = [
        problem
        for problem in (
            postgres_missing(found.postgres),
            rabbitmq_missing(found.broker),
            rabbitmqctl_missing(),
        )
        if problem
    ]
    if missing:
        pytest.skip("; ".join(missing))
    return found


@dataclass(frozen=True)
class Seeded:
    """The template database every test copies: migrated, seed_demo's accounts and tokens."""

    database: str
    tokens: dict[str, str]


def _environment(database_url: str) -> dict[str, str]:
    """The project's own settings (not the test run's), on `database_url`."""
    environment = dict(os.environ)
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    environment["DATABASE_URL"] = database_url
    return environment


@pytest.fixture(scope="module")
def seeded(services: Services) -> Iterator[Seeded]:
    with postgres_database(services.postgres, "celery_seed") as url:
        environment = _environment(url)
        manage(environment, "migrate", "--noinput")
        manage(environment, "seed_demo")
        tokens = {user: token_for(environment, user) for user in (STAFF, *CUSTOMERS)}
        yield Seeded(database=url.rpartition("/")[2], tokens=tokens)


# --- the processes -----------------------------------------------------------------------------


class Cluster:
    """The processes of celery mode on one database and vhost: web, workers w1..wN, beat."""

    def __init__(
        self, services: Services, database_url: str, vhost: str, seeded: Seeded, tmp_path: Path
    ) -> None:
        self.services = services
        self.database_url = database_url
        self.vhost = vhost
        self.tokens = seeded.tokens
        self.tmp_path = tmp_path
        self.emails = tmp_path / "emails"
        self.logs = tmp_path / "logs"
        self.gateway_file = tmp_path / "gateway-calls.jsonl"
        self.access_log = tmp_path / "web-access.txt"
        self.emails.mkdir()
        self.logs.mkdir()
        self.port = free_port()
        self.web: Service | None = None
        self.beat: Service | None = None
        self.workers: list[Service] = []
        self.broker_port: int | None = None

    def environment(self) -> dict[str, str]:
        """What every process of the cluster runs with."""
        return {
            **_environment(self.database_url),
            "DEBUG": "1",
            "LOG_LEVEL": "INFO",
            "EVENTSTORE_DISPATCH": "celery",
            "EVENTSTORE_PARTITIONS": str(PARTITIONS),
            "EVENTSTORE_SWEEP_INTERVAL": "1",
            "EVENTSTORE_EFFECT_LEASE": "5",
            "EVENTSTORE_EFFECT_BACKOFF": "0.5",
            "SAGA_STEP_TIMEOUT": str(STEP_TIMEOUT),
            "CELERY_BROKER_URL": self.services.broker_url(self.vhost, self.broker_port),
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(self.emails),
            "PAYMENTS_GATEWAY": "tests.gateways.RecordingGateway",
            FILE_VARIABLE: str(self.gateway_file),
            "THROTTLE_ANON": "1000000/min",
            "THROTTLE_USER": "1000000/min",
            "THROTTLE_ORDERS": "1000000/min",
        }

    @property
    def processes(self) -> list[Service]:
        return [s for s in (self.web, self.beat, *self.workers) if s is not None]

    def start(self, *, broker_port: int | None = None) -> None:
        """Start the workers, beat and the web server; return once each is ready. With
        `broker_port`, every process reaches the broker through that port on HOST."""
        self.broker_port = broker_port
        environment = self.environment()
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        for n in range(1, WORKERS + 1):
            worker = Service(
                f"w{n}",
                [*celery, "worker", "-c", "1", "--loglevel=INFO", "-n", f"w{n}@%h"],
                environment,
                self.logs,
            )
            self.workers.append(worker)
            worker.start()
        self.beat = Service(
            "beat",
            [*celery, "beat", "--loglevel=INFO", "--schedule", str(self.tmp_path / "beat")],
            environment,
            self.logs,
        ).start()
        self.web = Service(
            "web",
            [
                *(sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"),
                *("-b", f"{HOST}:{self.port}", "-w", "2"),
                *("--access-logfile", str(self.access_log), "--access-logformat", ACCESS_FORMAT),
            ],
            environment,
            self.logs,
        ).start()
        with self.explained():
            for worker in self.workers:
                worker.wait_for_log(READY, START_TIMEOUT)
            self.beat.wait_for_log(r"beat: Starting", START_TIMEOUT)
            self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.web is not None and self.web.alive, "the web server exited"
            try:
                if http_request(self.port, "GET", "/api/health/", timeout=5).status == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no answer on port {self.port}"
            time.sleep(0.2)

    def restart(self, worker: Service) -> None:
        """Start a killed worker again, under the same name; return once it consumes."""
        worker.start()
        with self.explained():
            worker.wait_for_log(READY, START_TIMEOUT)

    def stop(self) -> None:
        """Ask every process to stop at once, then wait for each (SIGKILL after a while)."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.stop()

    # --- what went on ------------------------------------------------------------------------

    def tails(self, lines: int = 25) -> str:
        """The last lines of every log the processes wrote, each incarnation's own."""
        return "\n".join(
            f"----- {path.name} -----\n{tail(path, lines)}"
            for path in sorted(self.logs.glob("*.log"))
        )

    @contextmanager
    def explained(self) -> Iterator[None]:
        """Add the processes' logs to an assertion that fails in the block."""
        try:
            yield
        except AssertionError as error:
            raise AssertionError(f"{error}\n\nThe processes' logs:\n{self.tails()}") from None

    def server_seconds(self) -> dict[str, float]:
        """How long the web server took to answer each request sent with an Idempotency-Key,
        by key (its access log, so the time a request queued for a worker is not counted)."""
        seconds = {}
        for line in self.access_log.read_text().splitlines():
            key, _, micros = line.split()
            if key != "-":
                seconds[key] = int(micros) / 1_000_000
        return seconds

    def log_text(self, prefix: str) -> str:
        """Everything the processes named `prefix` logged, every incarnation."""
        return "".join(
            path.read_text(errors="replace") for path in sorted(self.logs.glob(f"{prefix}*.log"))
        )

    # --- HTTP and the database ---------------------------------------------------------------

    def request(self, method: str, path: str, user: str, **kwargs: Any) -> Answer:
        return http_request(self.port, method, path, token=self.tokens[user], **kwargs)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row) as db:
            return db.execute(sql, list(params)).fetchall()

    def add_products(self) -> None:
        """Stock the shop (as staff, through the API) with plenty of each product."""
        for product_id, price in PRICES.items():
            body = {
                "product_id": product_id,
                "name": f"Product {product_id}",
                "price": price,
                "initial_stock": STOCK,
            }
            answer = self.request("POST", "/api/inventory/", STAFF, body=body)
            assert answer.status == 201, answer


@pytest.fixture
def cluster(services: Services, seeded: Seeded, tmp_path: Path) -> Iterator[Cluster]:
    """A database and a vhost of the test's own, and the cluster that will run on them (the
    test starts it); every process is stopped afterwards, pass or fail."""
    with ExitStack() as stack:
        try:
            user = urlsplit(services.broker).username or "guest"
            vhost = stack.enter_context(rabbitmq_vhost("celery_test", user))
        except RabbitmqctlUnavailable as error:
            pytest.skip(str(error))
        database_url = stack.enter_context(
            postgres_database(services.postgres, "celery_test", template=seeded.database)
        )
        running = Cluster(services, database_url, vhost, seeded, tmp_path)
        stack.callback(running.stop)
        yield running


# --- placing orders ------------------------------------------------------------------------------


@dataclass
class Placed:
    """One order placed over HTTP, and how the API answered."""

    index: int
    key: str
    customer: str
    token: str
    items: list[dict[str, Any]]
    status: int | None = None
    order_id: str = ""
    error: str = ""
    seconds: float = 0.0
    replayed: bool = False

    @property
    def body(self) -> dict[str, Any]:
        return {"items": self.items, "payment_token": self.token}


def order_for(index: int) -> Placed:
    """The `index`-th order: 1 to 3 lines of 1 to 3 units, a customer and a token by turns."""
    rng = random.Random(index)
    products = rng.sample(sorted(PRICES), rng.randint(1, 3))
    return Placed(
        index=index,
        key=f"celery-workers-{index}-{uuid.uuid4().hex}",
        customer=CUSTOMERS[index % len(CUSTOMERS)],
        token=TOKENS[index % len(TOKENS)],
        items=[{"product_id": p, "quantity": rng.randint(1, 3)} for p in products],
    )


def _order_id(answer: Answer) -> str:
    if isinstance(answer.body, dict) and answer.body.get("order_id"):
        return str(answer.body["order_id"])
    location = answer.headers.get("Location", "")
    return location.rstrip("/").rpartition("/")[2]


def place(cluster: Cluster, placed: Placed) -> Placed:
    """POST /api/orders/ with the order's Idempotency-Key; celery mode answers 201 or 202."""
    try:
        answer = cluster.request(
            "POST",
            "/api/orders/",
            placed.customer,
            body=placed.body,
            headers={"Idempotency-Key": placed.key},
        )
    except OSError as error:
        placed.error = repr(error)
        return placed
    placed.status, placed.seconds = answer.status, answer.seconds
    placed.order_id = _order_id(answer)
    placed.replayed = answer.headers.get("Idempotent-Replayed") == "true"
    if answer.status not in (201, 202):
        placed.error = str(answer.body)[:300]
    return placed


def place_orders(cluster: Cluster, indexes: Iterable[int]) -> list[Placed]:
    """Place the orders from CLIENTS threads at once."""
    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(partial(place, cluster), [order_for(i) for i in indexes]))


def assert_accepted(placed: list[Placed]) -> None:
    refused = [(p.index, p.status, p.error) for p in placed if p.status not in (201, 202)]
    assert not refused, f"{len(refused)} of {len(placed)} orders were not accepted: {refused}"
    assert len({p.order_id for p in placed}) == len(placed), "two answers name one order"


# --- waiting until nothing is left to do ---------------------------------------------------------


def backlog(cluster: Cluster) -> list[str]:
    """Each subscriber's partitions that have an event they read after their checkpoint, or
    no checkpoint yet."""
    waiting = []
    for subscriber in get_subscribers():
        types = sorted(subscriber.event_types) if subscriber.event_types is not None else None
        rows = cluster.query(
            "SELECT c.partition, c.partitions, EXISTS (SELECT 1 FROM eventstore_event e "
            "WHERE (e.transaction_id, e.position) > (c.transaction_id, c.position) "
            "AND e.partition_hash %% c.partitions = c.partition "
            "AND (%s::text[] IS NULL OR e.event_type = ANY(%s::text[]))) AS behind "
            "FROM eventstore_checkpoint c WHERE c.subscriber = %s",
            [types, types, subscriber.name],
        )
        current = [row for row in rows if row["partitions"] == PARTITIONS]
        missing = PARTITIONS - len(current)
        if missing:
            waiting.append(f"{subscriber.name}: {missing} partition(s) never caught up")
        waiting.extend(
            f"{subscriber.name}#{row['partition']}/{PARTITIONS}" for row in current if row["behind"]
        )
    return waiting


def open_orders(cluster: Cluster, order_ids: list[str]) -> dict[str, str]:
    """The orders not yet completed or cancelled, with their status (missing: not projected)."""
    rows = cluster.query(
        "SELECT order_id, status FROM orders_ordersummary WHERE order_id = ANY(%s)", [order_ids]
    )
    statuses = {row["order_id"]: row["status"] for row in rows}
    return {
        order_id: statuses.get(order_id, "missing")
        for order_id in order_ids
        if statuses.get(order_id) not in FINAL
    }


def wait_until_settled(cluster: Cluster, order_ids: list[str]) -> float:
    """Wait until every order is final, every partition caught up and no call is pending; how
    many seconds that took."""
    started = time.monotonic()
    while True:
        still_open = open_orders(cluster, order_ids)
        pending = cluster.query(
            "SELECT subscriber, count(*) AS calls FROM eventstore_effect "
            "WHERE status = 'pending' GROUP BY subscriber"
        )
        behind = [] if still_open or pending else backlog(cluster)
        if not still_open and not pending and not behind:
            return time.monotonic() - started
        if time.monotonic() - started > SETTLE_TIMEOUT:
            with cluster.explained():
                pytest.fail(
                    f"Not settled after {SETTLE_TIMEOUT} s: {len(still_open)} order(s) still "
                    f"open {dict(list(still_open.items())[:20])}, calls pending {pending}, "
                    f"partitions behind {behind}",
                    pytrace=False,
                )
        time.sleep(0.5)


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
            "order_s_p50_max": _p50_max(self.order_seconds),
            "payment_s_p50_max": _p50_max(self.payment_seconds),
            "statuses": dict(self.statuses),
            "cancel_reasons": dict(self.reasons),
            "refunds": self.refunds,
            "repeated_charges": self.repeated_charges,
            "repeated_emails": self.repeated_emails,
        }


def _p50_max(seconds: list[float]) -> tuple[float, float] | None:
    if not seconds:
        return None
    ordered = sorted(seconds)
    return round(ordered[len(ordered) // 2], 1), round(ordered[-1], 1)


def _latencies(events: list[Logged], first: set[str], last: set[str]) -> list[float]:
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
    """Every check of the end state (the module docstring lists them). `crashed`: a worker was
    killed, so a call to the gateway or an email may have been made twice with one key."""
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
    outcome.order_seconds = _latencies(
        events, {"OrderCreated"}, {"OrderCompleted", "OrderCancelled"}
    )
    outcome.payment_seconds = _latencies(
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
    calls = recorded_calls(cluster.gateway_file)
    charges = [c for c in calls if c["call"] == "charge"]
    charged = Counter(c["key"] for c in charges)
    assert set(charged) == {f"charge:{o}" for o in requested}, "charges differ from requests"
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

    # The read models are what the log says; no checkpoint stopped; no call was given up on.
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
    assert {row["status"] for row in effects} == {"done"}, effects

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


def report(what: str, **figures: Any) -> None:
    """A line of figures for the test's output (pytest -s or -rA shows it)."""
    print(f"\n{what}: " + ", ".join(f"{name}={value}" for name, value in figures.items()))


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.processes
@pytest.mark.postgres
def test_three_workers_finish_every_order_with_each_effect_once_and_in_log_order(cluster):
    """Three workers share eight partitions per subscriber (every one of them holds orders):
    each order ends once, with every effect once (see `assert_end_state`), each worker did
    part of the work, and each subscriber handled each order's events in log order, a check
    that fails if a partition handles an order's events out of order (handling each batch in
    reverse, for one, makes it report every completed order). Sending a placement again with
    its Idempotency-Key names the same order and places none."""
    cluster.start()
    cluster.add_products()

    began = time.monotonic()
    placed = place_orders(cluster, range(ORDERS))
    placing = time.monotonic() - began
    with cluster.explained():
        assert_accepted(placed)
    # A request sent again with its Idempotency-Key names the same order and places none.
    again = [place(cluster, replace(p, status=None, order_id="", error="")) for p in placed[:5]]
    assert [(a.status in (200, 201, 202), a.order_id) for a in again] == [
        (True, p.order_id) for p in placed[:5]
    ]

    settling = wait_until_settled(cluster, [p.order_id for p in placed])
    outcome = assert_end_state(cluster, placed, crashed=False)
    assert_every_worker_worked(cluster)
    report(
        "three workers",
        placing_s=round(placing, 1),
        settling_s=round(settling, 1),
        slowest_answer_s=round(max(p.seconds for p in placed), 2),
        **outcome.figures(),
    )


KILLS = 3
KILL_EVERY = 1.5  # seconds between a restarted worker being ready and the next kill


@pytest.mark.processes
@pytest.mark.postgres
def test_a_worker_killed_mid_run_and_restarted_loses_nothing_and_charges_once(cluster):
    """While the orders are placed and handled, the workers are killed in turn with SIGKILL
    (the worker and its pool process at once, as a crash of its machine) every KILL_EVERY
    seconds, and each is started again under its name. A wake-up it held goes back to the
    queue (acks late), a call it had claimed is taken over once its lease (5 s) runs out, with
    the same idempotency key. The end state holds as without the crashes; a call may have been
    made twice, and then got the same answer."""
    cluster.start()
    cluster.add_products()
    kills: list[tuple[str, int]] = []
    failures: list[BaseException] = []

    def kill_and_restart() -> None:
        try:
            for round_ in range(KILLS):
                time.sleep(KILL_EVERY)
                victim = cluster.workers[round_ % WORKERS]
                [row] = cluster.query(
                    "SELECT count(*) AS n FROM orders_ordersummary WHERE status <> ALL(%s)",
                    [list(FINAL)],
                )
                victim.kill()
                kills.append((victim.name, row["n"]))
                cluster.restart(victim)
        except BaseException as error:  # reported by the test's thread
            failures.append(error)

    killer = threading.Thread(target=kill_and_restart, name="killer")
    killer.start()
    try:
        placed = place_orders(cluster, range(ORDERS))
    finally:
        killer.join(timeout=KILLS * (KILL_EVERY + START_TIMEOUT))
    assert not failures, failures
    assert len(kills) == KILLS, kills
    # Each kill hit a worker while orders were still in flight.
    assert all(in_flight > 0 for _, in_flight in kills), kills
    with cluster.explained():
        assert_accepted(placed)

    settling = wait_until_settled(cluster, [p.order_id for p in placed])
    outcome = assert_end_state(cluster, placed, crashed=True)
    report("a worker killed", kills=kills, settling_s=round(settling, 1), **outcome.figures())


CUT_SECONDS = 5.0  # at least this long without a broker
SERVER_MARGIN = 0.5  # seconds a request may take besides waiting on the broker
RECONNECT_GRACE = timedelta(seconds=1)  # after the restore, until sends succeed again
LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"  # the project's log lines begin with the local time


@pytest.fixture
def broker_proxy(services: Services) -> Iterator[TcpProxy]:
    """A proxy in front of the broker, closed after the cluster using it has stopped."""
    with TcpProxy(services.broker_address) as proxy:
        yield proxy


@pytest.mark.processes
@pytest.mark.postgres
def test_orders_placed_while_the_broker_is_cut_off_are_accepted_and_finish_once_it_is_back(
    broker_proxy, cluster
):
    """Every process reaches RabbitMQ through a proxy, which cuts every connection and refuses
    new ones for CUT_SECONDS while a third of the orders are placed. The API keeps answering:
    each order is committed, its wake-up is logged as not sent (eventstore.tasks._send) and
    left to beat's sweep once the broker is back, and the server spends no more than the
    broker's connection timeout on it (CELERY_BROKER_CONNECTION_TIMEOUT, as settings.py
    promises). Once the broker is back the web server sends wake-ups again, and every order
    reaches its end with every effect once: no event was lost."""
    cluster.start(broker_port=broker_proxy.port)
    cluster.add_products()
    before = place_orders(cluster, range(0, 70))

    cut_at = time.monotonic()
    assert broker_proxy.cut() > 0, "no process was connected through the proxy"
    during = place_orders(cluster, range(70, 130))
    time.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - cut_at)))
    broker_proxy.restore()
    restored_at = datetime.now()
    cut_for = time.monotonic() - cut_at
    after = place_orders(cluster, range(130, ORDERS))
    placed = before + during + after

    with cluster.explained():
        # No 5xx while the broker was away, and no request waited long on it.
        assert_accepted(placed)
        server = cluster.server_seconds()
        limit = settings.CELERY_BROKER_CONNECTION_TIMEOUT + SERVER_MARGIN
        slow = {p.index: server[p.key] for p in during if server[p.key] > limit}
        assert not slow, f"orders placed while the broker was cut off took over {limit} s: {slow}"
        # The wake-ups those commits could not send were logged, and only while the broker
        # was away: the web server sent them again once it was back.
        failed_sends = [
            datetime.strptime(line[:23], LOG_TIME)
            for line in cluster.log_text("web").splitlines()
            if "Could not enqueue" in line
        ]
        assert failed_sends, "no wake-up failed to send: the cut missed the requests"
        assert max(failed_sends) < restored_at + RECONNECT_GRACE, "sends fail after the restore"

    settling = wait_until_settled(cluster, [p.order_id for p in placed])
    outcome = assert_end_state(cluster, placed, crashed=False)
    report(
        "broker cut",
        cut_s=round(cut_for, 1),
        failed_sends=len(failed_sends),
        server_s_while_cut_p50_max=_p50_max([server[p.key] for p in during]),
        server_s_before_p50_max=_p50_max([server[p.key] for p in before]),
        client_s_while_cut_max=round(max(p.seconds for p in during), 2),
        refused_connections=broker_proxy.refused,
        settling_s=round(settling, 1),
        **outcome.figures(),
    )


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
