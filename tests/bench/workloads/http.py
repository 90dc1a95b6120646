"""Workload 6: orders end to end over HTTP, from 8 concurrent clients on a few hot products.

The project is served as in production, by gunicorn with 2 (sync) worker processes on the
run's database. A small threaded client, one thread and one keep-alive connection per customer,
places orders (1 or 2 lines of 1 to 3 units, seeded random) on `PRODUCTS` hot products with
`STOCK` units each for `SECONDS` seconds (both scaled down for a quick run), so the stock runs
out during the run and later orders end cancelled for insufficient stock (still `201`).
Throughput counts 2xx answers; latency is over every answered request; a request that gets no
answer is a connection error.

Afterwards, with gunicorn stopped, every subscriber is caught up (a saga a request left mid-way
finishes) and each product is checked: no negative counts, available + reserved + sold equals
the units received, the read model equals the aggregate replayed from its events, and the units
sold equal the units of the completed orders (no oversell). `oversold` counts the products
failing any of these; each failure is described in the run's notes.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.catalogue import create_products
from tests.bench.core import Context, Figure, Figures, Workload, percentile
from tests.bench.setup import BENCH_ENVIRONMENT

PRODUCTS = 5
STOCK = 150
CLIENTS = 8
SECONDS = 30.0
WORKERS = 2
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 60.0
SEED = 6
PROJECT_DIR = Path(__file__).resolve().parents[3]


def _seed(stock: int) -> tuple[list[str], list[str]]:
    """Create the hot products with `stock` units each and one customer (with an API token) per
    client: (product ids, tokens)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    product_ids = create_products("hot", PRODUCTS, stock)
    user_model = get_user_model()
    tokens = []
    for n in range(CLIENTS):
        # No password: hashing one is slow on purpose, and the clients use tokens.
        user = user_model.objects.create_user(username=f"bench-customer-{n}")
        tokens.append(Token.objects.create(user=user).key)
    return product_ids, tokens


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", "/api/health/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def _served(context: Context) -> Iterator[int]:
    """gunicorn serving the project on the run's database; yields its port, then stops it.
    Its output (gunicorn's log and the project's warnings and errors) goes to gunicorn.log."""
    port = _free_port()
    log_path = context.workdir / "gunicorn.log"
    environment = {
        **os.environ,
        **BENCH_ENVIRONMENT,
        "DATABASE_URL": context.database_url,
        "LOG_LEVEL": "WARNING",  # not a line per notification sent
    }
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "config.wsgi:application",
        f"--workers={WORKERS}",
        f"--bind={HOST}:{port}",
    ]
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            command, cwd=PROJECT_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start; its log ends:\n{_tail(log_path)}")
            time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@dataclass
