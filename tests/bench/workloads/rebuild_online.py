"""Workload: every projection rebuilt beside the live read models over a log of 1,000,000
events, while customers keep placing orders over HTTP.

The log is seeded fast: a product is created and one order of it placed through the project,
and their events (24: the product, the order, its saga, reservation, payment, notifications
and the stock moves) are copied in bulk (COPY on PostgreSQL, executemany on SQLite) under fresh
ids, a product of its own per copy, until the log holds `SIZE` events; the subscribers'
checkpoints are moved past the copies, so nothing reacts to them. The customers order
`PRODUCTS` other products. Then, with `manage.py rebuild_projections` in a process of its own:
an in-place rebuild (`--in-place`, which builds the read models for the copies) and an online
rebuild flat out (`--pace 0`), both at rest, for their events/s. Then gunicorn (`WORKERS`
workers) serves `CLIENTS` customers placing orders (`tests/bench/shoppers.py`) for
`BEFORE_SECONDS`, and keeps serving them while an online rebuild of every projection runs at
the command's default pace. Reported: orders placed during the rebuild, 5xx answers (target 0),
the orders' answer p99 during the rebuild against before it (target within 2x), the longest
time the rebuild held appends for one of its switches (an upper bound on any append's wait on
it; target under 100 ms), its events/s against the in-place rebuild's, and, once the clients
stopped, the rows an online check finds drifted (target 0).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta

from tests.bench.catalogue import create_products
from tests.bench.core import Context, Figure, Figures, Workload, percentile
from tests.bench.serving import PROJECT_DIR, environment_for, served
from tests.bench.shoppers import create_customers, place_orders
from tests.bench.workloads.http import ERRORS_5XX

SIZE = 1_000_000
PRODUCTS = 20
STOCK = 1_000_000  # never runs out in a run
TEMPLATE_PRODUCT = "template"
COPIED_PRODUCT = "copied"
WORKERS = 2
CLIENTS = 4
BEFORE_SECONDS = 15.0
SEED = 27
CHUNK = 20_000  # events per insert transaction while seeding
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TRANSACTION = re.compile(r"txn_[0-9a-f]{24}")
_REBUILT = re.compile(
    r"from (?P<events>\d+) events in (?P<seconds>[\d.]+) s \((?P<rate>[\d,]+) events/s\)"
    r"(; appends held (?P<held>[\d.]+) ms for the )?"
)
_COLUMNS = (
    "event_id",
    "aggregate_type",
    "aggregate_id",
    "version",
    "event_type",
    "schema_version",
    "payload",
    "metadata",
    "correlation_id",
    "partition_hash",
    "recorded_at",
    "transaction_id",
)


def _template() -> list:
    """Create a product and place one order of it through the project; their events, in log
    order."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q

    from eventstore.models import Event
    from orders.services import order_place

    (product_id,) = create_products(TEMPLATE_PRODUCT, 1, STOCK)
    user = get_user_model().objects.create_user(username="bench-template", email="t@example.com")
    order_place(customer_id=str(user.pk), items=[{"product_id": product_id, "quantity": 1}])
    order_id = Event.objects.filter(aggregate_type="order").order_by("-position")[0].aggregate_id
    return list(
        Event.objects.filter(
            Q(correlation_id=order_id) | Q(aggregate_type="product", aggregate_id=product_id)
        ).order_by("position")
    )


def _copies(template, count: int, transaction_id: int):
    """Rows of `count` events: copies of the template's product and order under fresh ids (a
    product of its own each, so no stream grows long). Yields tuples in `_COLUMNS` order."""
    from django.core.serializers.json import DjangoJSONEncoder

    from eventstore.records import partition_hash

    texts = [
        (
            event,
            json.dumps(event.payload, cls=DjangoJSONEncoder),
            json.dumps(event.metadata, cls=DjangoJSONEncoder),
        )
        for event in template
    ]
    template_product = next(e.aggregate_id for e in template if e.aggregate_type == "product")
    started = datetime.now(UTC) - timedelta(days=30)
    made = copy = 0
    while made < count:
        ids: dict[str, str] = {}

        def fresh(match: re.Match, ids=ids) -> str:
            return ids.setdefault(match.group(0), str(uuid.uuid4()))

        product = f"{COPIED_PRODUCT}-{copy}"
        when = started + timedelta(seconds=copy)
        for event, payload, metadata in texts:
            if made == count:
                return
            payload = _UUID.sub(fresh, payload).replace(f'"{template_product}"', f'"{product}"')
            payload = _TRANSACTION.sub(lambda _: f"txn_{uuid.uuid4().hex[:24]}", payload)
            metadata = json.loads(_UUID.sub(fresh, metadata))
            if event.aggregate_type == "product":
                aggregate_id = product
            else:
                aggregate_id = _UUID.sub(fresh, event.aggregate_id)
            yield (
                uuid.UUID(_UUID.sub(fresh, str(event.event_id))),
                event.aggregate_type,
                aggregate_id,
                event.version,
                event.event_type,
                event.schema_version,
                payload,
                json.dumps(metadata),
                metadata.get("correlation_id", ""),
                partition_hash(metadata, aggregate_id),
                when + (event.recorded_at - template[0].recorded_at),
                transaction_id,
            )
            made += 1
        copy += 1


