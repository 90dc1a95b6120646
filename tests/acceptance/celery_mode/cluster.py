"""Celery mode in processes, for the tests of this folder: the services it needs, the cluster of
processes (gunicorn, Celery workers, beat) on a database and a RabbitMQ vhost of its own, and
placing orders over HTTP until nothing is left to do."""

from __future__ import annotations

import os
import random
import re
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.rows import dict_row

from eventstore.follower.subscriptions import get_subscribers
from tests.gateways import FILE_VARIABLE
from tests.processes import (
    HOST,
    Answer,
    Service,
    free_port,
    http_request,
    tail,
)

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


@dataclass(frozen=True)
class Seeded:
    """The template database every test copies: migrated, seed_demo's accounts and tokens."""

    database: str
    tokens: dict[str, str]


def project_environment(database_url: str) -> dict[str, str]:
    """The project's own settings (not the test run's), on `database_url`."""
    environment = dict(os.environ)
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    environment["DATABASE_URL"] = database_url
    return environment


# --- the processes -----------------------------------------------------------------------------


class Cluster:
    """The processes of celery mode on one database and vhost: web, workers w1..wN, beat."""

    def __init__(
        self,
        services: Services,
        database_url: str,
        vhost: str,
        seeded: Seeded,
        tmp_path: Path,
        *,
        dispatch: str = "celery",
    ) -> None:
        self.services = services
        # "inline": the web server follows up its own commits and the worker loop
        # (process_events --follow, as `make run`) replaces Celery's workers and beat.
        self.dispatch = dispatch
        self.settings: dict[str, str] = {}  # a test's own settings, over the environment's
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
            **project_environment(self.database_url),
            "DEBUG": "1",
            "LOG_LEVEL": "INFO",
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
            # Every order placed is to be accepted and checked: no admission control either
            # (a loaded machine could let the backlog pass its limit and refuse orders).
            "ADMISSION_MAX_BACKLOG_SECONDS": "0",
            "EVENTSTORE_DISPATCH": self.dispatch,
            **self.settings,
        }

    @property
    def processes(self) -> list[Service]:
        return [s for s in (self.web, self.beat, *self.workers) if s is not None]

    def start(self, *, broker_port: int | None = None) -> None:
        """Start the workers, beat and the web server; return once each is ready. With
        `broker_port`, every process reaches the broker through that port on HOST."""
        self.broker_port = broker_port
        environment = self.environment()
        if self.dispatch == "inline":
            self._start_inline(environment)
            return
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
        self._start_web(environment)
        with self.explained():
            for worker in self.workers:
                worker.wait_for_log(READY, START_TIMEOUT)
            self.beat.wait_for_log(r"beat: Starting", START_TIMEOUT)
            self._wait_until_serving()

    def _start_inline(self, environment: dict[str, str]) -> None:
        loop = Service(
            "loop",
            [sys.executable, "manage.py", "process_events", "--follow"],
            {**environment, "DJANGO_SETTINGS_MODULE": "config.settings"},
            self.logs,
        )
        self.workers.append(loop.start())
        self._start_web(environment)
        with self.explained():
            loop.wait_for_log(r"^Following the log", START_TIMEOUT)
            self._wait_until_serving()

    def _start_web(self, environment: dict[str, str]) -> None:
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
    retry_after: str = ""  # the answer's Retry-After header, if any

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
    placed.retry_after = answer.headers.get("Retry-After", "")
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
    """Wait until every order is final, every partition caught up and no call is pending (nor
    a withdrawn one still to reconcile); how many seconds that took."""
    started = time.monotonic()
    while True:
        still_open = open_orders(cluster, order_ids)
        pending = cluster.query(
            "SELECT subscriber, count(*) AS calls FROM eventstore_effect "
            "WHERE status = 'pending' OR (status = 'withdrawn' AND due_at IS NOT NULL) "
            "GROUP BY subscriber"
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


def report(what: str, **figures: Any) -> None:
    """A line of figures for the test's output (pytest -s or -rA shows it)."""
    print(f"\n{what}: " + ", ".join(f"{name}={value}" for name, value in figures.items()))
