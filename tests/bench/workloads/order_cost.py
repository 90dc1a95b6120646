"""Workload 6: what one order costs the engine, by kind of statement.

Orders are placed through the service layer as in `in-process` (each call returns once its saga
has run to completion), first a few to warm up, then the measured ones, each statement seen by
Django's execute wrapper on the connection (psycopg's own BEGIN and COMMIT are not statements
there). Per order it reports the statements by kind, the transactions committed, the CPU this
process spent (`time.process_time`: Python, the driver and its system calls) and the time spent
inside statements (the database's work and the round trips). The baseline makes the same
writes in the same number of transactions with the bare driver (`tests/bench/raw.py`).

`make bench BENCH_ARGS="--only order-cost --runs 1"` prints the table alone; the next change to
the engine is judged by the same figures.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from contextlib import contextmanager

from tests.bench import report
from tests.bench.catalogue import create_products
from tests.bench.core import Context, Figure, Figures, Workload

WARM_UP = 20
ORDERS = 300
PRODUCTS = 20
CUSTOMERS = 20
LINES = 2

# Kinds of statement, in the order the report lists them; the first rule a statement matches
# names its kind.
KINDS = (
    ("savepoint", "savepoints (SAVEPOINT, RELEASE, ROLLBACK TO)"),
    ("append", "appends (the head check, the insert and the stream index)"),
    ("load", "aggregate loads (snapshot and later events)"),
    ("follow", "following the log (checkpoints, batches, the horizon)"),
    ("effect", "calls owed to the outside world (recorded, claimed, finished)"),
    ("vault", "the vault"),
    ("read_model", "read models (projection writes and reads)"),
    ("other", "other (catalogue check, customer's address, ...)"),
)
_RULES = (
    ("savepoint", re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.I)),
    ("append", re.compile(r"\bINSERT INTO \"?eventstore_event\"?\b|\bhead\b", re.I)),
    ("load", re.compile(r"\beventstore_snapshot\b", re.I)),
    (
        "follow",
        re.compile(r"\beventstore_checkpoint\b|pg_current_snapshot|\beventstore_event\b", re.I),
    ),
    ("effect", re.compile(r"\beventstore_effect\b", re.I)),
    ("vault", re.compile(r"\beventstore_vaultedsecret\b", re.I)),
    ("append", re.compile(r"\beventstore_stream\b", re.I)),
    (
        "read_model",
        re.compile(r"\b(orders|inventory|payments|notifications)_[a-z]+\b", re.I),
    ),
)


_BEGIN = re.compile(r"^\s*BEGIN\b", re.I)


def transaction_control(sql: str) -> bool:
    """Whether a statement only opens a transaction (SQLite's BEGIN IMMEDIATE goes through the
    execute wrapper; psycopg's BEGIN does not): it is not counted."""
    return bool(_BEGIN.match(sql))


_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|WITH)\b", re.I)


def kind_of(sql: str) -> str:
    """The kind of a statement (see KINDS)."""
    for kind, pattern in _RULES:
        if pattern.search(sql):
            return kind
    return "other"


