"""Workload 8: completed orders per second inline, and with 1, 2 and 4 Celery workers (PostgreSQL).

Does throughput grow with Celery workers once reactions leave the request? Four points, each on
a fresh database (a copy of the run's freshly migrated one) with the same 5 hot products
(`STOCK` units each, so no order is cancelled for stock) and the simulated gateway answering
each charge in `LATENCY_MS`:

- inline (EVENTSTORE_DISPATCH=inline): gunicorn with 1 worker, 1 client; every reaction runs in
  the request, so the POST's answer shows the order final;
- celery (EVENTSTORE_DISPATCH=celery, EVENTSTORE_PARTITIONS=16): gunicorn with 2 workers, 16
  clients, and 1, 2 or 4 Celery worker processes, each started as a worker of its own
  (`celery -A config worker -c 1 -n wN@%h`), with `celery -A config beat` sweeping every
  `SWEEP_INTERVAL` seconds; the broker is a RabbitMQ virtual host of the point's own.

N workers of one pool process each rather than one worker with `-c N`: each process then takes
one task at a time from the broker (prefetch 1), as N machines would, instead of one parent
reserving tasks for its children; either way N processes run tasks.

The clients (`tests/bench/shoppers.py`) place orders as fast as the POSTs are answered (201
inline when the saga finished; 201 or 202 with the order pending in celery mode) for `WARMUP`
plus `WINDOW` seconds, without polling the server: the log tells when an order is final. So
that the backlog cannot grow without bound, a client places its next order only while fewer
than `OPEN_PER_CLIENT` of its orders are still open (32 at most in celery mode).

Measured from the log over the window (the last `WINDOW` seconds): completed orders/s, the
orders whose OrderCompleted was recorded in the window over its length; the time to final,
p50 and p99, of the orders that became final in the window: from their OrderCreated's
recorded_at to their OrderCompleted's (or OrderCancelled's); the orders placed per second;
the backlog, orders created and not final at the end of the window; and how many of the
machine's cores were busy. Where the CPU went (by kind of process) goes to the notes. After
the window the clients stop, the workers finish the backlog (up to `DRAIN_TIMEOUT`),
everything is stopped, every subscriber caught up, and the stock checked as in the `http`
workload.

The headline is 4 Celery workers' completed orders/s over inline's; the target is 5x.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.bench import cpu
from tests.bench.background import celery_workers, vhost
from tests.bench.catalogue import check_stock, create_products
from tests.bench.core import Context, Figure, Figures, Workload, percentile
from tests.bench.serving import served
from tests.bench.setup import postgres_database
from tests.bench.shoppers import Backlog, create_customers, place_orders
from tests.bench.workloads.http import (
    CANCELLED,
    CONNECTION_ERRORS,
    ERRORS_5XX,
    OVERSOLD,
    PRODUCTS,
    STOCK,
)

LATENCY_MS = 50
PARTITIONS = 16
# Shorter than the 5 s default, so that a lost wake-up costs little; not much shorter: each
# sweep wakes every partition with a backlog, which under load is nearly every one of the 80.
SWEEP_INTERVAL = 2.0
WARMUP = 15.0
WINDOW = 30.0
# Orders a client may have open: 32 in celery mode, twice the partitions, so every partition
# has work; 4 (64 open) made the time to final pass SAGA_STEP_TIMEOUT (30 s) with one worker on
# the shared machine, and sagas cancelled orders that were only waiting in the queue.
OPEN_PER_CLIENT = 2
DRAIN_TIMEOUT = 120.0
WATCH_INTERVAL = 0.05  # how often the log is read for orders that became final
SEED = 8
TARGET_RATIO = 5.0
FINAL_EVENTS = ("OrderCompleted", "OrderCancelled")


@dataclass(frozen=True)
class Point:
    key: str
    dispatch: str  # EVENTSTORE_DISPATCH
    gunicorn: int  # gunicorn workers
    clients: int
    celery: int = 0  # Celery worker processes
    name: str = ""  # how the point is named, when not by its topology

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.dispatch == "inline":
            return "inline"  # the workload's title gives its topology
        return f"celery, {self.celery} worker{'s' * (self.celery > 1)}"


INLINE = Point("inline", "inline", gunicorn=1, clients=1)
CELERY = tuple(Point(f"celery{n}", "celery", gunicorn=2, clients=16, celery=n) for n in (1, 2, 4))
POINTS = (INLINE, *CELERY)


def _key(point: Point, figure: str) -> str:
    return f"{point.key}_{figure}"


@contextmanager
def _pointed_at(url: str, partitions: int) -> Iterator[None]:
    """This process's database connections go to `url` (a database on the same server as the
    run's) and EVENTSTORE_PARTITIONS is `partitions`, for the block: to seed a point's database
    and read its log with the settings its servers run with."""
    import dj_database_url
    from django.db import connections
    from django.test.utils import override_settings

    connections.close_all()
    database = connections.settings["default"]
    run_database = database["NAME"]
    database["NAME"] = dj_database_url.parse(url)["NAME"]
    try:
        with override_settings(EVENTSTORE_PARTITIONS=partitions):
            yield
    finally:
        connections.close_all()
        database["NAME"] = run_database


class _FinalWatch(threading.Thread):
    """Reads the log every WATCH_INTERVAL for orders that became final, and tells the backlog.

    On PostgreSQL positions are taken before commit, so an event can commit after one with a
    higher position was read: each check goes back LOOKBACK positions behind the highest seen,
    and tells each order once."""

    LOOKBACK = 5000

    def __init__(self, backlog: Backlog) -> None:
        super().__init__(daemon=True)
        self.backlog = backlog
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connection

        from eventstore.models import Event

        highest, told = 0, set()
        try:
            while not self.stopping.wait(WATCH_INTERVAL):
                rows = list(
                    Event.objects.filter(
                        event_type__in=FINAL_EVENTS, position__gt=highest - self.LOOKBACK
                    ).values_list("position", "aggregate_id")
                )
                new = [order_id for _, order_id in rows if order_id not in told]
                if new:
                    told.update(new)
                    self.backlog.finished(new)
                highest = max([highest, *(position for position, _ in rows)])
        finally:
            connection.close()


@contextmanager
def _watching(backlog: Backlog) -> Iterator[None]:
    watch = _FinalWatch(backlog)
    watch.start()
    try:
        yield
    finally:
        watch.stopping.set()
        watch.join()


class _CpuWindow(threading.Thread):
    """Samples the CPU at the window's start and end (time.monotonic), then keeps the usage."""

    def __init__(self, start: float, end: float) -> None:
        super().__init__(daemon=True)
        self.start_at, self.end_at = start, end
        self.usage: dict[str, float] = {}

    def run(self) -> None:
        time.sleep(max(0.0, self.start_at - time.monotonic()))
        before = cpu.sample()
        time.sleep(max(0.0, self.end_at - time.monotonic()))
        self.usage = cpu.usage(before, cpu.sample())


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _from_log(start: datetime, end: datetime) -> dict[str, float]:
    """The window's figures, from the orders' events in the log."""
    from eventstore.models import Event

    created = dict(
        Event.objects.filter(event_type="OrderCreated").values_list("aggregate_id", "recorded_at")
    )
    finals = list(
        Event.objects.filter(event_type__in=FINAL_EVENTS).values_list(
            "aggregate_id", "event_type", "recorded_at"
        )
    )
    seconds = (end - start).total_seconds()
    in_window = [(order_id, kind, at) for order_id, kind, at in finals if start <= at < end]
    to_final = [(at - created[order_id]).total_seconds() for order_id, _, at in in_window]
    completed = sum(1 for _, kind, _ in in_window if kind == "OrderCompleted")

    def backlog(at: datetime) -> int:
        placed = sum(1 for recorded in created.values() if recorded < at)
        return placed - sum(1 for _, _, recorded in finals if recorded < at)

    return {
        "completed_per_s": completed / seconds,
        "p50_ms": percentile(to_final, 0.50) * 1000,
        "p99_ms": percentile(to_final, 0.99) * 1000,
        "placed_per_s": sum(1 for at in created.values() if start <= at < end) / seconds,
        "backlog_start": backlog(start),
        "backlog": backlog(end),
    }


