"""Workload 5: place orders through the service layer (no HTTP) until 2,000 sagas completed.

The saga runs as the project runs it: each commit wakes the subscribers in the placing thread,
so `order_place` returns once the saga has run as far as it can, here to completion. Latency is
the time of that call. The baseline writes the same number of events per order in the same
number of transactions (each with its version check) with the bare driver: the database's cost
of the same writes, without any of the deciding.
Afterwards `rebuild_projections` replays the orders' events into every service's read models.
"""

from __future__ import annotations

import io
import time

from tests.bench.catalogue import create_products
from tests.bench.core import Context, Figure, Figures, Stopwatch, Workload, percentile

ORDERS = 2_000
PRODUCTS = 20
CUSTOMERS = 50
LINES = 2


def _project(context: Context) -> Figures:

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from eventstore import signals
    from eventstore.store import event_store
    from orders.models import OrderSummary
    from orders.services import order_place

    product_ids = create_products("bench-product", PRODUCTS, stock=1_000_000)
    # Customers with email addresses, so that every notification is delivered as in production.
    user_model = get_user_model()
    customer_ids = [
        str(
            user_model.objects.create_user(
                username=f"bench-customer-{n}", email=f"bench-customer-{n}@example.com"
            ).pk
        )
        for n in range(CUSTOMERS)
    ]
    orders = context.size(ORDERS)
    commits = 0

    def count_commit(**kwargs) -> None:
        nonlocal commits
        commits += 1

    events_before = event_store.count()
    signals.events_committed.connect(count_commit, weak=False, dispatch_uid="bench.commits")
    latencies = []
    context.progress(f"placing {orders:,} orders")
    with Stopwatch() as clock:
        for n in range(orders):
            first = (n * LINES) % PRODUCTS
            items = [
                {"product_id": product_ids[(first + line) % PRODUCTS], "quantity": 1 + line}
                for line in range(LINES)
            ]
            started = time.perf_counter()
            order_place(customer_id=customer_ids[n % CUSTOMERS], items=items)
            latencies.append(time.perf_counter() - started)
    signals.events_committed.disconnect(dispatch_uid="bench.commits")
    completed = OrderSummary.objects.filter(status="completed").count()
    if completed != orders:
        raise RuntimeError(f"{completed} of {orders} sagas completed")
    events = event_store.count() - events_before

    with Stopwatch() as rebuild_clock:
        call_command("rebuild_projections", verbosity=0, stdout=io.StringIO())
    return {
        "orders_per_s": orders / clock.seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "events_per_order": events / orders,
        "commits_per_order": commits / orders,
        "replay_events_per_s": event_store.count() / rebuild_clock.seconds,
    }


def _baseline(context: Context, project: Figures) -> Figures:
    """The same writes per order as the project's run made, with the bare driver."""
    log = context.raw_log()
    orders = context.size(ORDERS)
    events = round(project["events_per_order"] * orders)
    commits = max(1, round(project["commits_per_order"]))
    latencies = []
    written = 0
    with Stopwatch() as clock:
        for n in range(orders):
            started = time.perf_counter()
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
            latencies.append(time.perf_counter() - started)
    log.close()
    return {
        "orders_per_s": orders / clock.seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "events_per_order": written / orders,
        "commits_per_order": float(commits),
    }


IN_PROCESS = Workload(
    name="in-process",
    title=f"Orders end to end in process ({ORDERS:,} completed sagas)",
    figures=(
        Figure("orders_per_s", "throughput", "orders/s", target_value=300),
        Figure("p50_ms", "latency p50", "ms", higher_is_better=False),
        Figure("p99_ms", "latency p99", "ms", higher_is_better=False),
        Figure("events_per_order", "events per order", "events", higher_is_better=False),
        Figure("commits_per_order", "commits per order", "commits", higher_is_better=False),
        Figure(
            "replay_events_per_s",
            "rebuild_projections over the orders' events",
            "events/s",
            baseline=False,
        ),
    ),
    project=_project,
    baseline=_baseline,
)