class Tally:
    """Statements by kind, the time spent in them and the transactions committed, on one
    connection while `watching()`."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.seconds = 0.0
        self.commits = 0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            if not transaction_control(sql):
                self.kinds[kind_of(sql)] += 1
            if context["connection"].get_autocommit() and _WRITE.match(sql):
                self.commits += 1  # a write outside a transaction commits on its own

    @contextmanager
    def watching(self, connection):
        commit = connection.commit

        def counted_commit():
            self.commits += 1
            return commit()

        connection.commit = counted_commit
        try:
            with connection.execute_wrapper(self):
                yield self
        finally:
            del connection.commit


def _place_orders(count: int, start: int, product_ids: list[str], customer_ids: list[str]):
    from orders.services import order_place

    for n in range(start, start + count):
        first = (n * LINES) % PRODUCTS
        items = [
            {"product_id": product_ids[(first + line) % PRODUCTS], "quantity": 1 + line}
            for line in range(LINES)
        ]
        order_place(customer_id=customer_ids[n % CUSTOMERS], items=items)


def _project(context: Context) -> Figures:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from eventstore import signals
    from eventstore.store import event_store
    from orders.models import OrderSummary

    product_ids = create_products("cost-product", PRODUCTS, stock=1_000_000)
    user_model = get_user_model()
    customer_ids = [
        str(
            user_model.objects.create_user(
                username=f"cost-customer-{n}", email=f"cost-customer-{n}@example.com"
            ).pk
        )
        for n in range(CUSTOMERS)
    ]
    _place_orders(WARM_UP, 0, product_ids, customer_ids)
    orders = context.size(ORDERS)
    appends = 0

    def count_append(**kwargs) -> None:
        nonlocal appends
        appends += 1

    events_before = event_store.count()
    context.progress(f"placing {orders:,} orders, every statement counted")
    signals.events_committed.connect(count_append, weak=False, dispatch_uid="bench.cost")
    tally = Tally()
    with tally.watching(connection):
        cpu, wall = time.process_time(), time.perf_counter()
        _place_orders(orders, WARM_UP, product_ids, customer_ids)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    signals.events_committed.disconnect(dispatch_uid="bench.cost")
    completed = OrderSummary.objects.filter(status="completed").count()
    if completed != WARM_UP + orders:
        raise RuntimeError(f"{completed} of {WARM_UP + orders} sagas completed")
    figures = {f"kind_{kind}": tally.kinds[kind] / orders for kind, _ in KINDS}
    figures.update(
        statements=sum(tally.kinds.values()) / orders,
        events=(event_store.count() - events_before) / orders,
        appends=appends / orders,
        commits=tally.commits / orders,
        cpu_ms=cpu * 1000 / orders,
        db_ms=tally.seconds * 1000 / orders,
        wall_ms=wall * 1000 / orders,
    )
    return figures


def _baseline(context: Context, project: Figures) -> Figures:
    """The project's events per order in as many transactions as it appended in, bare driver:
    each transaction its version check and one insert of its events."""
    log = context.raw_log()
    orders = context.size(ORDERS)
    events = round(project["events"] * orders)
    commits = max(1, round(project["appends"]))
    written = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(orders):
        due = round(events * (n + 1) / orders) - written
        for commit in range(commits):
            share = due // commits + (1 if commit < due % commits else 0)
            if share:
                log.append(
                    "BenchOrder",
                    f"order-{n}-{commit}",
                    [("Step", {"order": n, "step": commit})] * share,
                    0,
                    {"correlation_id": f"order-{n}"},
                )
        written += due
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    log.close()
    return {
        "statements": 2.0 * commits,
        "events": written / orders,
        "appends": float(commits),
        "commits": float(commits),
        "cpu_ms": cpu * 1000 / orders,
        "wall_ms": wall * 1000 / orders,
    }


FIGURES = (
    Figure("statements", "statements", "per order", higher_is_better=False),
    *(
        Figure(f"kind_{kind}", f"  {label}", "per order", higher_is_better=False, baseline=False)
        for kind, label in KINDS
    ),
    Figure("events", "events", "per order", higher_is_better=False),
    Figure("appends", "appends (transactions with events)", "per order", higher_is_better=False),
    Figure("commits", "transactions that wrote", "per order", higher_is_better=False),
    Figure("cpu_ms", "CPU of this process", "ms per order", higher_is_better=False),
    Figure(
        "db_ms", "time inside statements", "ms per order", higher_is_better=False, baseline=False
    ),
    Figure("wall_ms", "time", "ms per order", higher_is_better=False),
)


def render(results: list[tuple[str, str, report.WorkloadResult]], runs: int, scale: float) -> str:
    """One table: each figure per database, the project beside the bare driver."""
    from tabulate import tabulate

    servers = [server for backend, server, _ in results if backend == "postgres"]
    backend = "postgres" if servers else "sqlite"
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    headers = ["Figure"]
    for name, _, _ in results:
        headers += [f"{names[name]}: project", f"{names[name]}: bare driver"]
    rows = []
    for figure in FIGURES:
        row = [f"{figure.label} ({figure.unit})"]
        for _, _, result in results:
            baseline = result.baseline(figure.key) if figure.baseline else None
            row += [report.number(result.project(figure.key)), report.number(baseline)]
        rows.append(row)
    notes = [
        f"- {names[name]}: {note}"
        for name, _, result in results
        for note in [*result.notes, *(f"failed: {error}" for error in result.errors)]
    ]
    parts = [
        "### Latest run",
        "",
        *report.environment(backend, runs, scale, servers[0] if servers else ""),
        "",
        tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True),
        "",
    ]
    if notes:
        parts += ["Notes from the runs:", "", *dict.fromkeys(notes), ""]
    return "\n".join(parts)


ORDER_COST = Workload(
    name="order-cost",
    title=f"The cost of one order ({ORDERS} orders, every statement counted)",
    figures=FIGURES,
    project=_project,
    baseline=_baseline,
    section="order-cost",
    render=render,
)