class _Tally:
    """What the clients saw; each thread adds to it under `lock`."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    connection_errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answers(self, hundreds: int) -> int:
        """How many answers had a status of `hundreds`xx (2 for 2xx)."""
        return sum(n for code, n in self.statuses.items() if code // 100 == hundreds)

    def error(self, text: str) -> None:
        if len(self.first_errors) < 5:
            self.first_errors.append(text)


def _client(
    port: int, token: str, product_ids: list[str], seed: int, until: float, tally: _Tally
) -> None:
    """Place orders over one keep-alive connection until `until`; reconnect after an error."""
    rng = random.Random(seed)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    while time.monotonic() < until:
        lines = rng.sample(product_ids, rng.randint(1, 2))
        body = json.dumps(
            {"items": [{"product_id": p, "quantity": rng.randint(1, 3)} for p in lines]}
        )
        started = time.perf_counter()
        try:
            connection.request("POST", "/api/orders/", body, headers)
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            with tally.lock:
                tally.connection_errors += 1
                tally.error(f"connection error: {error!r}")
            time.sleep(0.05)
            continue
        latency = time.perf_counter() - started
        with tally.lock:
            tally.latencies.append(latency)
            tally.statuses[response.status] = tally.statuses.get(response.status, 0) + 1
            if response.status >= 400:
                tally.error(f"{response.status}: {answer[:200].decode(errors='replace')}")
    connection.close()


def _load(port: int, tokens: list[str], product_ids: list[str], seconds: float) -> _Tally:
    """Run one client thread per token for `seconds`."""
    tally = _Tally()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_client, args=(port, token, product_ids, SEED + n, until, tally))
        for n, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def _check(product_ids: list[str], stock: int, notes: list[str]) -> tuple[int, dict[str, int]]:
    """Check each product's stock (`stock` units received) against its events and the completed
    orders: (products failing a check, orders by status). Describes each failure in `notes`."""
    from inventory.models import ProductStock
    from inventory.services import products
    from orders.models import OrderSummary

    by_status: dict[str, int] = {}
    sold_to: dict[str, int] = dict.fromkeys(product_ids, 0)
    for status, items in OrderSummary.objects.values_list("status", "items"):
        by_status[status] = by_status.get(status, 0) + 1
        if status == "completed":
            for item in items:
                sold_to[item["product_id"]] = sold_to.get(item["product_id"], 0) + item["quantity"]
    failing = 0
    for product_id in product_ids:
        row = ProductStock.objects.get(pk=product_id)
        product = products.load(product_id, use_snapshot=False)
        read = (row.available_stock, row.reserved_stock, row.sold_stock, row.received_stock)
        replayed = (product.available, product.reserved, product.sold, product.received)
        problems = []
        if min(*read, *replayed) < 0:
            problems.append("a negative count")
        for name, (available, reserved, sold, received) in (
            ("read model", read),
            ("aggregate", replayed),
        ):
            if available + reserved + sold != received:
                problems.append(f"{name}: {available} + {reserved} + {sold} != {received}")
        if read != replayed:
            problems.append(f"read model {read} != aggregate {replayed}")
        if product.received != stock:
            problems.append(f"received {product.received}, not the {stock} seeded")
        if product.sold != sold_to[product_id]:
            problems.append(f"sold {product.sold}, completed orders hold {sold_to[product_id]}")
        if problems:
            failing += 1
            notes.append(f"{product_id}: " + "; ".join(problems))
    unsettled = sum(
        n for status, n in by_status.items() if status not in {"completed", "cancelled"}
    )
    if unsettled:
        notes.append(f"{unsettled} orders not completed or cancelled after catching up")
    return failing, by_status


def _project(context: Context) -> Figures:
    from django.db import connections

    from eventstore.subscriptions import catch_up_all
    from orders.models import OrderSummary

    stock = context.size(STOCK)
    context.progress(f"seeding {PRODUCTS} products of {stock} units and {CLIENTS} customers")
    product_ids, tokens = _seed(stock)
    connections.close_all()  # the database is gunicorn's while it serves
    seconds = max(3.0, SECONDS * context.scale)
    with _served(context) as port:
        context.progress(f"gunicorn ({WORKERS} workers) on port {port}; {CLIENTS} clients")
        context.progress(f"placing orders for {seconds:g} s")
        started = time.perf_counter()
        tally = _load(port, tokens, product_ids, seconds)
        elapsed = time.perf_counter() - started

    context.progress("catching up subscribers and checking stock")
    catch_up_all()
    oversold, by_status = _check(product_ids, stock, context.notes)
    created, placed = tally.answers(2), OrderSummary.objects.count()
    if placed != created:
        context.notes.append(f"{placed} orders exist, {created} were answered 2xx")
    context.notes.extend(tally.first_errors)
    return {
        "orders_per_s": created / elapsed,
        "p50_ms": percentile(tally.latencies, 0.50) * 1000,
        "p99_ms": percentile(tally.latencies, 0.99) * 1000,
        "completed": by_status.get("completed", 0),
        "cancelled": by_status.get("cancelled", 0),
        "errors_4xx": tally.answers(4),
        "errors_5xx": tally.answers(5),
        "connection_errors": tally.connection_errors,
        "oversold": oversold,
    }


HTTP = Workload(
    name="http",
    title=(
        f"Orders over HTTP: gunicorn ({WORKERS} workers), {CLIENTS} clients, "
        f"{PRODUCTS} hot products, {SECONDS:g} s"
    ),
    figures=(
        Figure("orders_per_s", "throughput (2xx)", "orders/s", baseline=False),
        Figure("p50_ms", "latency p50", "ms", higher_is_better=False, baseline=False),
        Figure("p99_ms", "latency p99", "ms", higher_is_better=False, baseline=False),
        Figure("completed", "orders completed", "orders", baseline=False),
        Figure("cancelled", "orders cancelled", "orders", baseline=False),
        Figure("errors_4xx", "4xx answers", "answers", higher_is_better=False, baseline=False),
        Figure(
            "errors_5xx",
            "5xx answers",
            "answers",
            higher_is_better=False,
            target_value=0,
            baseline=False,
        ),
        Figure(
            "connection_errors",
            "connection errors",
            "requests",
            higher_is_better=False,
            baseline=False,
        ),
        Figure(
            "oversold",
            "products oversold or out of balance",
            "products",
            higher_is_better=False,
            target_value=0,
            baseline=False,
        ),
    ),
    project=_project,
    baseline=None,
)