def _seed(context: Context, template, count: int) -> None:
    """Insert the copies in bulk, then move every subscriber's checkpoint past them."""
    from django.conf import settings
    from django.db import connection
    from django.db.models import Max

    from eventstore.follower.subscriptions import get_subscribers
    from eventstore.models import Checkpoint, Event
    from eventstore.records import LogPoint

    transaction_id = Event.objects.aggregate(top=Max("transaction_id"))["top"] or 0
    rows = _copies(template, count, transaction_id)
    table = Event._meta.db_table
    connection.ensure_connection()
    raw = connection.connection
    if connection.vendor == "postgresql":
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(f"ANALYZE {table}")
    else:
        marks = ", ".join("?" * len(_COLUMNS))
        sql = f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES ({marks})"
        batch: list[tuple] = []
        for row in rows:
            batch.append((row[0].hex, *row[1:10], str(row[10].replace(tzinfo=None)), row[11]))
            if len(batch) == CHUNK:
                _insert(raw, sql, batch)
                batch = []
        _insert(raw, sql, batch)
    head = LogPoint(transaction_id, Event.objects.aggregate(top=Max("position"))["top"])
    partitions = int(settings.EVENTSTORE_PARTITIONS)
    for subscriber in get_subscribers():
        for partition in range(partitions):
            name = Checkpoint.name_for(subscriber.name, partition, partitions)
            checkpoint, _ = Checkpoint.objects.get_or_create(
                name=name,
                defaults={
                    "subscriber": subscriber.name,
                    "partition": partition,
                    "partitions": partitions,
                },
            )
            point = max(LogPoint(checkpoint.transaction_id, checkpoint.position), head)
            Checkpoint.objects.filter(name=name).update(
                transaction_id=point.transaction_id, position=point.position
            )
    context.progress(f"log seeded: {Event.objects.count():,} events")


def _insert(raw, sql: str, batch: list[tuple]) -> None:
    """One transaction of inserts on SQLite's own connection (in autocommit mode otherwise)."""
    raw.execute("BEGIN IMMEDIATE")
    raw.executemany(sql, batch)
    raw.execute("COMMIT")


def _rebuild(context: Context, *options: str) -> dict[str, float]:
    """`manage.py rebuild_projections OPTIONS` in a process of its own: its figures."""
    process = subprocess.run(
        [sys.executable, "manage.py", "rebuild_projections", "--verbosity", "1", *options],
        cwd=PROJECT_DIR,
        env=environment_for(context),
        capture_output=True,
        text=True,
        check=False,
    )
    match = _REBUILT.search(process.stdout)
    if process.returncode != 0 or not match:
        raise RuntimeError(f"rebuild_projections failed:\n{process.stdout}\n{process.stderr}")
    return {
        "events": float(match["events"]),
        "seconds": float(match["seconds"]),
        "rate": float(match["rate"].replace(",", "")),
        "held_ms": float(match["held"] or 0),
    }