def _environment(point: Point, database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "PAYMENTS_GATEWAY_LATENCY_MS": str(LATENCY_MS),
        "EVENTSTORE_DISPATCH": point.dispatch,
        "EVENTSTORE_PARTITIONS": str(PARTITIONS if point.dispatch == "celery" else 1),
        "EVENTSTORE_SWEEP_INTERVAL": str(SWEEP_INTERVAL),
    }


def _measure(
    context: Context,
    point: Point,
    template: str,
    seconds: tuple[float, float],
    *,
    open_per_client: int = OPEN_PER_CLIENT,
    settings: dict[str, str] | None = None,
):
    """One point on a fresh copy of `template` (the servers' environment plus `settings`, each
    client with `open_per_client` orders open at most): (its figures, the customers' tally,
    its orders by status, products failing the stock check). The figures include how many
    payments were refunded and orders cancelled for payment_timeout."""
    from eventstore.follower.subscriptions import catch_up_all

    warmup, window = seconds
    partitions = PARTITIONS if point.dispatch == "celery" else 1
    with (
        postgres_database(context.admin_url, point.key, template=template) as url,
        _pointed_at(url, partitions),
    ):
        from django.db import connections

        product_ids = create_products("hot", PRODUCTS, STOCK)
        tokens = create_customers(point.clients)
        connections.close_all()  # the database is the servers' while they run
        environment = {**_environment(point, url), **(settings or {})}
        backlog = Backlog(open_per_client)
        with ExitStack() as running:
            if point.celery:
                broker_url = running.enter_context(vhost(point.key))
                environment["CELERY_BROKER_URL"] = broker_url
                running.enter_context(
                    celery_workers(
                        context,
                        point.celery,
                        broker_url=broker_url,
                        label=point.key,
                        environment=environment,
                    )
                )
            port = running.enter_context(
                served(context, workers=point.gunicorn, environment=environment)
            )
            context.progress(
                f"{point.label}: gunicorn ({point.gunicorn}) on port {port}, {point.clients} "
                f"client(s); placing orders for {warmup:g} + {window:g} s"
            )
            running.enter_context(_watching(backlog))
            started, clock = time.time(), time.monotonic()
            sampler = _CpuWindow(clock + warmup, clock + warmup + window)
            sampler.start()
            tally = place_orders(port, tokens, product_ids, warmup + window, SEED, backlog)
            sampler.join()
            drained = backlog.wait_empty(DRAIN_TIMEOUT)
            unsettled = backlog.open_orders()
            context.progress(
                f"{point.label}: {tally.created} orders placed; "
                + ("all final" if drained else f"{unsettled} not final after {DRAIN_TIMEOUT:g} s")
            )
        figures = _from_log(_at(started + warmup), _at(started + warmup + window))
        catch_up_all()
        figures.update(_refunds())
        oversold, by_status = check_stock(product_ids, STOCK, context.notes)
        _note_point(context, point, tally, by_status, figures, sampler.usage)
        figures.update(cores=sampler.usage.get("machine", 0.0) / 100, unsettled=unsettled)
        return figures, tally, by_status, oversold


