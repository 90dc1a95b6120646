"""Workload 9: past saturation, does overload cost waiting and refusals at the door, or charges
refunded and 5xx? (PostgreSQL, celery mode.)

The scale workload's celery topology with 4 Celery workers (2 gunicorn workers, 16
partitions, gateway `LATENCY_MS`), with SAGA_STEP_TIMEOUT at `STEP_TIMEOUT` seconds, at two
points on a fresh database each:

- saturated: the scale workload's clients (16, each with 2 orders open at most), which keep
  the workers busy without a queue growing;
- past saturation: `PAST_CLIENTS` clients with `PAST_OPEN` orders open each, far more than
  the workers finish: the queues grow until the shop refuses new orders
  (ADMISSION_MAX_BACKLOG_SECONDS) or, without that, until sagas give up on requests that
  waited in the queues.

A client told to come back later (429 or 503 with Retry-After) waits as told. Measured as the
scale workload measures (`scale._measure`), plus: payments refunded and orders cancelled for
payment_timeout (no order fails otherwise: no declines, stock enough), and answers 429. The
headline: past saturation, no charge refunded and no 5xx, and completed orders/s no lower than
saturated.
"""

from __future__ import annotations

from tests.bench.core import Context, Figure, Figures, Workload
from tests.bench.workloads.http import OVERSOLD
from tests.bench.workloads.scale import DRAIN_TIMEOUT, LATENCY_MS, PARTITIONS, Point, _measure

STEP_TIMEOUT = 5
PAST_CLIENTS = 48
PAST_OPEN = 8
SATURATED = Point(
    "saturated", "celery", gunicorn=2, clients=16, celery=4, name="saturated (16 clients x 2 open)"
)
PAST = Point(
    "past",
    "celery",
    gunicorn=2,
    clients=PAST_CLIENTS,
    celery=4,
    name=f"past saturation ({PAST_CLIENTS} x {PAST_OPEN} open)",
)
WARMUP = 15.0
WINDOW = 45.0
OPEN = {SATURATED: 2, PAST: PAST_OPEN}
FIGURES = (
    ("completed_per_s", "throughput (completed)", "orders/s", True),
    ("p50_ms", "time to final p50", "ms", False),
    ("p99_ms", "time to final p99", "ms", False),
    ("placed_per_s", "orders placed", "orders/s", True),
    ("refunded", "payments refunded", "payments", False),
    ("payment_timeouts", "orders cancelled for payment_timeout", "orders", False),
    ("answers_429", "answers 429 (turned away at the door)", "answers", False),
    ("errors_5xx", "5xx answers", "answers", False),
    ("unsettled", f"orders not final {DRAIN_TIMEOUT:g} s after the end", "orders", False),
)


def _project(context: Context) -> Figures:
    from django.db import connection, connections

    if context.backend != "postgres" or not context.admin_url:
        raise RuntimeError("the overload workload runs on PostgreSQL only (--postgres)")
    template = connection.settings_dict["NAME"]
    connections.close_all()
    seconds = (max(2.0, WARMUP * context.scale), max(3.0, WINDOW * context.scale))
    figures: Figures = {}
    oversold = 0
    for point in (SATURATED, PAST):
        measured, tally, _, failing = _measure(
            context,
            point,
            template,
            seconds,
            open_per_client=OPEN[point],
            settings={"SAGA_STEP_TIMEOUT": str(STEP_TIMEOUT)},
        )
        oversold += failing
        measured.update(answers_429=tally.statuses.get(429, 0), errors_5xx=tally.answers(5))
        figures.update({f"{point.key}_{name}": measured[name] for name, *_ in FIGURES})
    saturated = figures[f"{SATURATED.key}_completed_per_s"]
    figures["past_over_saturated"] = (
        figures[f"{PAST.key}_completed_per_s"] / saturated if saturated else 0.0
    )
    figures["oversold"] = oversold
    return figures


OVERLOAD = Workload(
    name="overload",
    title=(
        f"Overload: 4 Celery workers saturated and past saturation, SAGA_STEP_TIMEOUT "
        f"{STEP_TIMEOUT} s, gateway {LATENCY_MS} ms, {PARTITIONS} partitions, "
        f"{WARMUP:g} s warm-up + {WINDOW:g} s per point"
    ),
    figures=(
        Figure(
            "past_over_saturated",
            "throughput (completed), past saturation over saturated",
            "x",
            target_value=1.0,
            baseline=False,
        ),
        *(
            Figure(
                f"{point.key}_{name}",
                f"{point.label}: {label}",
                unit,
                higher_is_better=higher,
                baseline=False,
                **({"target_value": 0} if name in ("refunded", "errors_5xx") else {}),
            )
            for point in (SATURATED, PAST)
            for name, label, unit, higher in FIGURES
        ),
        OVERSOLD,
    ),
    project=_project,
    baseline=None,
    backends=("postgres",),
    section="overload",
)