def _project(context: Context) -> Figures:
    from django.db import connections

    from eventstore.projections import get_projections
    from eventstore.replay import verify_online

    template = _template()
    product_ids = create_products("rebuild", PRODUCTS, STOCK)
    size = context.size(SIZE, minimum=2_000)
    context.progress(f"seeding {size:,} events: copies of a product's and an order's")
    _seed(context, template, size - len(template) - 2 * PRODUCTS)
    tokens = create_customers(CLIENTS)
    connections.close_all()

    context.progress("in-place rebuild at rest")
    in_place = _rebuild(context, "--in-place")
    context.progress(f"in place: {in_place['rate']:,.0f} events/s; online rebuild at rest")
    at_rest = _rebuild(context, "--pace", "0")

    with served(context, workers=WORKERS) as port:
        before_seconds = max(3.0, BEFORE_SECONDS * context.scale)
        context.progress(f"{CLIENTS} clients placing orders for {before_seconds:g} s")
        before = place_orders(port, tokens, product_ids, before_seconds, SEED)
        stop = threading.Event()
        during = None

        def clients() -> None:
            nonlocal during
            during = place_orders(port, tokens, product_ids, 3600.0, SEED + 100, stop=stop)

        thread = threading.Thread(target=clients)
        thread.start()
        context.progress("online rebuild of every projection, paced, while the clients go on")
        try:
            online = _rebuild(context)
        finally:
            stop.set()
            thread.join()

    context.progress("checking the read models against the log")
    differences, _ = verify_online(get_projections())
    for difference in differences[:5]:
        context.notes.append(difference.describe())
    p99_before = percentile(before.latencies, 0.99) * 1000
    p99_during = percentile(during.latencies, 0.99) * 1000
    return {
        "log_events": online["events"],
        "orders_during": during.created,
        "errors_5xx": before.answers(5) + during.answers(5),
        "p99_before_ms": p99_before,
        "p99_during_ms": p99_during,
        "p99_ratio": p99_during / p99_before if p99_before else 0.0,
        "max_during_ms": max(during.latencies, default=0.0) * 1000,
        "held_ms": online["held_ms"],
        "online_events_per_s": online["rate"],
        "online_at_rest_events_per_s": at_rest["rate"],
        "in_place_events_per_s": in_place["rate"],
        "online_over_in_place": online["rate"] / in_place["rate"],
        "drifted_rows": float(len(differences)),
    }


def _render(results, runs: int, scale: float) -> str:
    """One table, a column per database that ran."""
    from tests.bench import report

    titles = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    server = next((server for backend, server, _ in results if backend == "postgres"), "")
    lines = [
        f"### Latest run: {REBUILD_ONLINE.title}",
        "",
        *report.environment("postgres" if server else "sqlite", runs, scale, server),
        "",
        "| Figure | " + " | ".join(titles[b] for b, _, _ in results) + " | Target |",
        "|---" * (len(results) + 2) + "|",
    ]
    for figure in REBUILD_ONLINE.figures:
        cells = []
        for _, _, result in results:
            value = result.project(figure.key)
            cell = report.number(value)
            if figure.meets(value, None) is False:
                cell += " (**missed**)"
            cells.append(cell)
        label = f"{figure.label} ({figure.unit})"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {figure.target_text()} |")
    notes = [
        f"- {titles[backend]}: {note}"
        for backend, _, result in results
        for note in [*result.notes, *(f"failed: {e}" for e in result.errors)]
    ]
    if notes:
        lines += ["", "Notes from the runs:", "", *dict.fromkeys(notes)]
    return "\n".join(lines) + "\n"


def _figure(key: str, label: str, unit: str, **options) -> Figure:
    return Figure(key, label, unit, baseline=False, **options)


REBUILD_ONLINE = Workload(
    name="rebuild-online",
    title=(
        f"Online rebuild of every projection over {SIZE:,} events while {CLIENTS} clients "
        f"place orders (gunicorn, {WORKERS} workers)"
    ),
    figures=(
        _figure("log_events", "events replayed by the online rebuild", "events"),
        _figure("orders_during", "orders placed during the rebuild", "orders"),
        ERRORS_5XX,
        _figure("p99_before_ms", "order answer p99 before", "ms", higher_is_better=False),
        _figure("p99_during_ms", "order answer p99 during", "ms", higher_is_better=False),
        _figure("p99_ratio", "p99 during / before", "x", higher_is_better=False, target_value=2.0),
        _figure("max_during_ms", "slowest order answer during", "ms", higher_is_better=False),
        _figure(
            "held_ms", "appends held at a switch", "ms", higher_is_better=False, target_value=100
        ),
        _figure("online_events_per_s", "online rebuild under load, paced", "events/s"),
        _figure("online_at_rest_events_per_s", "online rebuild at rest, flat out", "events/s"),
        _figure("in_place_events_per_s", "in-place rebuild at rest", "events/s"),
        _figure("online_over_in_place", "online under load / in place", "x"),
        _figure(
            "drifted_rows",
            "rows drifted afterwards",
            "rows",
            higher_is_better=False,
            target_value=0,
        ),
    ),
    project=_project,
    baseline=None,
    section="rebuild-online",
    render=_render,
)