def _refunds() -> dict[str, int]:
    """How many payments were refunded, and orders cancelled for payment_timeout, in all."""
    from eventstore.models import Event
    from orders.models import OrderSummary

    return {
        "refunded": Event.objects.filter(event_type="PaymentRefunded").count(),
        "payment_timeouts": OrderSummary.objects.filter(cancel_reason="payment_timeout").count(),
    }


def _note_point(context, point, tally, by_status, figures, usage) -> None:
    from orders.models import OrderSummary, SagaSummary

    label = point.label
    if sum(by_status.values()) != tally.created:
        context.notes.append(
            f"{label}: {sum(by_status.values())} orders exist, {tally.created} were answered 2xx"
        )
    waiting = SagaSummary.objects.exclude(state__in=("completed", "compensated")).values_list(
        "state", "waiting_for"
    )
    if waiting:
        where: dict[str, int] = {}
        for state, step in waiting:
            where[f"{state} {step}".strip()] = where.get(f"{state} {step}".strip(), 0) + 1
        context.notes.append(
            f"{label}: sagas not finished after the drain: "
            + ", ".join(f"{n} {w}" for w, n in sorted(where.items()))
        )
    reasons = OrderSummary.objects.filter(status="cancelled").values_list("cancel_reason")
    counts: dict[str, int] = {}
    for (reason,) in reasons:
        counts[reason or "unknown"] = counts.get(reason or "unknown", 0) + 1
    if counts:
        context.notes.append(
            f"{label}: cancelled: " + ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
        )
    context.notes.extend(f"{label}: {error}" for error in tally.first_errors)
    if usage:
        split = ", ".join(
            f"{group} {usage[group] / 100:.2f}" for group in cpu.GROUPS if usage[group] >= 0.5
        )
        context.notes.append(
            f"{label}: cores busy {usage['machine'] / 100:.2f} ({split}); backlog "
            f"{figures['backlog_start']:.0f} -> {figures['backlog']:.0f} orders over the window; "
            f"{tally.created} placed"
        )


