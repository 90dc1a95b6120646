"""Workload 7: does throughput over HTTP grow with workers when the payment provider is slow?

A real provider takes tens of milliseconds to answer. Calls to it made while the database is
held (a transaction open, a lock taken) make every other order wait for them too, and adding
workers then adds little; calls made outside any transaction overlap, and throughput grows with
the workers. This workload measures which of the two the project does.

The project is served by gunicorn (sync workers, one thread each; `tests/bench/serving.py`) on
the run's database with PAYMENTS_GATEWAY_LATENCY_MS=`LATENCY_MS`, so the simulated gateway
sleeps that long, lock-free, on every charge and refund. Two settings run one after the other
on the same database, each for `SECONDS` seconds (scaled by --scale) with a gunicorn of its own:
1 worker with 1 customer, then 4 workers with 8 customers (`tests/bench/shoppers.py`). The
products hold enough stock for any run, so orders complete.

Per setting: completed orders per second, and time to final p50 / p99: from sending POST
/api/orders/ to the answer showing the order completed or cancelled (the POST's own answer
while orders are processed inline; a later GET /api/orders/{id}/ once they are processed in
the background). The headline is the ratio of the second setting's completed orders/s to the
first's; the target is 3x. Afterwards, with gunicorn stopped, subscribers are caught up and
the stock checked as in the `http` workload.
"""

from __future__ import annotations

from tests.bench.catalogue import create_products
from tests.bench.core import Context, Figure, Figures, Workload, percentile
from tests.bench.serving import served
from tests.bench.shoppers import create_customers, place_orders
from tests.bench.workloads.http import (
    CANCELLED,
    CONNECTION_ERRORS,
    ERRORS_5XX,
    OVERSOLD,
    PRODUCTS,
    STOCK,
    settled,
)

LATENCY_MS = 50
# (gunicorn workers, customers), in the order they run; the first is the ratio's denominator.
SETTINGS = ((1, 1), (4, 8))
SECONDS = 20.0  # per setting
SEED = 7
TARGET_RATIO = 3.0


def _key(workers: int, clients: int, figure: str) -> str:
    return f"w{workers}c{clients}_{figure}"


def _label(workers: int, clients: int) -> str:
    return f"{workers} worker{'s' * (workers > 1)}, {clients} client{'s' * (clients > 1)}"


def _project(context: Context) -> Figures:
    from django.db import connections

    customers = max(clients for _, clients in SETTINGS)
    context.progress(f"seeding {PRODUCTS} products of {STOCK:,} units and {customers} customers")
    product_ids = create_products("hot", PRODUCTS, STOCK)
    tokens = create_customers(customers)
    connections.close_all()  # the database is gunicorn's while it serves
    seconds = max(3.0, SECONDS * context.scale)
    gateway = {"PAYMENTS_GATEWAY_LATENCY_MS": str(LATENCY_MS)}

    figures: Figures = {}
    tallies = []
    for workers, clients in SETTINGS:
        with served(context, workers=workers, environment=gateway) as port:
            context.progress(
                f"gunicorn ({_label(workers, clients)}, gateway {LATENCY_MS} ms) on port {port}; "
                f"placing orders for {seconds:g} s"
            )
            tally = place_orders(port, tokens[:clients], product_ids, seconds, SEED)
        tallies.append(tally)
        figures[_key(workers, clients, "completed_per_s")] = tally.per_second("completed")
        figures[_key(workers, clients, "p50_ms")] = percentile(tally.to_final, 0.50) * 1000
        figures[_key(workers, clients, "p99_ms")] = percentile(tally.to_final, 0.99) * 1000

    first, second = (figures[_key(*setting, "completed_per_s")] for setting in SETTINGS)
    figures["ratio"] = second / first if first else 0.0

    figures.update(settled(context, product_ids, tallies))
    return figures


def _setting_figures(workers: int, clients: int) -> tuple[Figure, ...]:
    label = _label(workers, clients)
    return (
        Figure(
            _key(workers, clients, "completed_per_s"),
            f"{label}: throughput (completed)",
            "orders/s",
            baseline=False,
        ),
        Figure(
            _key(workers, clients, "p50_ms"),
            f"{label}: time to final p50",
            "ms",
            higher_is_better=False,
            baseline=False,
        ),
        Figure(
            _key(workers, clients, "p99_ms"),
            f"{label}: time to final p99",
            "ms",
            higher_is_better=False,
            baseline=False,
        ),
    )


HTTP_LATENCY = Workload(
    name="http-latency",
    title=(
        f"Orders over HTTP, gateway answering in {LATENCY_MS} ms: "
        + " vs ".join(_label(*setting) for setting in SETTINGS)
        + f", {SECONDS:g} s each"
    ),
    figures=(
        Figure(
            "ratio",
            f"throughput (completed), {_label(*SETTINGS[1])} over {_label(*SETTINGS[0])}",
            "x",
            target_value=TARGET_RATIO,
            baseline=False,
        ),
        *(figure for setting in SETTINGS for figure in _setting_figures(*setting)),
        CANCELLED,
        ERRORS_5XX,
        CONNECTION_ERRORS,
        OVERSOLD,
    ),
    project=_project,
    baseline=None,
)
