"""Workload 8 (PostgreSQL): does a long transaction of another program slow the shop down?

Subscribers wait only for the project's own running transactions (docs/EVENTSTORE.md,
"What the horizon leaves out"). This runs the `http` workload's load (gunicorn with 2 workers,
8 customers on hot products, `tests/bench/shoppers.py`) on one server for `WARMUP` seconds,
not counted, then twice for `SECONDS` seconds each (scaled by --scale): first alone, then
while a connection of another application (psql's name) runs `BEGIN; SELECT
pg_current_xact_id(); SELECT pg_sleep(N)` for the whole phase, as someone's forgotten psql
session would. Per phase: completed orders per second and latency p50 / p99 of every answered
POST. The headline is the second phase's throughput over the first's: within noise of 1 is
what the rule promises (before it, the same session stopped every order: BENCHMARKS.md).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tests.bench.catalogue import create_products
from tests.bench.core import Context, Figure, Figures, Workload, percentile
from tests.bench.serving import served
from tests.bench.shoppers import create_customers, place_orders
from tests.bench.workloads.http import (
    CANCELLED,
    CLIENTS,
    CONNECTION_ERRORS,
    ERRORS_5XX,
    OVERSOLD,
    PRODUCTS,
    STOCK,
    WORKERS,
    settled,
)

SECONDS = 25.0  # per phase
WARMUP = 5.0
SEED = 8
FOREIGN_APPLICATION = "psql"
PHASES = ("alone", "foreign")


@contextmanager
def foreign_transaction(database_url: str, seconds: float) -> Iterator[int]:
    """A transaction of another application that takes an id and sleeps `seconds` in a thread
    of its own; yields its pid; cancelled if still running when the block ends."""
    import psycopg

    with psycopg.connect(database_url, application_name=FOREIGN_APPLICATION) as foreign:
        foreign.execute("SELECT pg_current_xact_id()")

        def sleep() -> None:
            with suppress(psycopg.errors.QueryCanceled):  # the block ended first
                foreign.execute("SELECT pg_sleep(%s)", [seconds])

        sleeper = threading.Thread(target=sleep)
        sleeper.start()
        try:
            yield foreign.info.backend_pid
        finally:
            foreign.cancel_safe()
            sleeper.join()
            foreign.rollback()


def _project(context: Context) -> Figures:
    from django.db import connections

    context.progress(f"seeding {PRODUCTS} products of {STOCK:,} units and {CLIENTS} customers")
    product_ids = create_products("hot", PRODUCTS, STOCK)
    tokens = create_customers(CLIENTS)
    connections.close_all()  # the database is gunicorn's while it serves
    seconds = max(3.0, SECONDS * context.scale)
    figures: Figures = {}
    tallies = []
    with served(context, workers=WORKERS) as port:
        # Not counted: the first phase would otherwise pay for cold workers and caches alone.
        context.progress(f"warming up for {WARMUP:g} s")
        place_orders(port, tokens, product_ids, WARMUP, SEED)
        for phase in PHASES:
            context.progress(f"{phase}: placing orders for {seconds:g} s")
            if phase == "foreign":
                with foreign_transaction(context.database_url, seconds + 1) as pid:
                    context.progress(f"{FOREIGN_APPLICATION} transaction of pid {pid} running")
                    tally = place_orders(port, tokens, product_ids, seconds, SEED)
            else:
                tally = place_orders(port, tokens, product_ids, seconds, SEED)
            tallies.append(tally)
            figures[f"{phase}_completed_per_s"] = tally.per_second("completed")
            figures[f"{phase}_p50_ms"] = percentile(tally.latencies, 0.50) * 1000
            figures[f"{phase}_p99_ms"] = percentile(tally.latencies, 0.99) * 1000
    alone = figures["alone_completed_per_s"]
    figures["ratio"] = figures["foreign_completed_per_s"] / alone if alone else 0.0

    figures.update(settled(context, product_ids, tallies))
    return figures


def _phase_figures(phase: str) -> tuple[Figure, ...]:
    label = "alone" if phase == "alone" else f"beside a {FOREIGN_APPLICATION} transaction"
    return (
        Figure(f"{phase}_completed_per_s", f"{label}: throughput", "orders/s", baseline=False),
        Figure(
            f"{phase}_p50_ms", f"{label}: latency p50", "ms", higher_is_better=False, baseline=False
        ),
        Figure(
            f"{phase}_p99_ms", f"{label}: latency p99", "ms", higher_is_better=False, baseline=False
        ),
    )


HTTP_FOREIGN = Workload(
    name="http-foreign",
    title=(
        f"Orders over HTTP ({WORKERS} workers, {CLIENTS} clients), {SECONDS:g} s alone, then "
        f"{SECONDS:g} s beside another application's open transaction"
    ),
    figures=(
        Figure(
            "ratio",
            "throughput beside the foreign transaction over alone",
            "x",
            target_value=0.9,
            baseline=False,
        ),
        *(figure for phase in PHASES for figure in _phase_figures(phase)),
        CANCELLED,
        ERRORS_5XX,
        CONNECTION_ERRORS,
        OVERSOLD,
    ),
    project=_project,
    baseline=None,
    backends=("postgres",),
)
