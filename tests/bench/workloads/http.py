"""Workload 6: orders end to end over HTTP, from 8 concurrent customers on a few hot products.

The project is served as in production, by gunicorn with 2 sync worker processes of one thread
each on the run's database (`tests/bench/serving.py`). Eight customers, one thread and one
keep-alive connection each (`tests/bench/shoppers.py`), place orders (1 or 2 lines of 1 to 3
units, seeded random) on `PRODUCTS` hot products for `SECONDS` seconds (scaled down for a quick
run), each followed until it is final. The products hold enough stock for any run, so orders
complete and the headline is completed orders per second; cancelled orders are counted apart
(with their reasons in the notes). Latency is that of every answered POST; a request that gets
no answer is a connection error.

Afterwards, with gunicorn stopped, every subscriber is caught up (a saga a request left mid-way
finishes) and each product is checked (`catalogue.check_stock`): no negative counts, available +
reserved + sold equals the units received plus staff's corrections, the read model equals the
aggregate replayed from its events, and the units sold equal the units of the completed orders
(no oversell). `oversold` counts the products failing any of these; each failure is described
in the run's notes.
"""

from __future__ import annotations

from tests.bench.catalogue import check_stock, create_products
from tests.bench.core import Context, Figure, Figures, Workload, percentile
from tests.bench.serving import served
from tests.bench.shoppers import create_customers, note_discrepancies, place_orders

PRODUCTS = 5
# Units per product. An order takes at most 3 units of a product, so this lasts 333,333 orders
# per product, far beyond what a run places: no order is cancelled for want of stock, and the
# figure measures orders that complete. It is not scaled with --scale.
STOCK = 1_000_000
CLIENTS = 8
SECONDS = 30.0
WORKERS = 2
SEED = 6


def settled(context: Context, product_ids, tallies) -> Figures:
    """Once the clients stopped: every subscriber caught up, the stock checked, what the
    customers saw compared with the database (notes); the runs' cancellations, 5xx answers,
    connection errors and products oversold, summed over `tallies`."""
    from eventstore.follower.subscriptions import catch_up_all

    context.progress("catching up subscribers and checking stock")
    catch_up_all()
    oversold, by_status = check_stock(product_ids, STOCK, context.notes)
    note_discrepancies(tallies, by_status, context.notes)
    return {
        "cancelled": sum(tally.count("cancelled") for tally in tallies),
        "errors_5xx": sum(tally.answers(5) for tally in tallies),
        "connection_errors": sum(tally.connection_errors for tally in tallies),
        "oversold": oversold,
    }


def _project(context: Context) -> Figures:
    from django.db import connections

    from eventstore.follower.subscriptions import catch_up_all

    context.progress(f"seeding {PRODUCTS} products of {STOCK:,} units and {CLIENTS} customers")
    product_ids = create_products("hot", PRODUCTS, STOCK)
    tokens = create_customers(CLIENTS)
    connections.close_all()  # the database is gunicorn's while it serves
    seconds = max(3.0, SECONDS * context.scale)
    with served(context, workers=WORKERS) as port:
        context.progress(f"gunicorn ({WORKERS} workers) on port {port}; {CLIENTS} customers")
        context.progress(f"placing orders for {seconds:g} s")
        tally = place_orders(port, tokens, product_ids, seconds, SEED)

    context.progress("catching up subscribers and checking stock")
    catch_up_all()
    oversold, by_status = check_stock(product_ids, STOCK, context.notes)
    note_discrepancies([tally], by_status, context.notes)
    return {
        "completed_per_s": tally.per_second("completed"),
        "p50_ms": percentile(tally.latencies, 0.50) * 1000,
        "p99_ms": percentile(tally.latencies, 0.99) * 1000,
        "completed": tally.count("completed"),
        "cancelled": tally.count("cancelled"),
        "errors_4xx": tally.answers(4),
        "errors_5xx": tally.answers(5),
        "connection_errors": tally.connection_errors,
        "oversold": oversold,
    }


# Shared with the other HTTP workloads: the figures every one of them must keep at zero.
CANCELLED = Figure(
    "cancelled", "orders cancelled", "orders", higher_is_better=False, baseline=False
)
CONNECTION_ERRORS = Figure(
    "connection_errors", "connection errors", "requests", higher_is_better=False, baseline=False
)
ERRORS_5XX = Figure(
    "errors_5xx", "5xx answers", "answers", higher_is_better=False, target_value=0, baseline=False
)
OVERSOLD = Figure(
    "oversold",
    "products oversold or out of balance",
    "products",
    higher_is_better=False,
    target_value=0,
    baseline=False,
)

HTTP = Workload(
    name="http",
    title=(
        f"Orders over HTTP: gunicorn ({WORKERS} workers), {CLIENTS} clients, "
        f"{PRODUCTS} hot products, {SECONDS:g} s"
    ),
    figures=(
        Figure("completed_per_s", "throughput (completed)", "orders/s", baseline=False),
        Figure("p50_ms", "latency p50", "ms", higher_is_better=False, baseline=False),
        Figure("p99_ms", "latency p99", "ms", higher_is_better=False, baseline=False),
        Figure("completed", "orders completed", "orders", baseline=False),
        CANCELLED,
        Figure("errors_4xx", "4xx answers", "answers", higher_is_better=False, baseline=False),
        ERRORS_5XX,
        CONNECTION_ERRORS,
        OVERSOLD,
    ),
    project=_project,
    baseline=None,
)