def _log_errors(directory: Path) -> list[str]:
    """Lines of the servers' and workers' logs that report an error or a traceback."""
    lines = []
    for path in sorted(directory.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if "ERROR" in line or "CRITICAL" in line or line.startswith("Traceback"):
                lines.append(f"{path.name}: {line.strip()[:300]}")
    return lines


def _server_settings() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        values = []
        for name in ("synchronous_commit", "fsync", "wal_sync_method", "commit_delay"):
            cursor.execute(f"SHOW {name}")
            values.append(f"{name}={cursor.fetchone()[0]}")
    return ", ".join(values)


def _project(context: Context) -> Figures:
    from django.db import connection, connections

    if context.backend != "postgres" or not context.admin_url:
        raise RuntimeError("the scale workload runs on PostgreSQL only (--postgres)")
    context.notes.append(f"PostgreSQL as the server has it: {_server_settings()}")
    template = connection.settings_dict["NAME"]  # migrated, empty: each point gets a copy
    connections.close_all()
    seconds = (max(2.0, WARMUP * context.scale), max(3.0, WINDOW * context.scale))

    figures: Figures = {}
    tallies, oversold = [], 0
    for point in POINTS:
        measured, tally, by_status, failing = _measure(context, point, template, seconds)
        tallies.append(tally)
        oversold += failing
        figures[_key(point, "cancelled")] = by_status.get("cancelled", 0)
        for name in FIGURES:
            figures[_key(point, name)] = measured[name]

    inline = figures[_key(INLINE, "completed_per_s")]
    most, fewest = (figures[_key(point, "completed_per_s")] for point in (CELERY[-1], CELERY[0]))
    figures["ratio"] = most / inline if inline else 0.0
    figures["growth"] = most / fewest if fewest else 0.0
    errors = _log_errors(context.workdir)
    context.notes.extend(errors[:10])
    figures.update(
        cancelled=sum(figures.pop(_key(point, "cancelled")) for point in POINTS),
        unsettled=sum(figures.pop(_key(point, "unsettled")) for point in POINTS),
        log_errors=len(errors),
        errors_5xx=sum(tally.answers(5) for tally in tallies),
        connection_errors=sum(tally.connection_errors for tally in tallies),
        oversold=oversold,
    )
    return figures


# Per point: the figures `_measure` returns that the table shows.
FIGURES = ("completed_per_s", "p50_ms", "p99_ms", "placed_per_s", "backlog", "cores", "unsettled")


def _point_figures(point: Point) -> tuple[Figure, ...]:
    def figure(name: str, label: str, unit: str, higher_is_better: bool = True) -> Figure:
        return Figure(
            _key(point, name),
            f"{point.label}: {label}",
            unit,
            higher_is_better=higher_is_better,
            baseline=False,
        )

    return (
        figure("completed_per_s", "throughput (completed)", "orders/s"),
        figure("p50_ms", "time to final p50", "ms", higher_is_better=False),
        figure("p99_ms", "time to final p99", "ms", higher_is_better=False),
        figure("placed_per_s", "orders placed", "orders/s"),
        figure("backlog", "backlog at the window's end", "orders", higher_is_better=False),
        figure("cores", "CPU busy, whole machine", "cores", higher_is_better=False),
    )


def _chart(medians: dict[str, float | None], path: Path) -> None:
    """Completed orders/s against Celery worker processes, inline's point as a reference line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    workers = [point.celery for point in CELERY]
    completed = [medians.get(_key(point, "completed_per_s")) or 0.0 for point in CELERY]
    inline = medians.get(_key(INLINE, "completed_per_s")) or 0.0
    figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=100)
    axes.plot(workers, completed, marker="o", label="celery: 2 gunicorn workers, 16 clients")
    for x, y in zip(workers, completed, strict=True):
        axes.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 8), ha="center")
    axes.axhline(
        inline,
        color="grey",
        linestyle="--",
        label=f"inline: 1 gunicorn worker, 1 client ({inline:.1f})",
    )
    axes.axhline(
        inline * TARGET_RATIO,
        color="tab:red",
        linestyle=":",
        label=f"target: {TARGET_RATIO:g}x inline ({inline * TARGET_RATIO:.1f})",
    )
    axes.set_xticks(workers)
    axes.set_xlabel("Celery worker processes (-c 1 each)")
    axes.set_ylabel("completed orders/s")
    axes.set_ylim(bottom=0, top=max([*completed, inline * TARGET_RATIO]) * 1.2)
    axes.set_title(
        f"Orders completed per second, PostgreSQL, gateway {LATENCY_MS} ms, "
        f"{PARTITIONS} partitions",
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


SCALE = Workload(
    name="scale",
    title=(
        f"Scale: inline (1 gunicorn worker, 1 client) vs Celery workers (2 gunicorn workers, "
        f"16 clients, {PARTITIONS} partitions), gateway {LATENCY_MS} ms, "
        f"{WARMUP:g} s warm-up + {WINDOW:g} s per point"
    ),
    figures=(
        Figure(
            "ratio",
            f"throughput (completed), {CELERY[-1].label} over {INLINE.label}",
            "x",
            target_value=TARGET_RATIO,
            baseline=False,
        ),
        Figure(
            "growth",
            f"throughput (completed), {CELERY[-1].label} over {CELERY[0].label}",
            "x",
            baseline=False,
        ),
        *(figure for point in POINTS for figure in _point_figures(point)),
        CANCELLED,
        Figure(
            "unsettled",
            f"orders not final {DRAIN_TIMEOUT:g} s after the clients stopped",
            "orders",
            higher_is_better=False,
            target_value=0,
            baseline=False,
        ),
        ERRORS_5XX,
        CONNECTION_ERRORS,
        Figure(
            "log_errors",
            "errors in the servers' and workers' logs",
            "lines",
            higher_is_better=False,
            target_value=0,
            baseline=False,
        ),
        OVERSOLD,
    ),
    project=_project,
    baseline=None,
    backends=("postgres",),
    section="scale",
    chart=_chart,
)
