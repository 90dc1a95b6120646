"""Scenario: celery mode (EVENTSTORE_DISPATCH=celery) for real, in processes. gunicorn serves the
API, three Celery workers catch the partitioned subscribers up (EVENTSTORE_PARTITIONS=8) and
make the calls to the outside world, and Celery beat sweeps every second. Sixteen client
threads place 200 orders over HTTP, each with an Idempotency-Key and one of three payment
tokens (seven in ten are paid, the rest declined); the API may answer 201 or 202. The test
then waits until every order is completed or cancelled, every partition is caught up and no
call is pending, and checks the end state:

- every order ended completed or cancelled, and its saga started exactly once (SagaStarted);
- the payment gateway (tests/gateways.py, whose calls every process appends to one file) was
  called once per payment the saga asked for, and one PaymentProcessed was recorded per
  completed order; no order was charged without completing unless it was refunded;
- one email per order and outcome (confirmed and complete, or cancelled);
- stock adds up: nothing reserved, sold = what the completed orders bought;
- `manage.py verify_projections` passes; no checkpoint holds an error; no call is parked;
- each subscriber handled each order's events in log order (see `out_of_order_reactions`).

The tests differ in what happens meanwhile: nothing; one worker killed with SIGKILL three
times, each time restarted; and, in test_broker_outage.py, every process's broker connection
cut for a few seconds (through tests/proxy.py), during which orders placed must still be
accepted quickly. After a crash the
gateway may be called twice for one payment and an email sent twice, under the same
idempotency key (Message-ID) with the same answer, which that test allows.

Runs once in CI, in its PostgreSQL pass: marked `postgres`, the SQLite pass skips it as it
skips every PostgreSQL test. The processes do not use the suite's test database: each test
gets a database of its own on the suite's PostgreSQL server (a copy of one template, migrated
and seeded by `seed_demo` once for the session in conftest.py; every one dropped afterwards)
and a RabbitMQ vhost of its own (created with rabbitmqctl, deleted afterwards) on
CELERY_BROKER_URL's server (default 127.0.0.1:5672). The tests skip only when PostgreSQL or
RabbitMQ does not answer, or rabbitmqctl is missing, and say which. Every process started
here is stopped, pass or fail; a failure shows the tail of every process's log (all kept in
the test's tmp_path). A passing test prints its figures (timings, outcomes), shown with
`pytest -s` or `-rP`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from tests.acceptance.celery_mode.checks import assert_end_state, assert_every_worker_worked
from tests.acceptance.celery_mode.cluster import (
    FINAL,
    ORDERS,
    START_TIMEOUT,
    WORKERS,
    assert_accepted,
    place,
    place_orders,
    report,
    wait_until_settled,
)


@pytest.mark.processes
@pytest.mark.postgres
def test_three_workers_finish_every_order_with_each_effect_once_and_in_log_order(cluster):
    """Three workers share eight partitions per subscriber (every one of them holds orders):
    each order ends once, with every effect once (see `assert_end_state`), each worker did
    part of the work, and each subscriber handled each order's events in log order, a check
    that fails if a partition handles an order's events out of order (handling each batch in
    reverse, for one, makes it report every completed order). Sending a placement again with
    its Idempotency-Key names the same order and places none."""
    cluster.start()
    cluster.add_products()

    began = time.monotonic()
    placed = place_orders(cluster, range(ORDERS))
    placing = time.monotonic() - began
    with cluster.explained():
        assert_accepted(placed)
    # A request sent again with its Idempotency-Key names the same order and places none.
    again = [place(cluster, replace(p, status=None, order_id="", error="")) for p in placed[:5]]
    assert [(a.status in (200, 201, 202), a.order_id) for a in again] == [
        (True, p.order_id) for p in placed[:5]
    ]

    settling = wait_until_settled(cluster, [p.order_id for p in placed])
    outcome = assert_end_state(cluster, placed, crashed=False)
    assert_every_worker_worked(cluster)
    report(
        "three workers",
        placing_s=round(placing, 1),
        settling_s=round(settling, 1),
        slowest_answer_s=round(max(p.seconds for p in placed), 2),
        **outcome.figures(),
    )


KILLS = 3
KILL_EVERY = 1.5  # seconds between a restarted worker being ready and the next kill


@pytest.mark.processes
@pytest.mark.postgres
def test_a_worker_killed_mid_run_and_restarted_loses_nothing_and_charges_once(cluster):
    """While the orders are placed and handled, the workers are killed in turn with SIGKILL
    (the worker and its pool process at once, as a crash of its machine) every KILL_EVERY
    seconds, and each is started again under its name. A wake-up it held goes back to the
    queue (acks late), a call it had claimed is taken over once its lease (5 s) runs out, with
    the same idempotency key. The end state holds as without the crashes; a call may have been
    made twice, and then got the same answer."""
    cluster.start()
    cluster.add_products()
    kills: list[tuple[str, int]] = []
    failures: list[BaseException] = []

    def kill_and_restart() -> None:
        try:
            for round_ in range(KILLS):
                time.sleep(KILL_EVERY)
                victim = cluster.workers[round_ % WORKERS]
                [row] = cluster.query(
                    "SELECT count(*) AS n FROM orders_ordersummary WHERE status <> ALL(%s)",
                    [list(FINAL)],
                )
                victim.kill()
                kills.append((victim.name, row["n"]))
                cluster.restart(victim)
        except BaseException as error:  # reported by the test's thread
            failures.append(error)

    killer = threading.Thread(target=kill_and_restart, name="killer")
    killer.start()
    try:
        placed = place_orders(cluster, range(ORDERS))
    finally:
        killer.join(timeout=KILLS * (KILL_EVERY + START_TIMEOUT))
    assert not failures, failures
    assert len(kills) == KILLS, kills
    # Each kill hit a worker while orders were still in flight.
    assert all(in_flight > 0 for _, in_flight in kills), kills
    with cluster.explained():
        assert_accepted(placed)

    settling = wait_until_settled(cluster, [p.order_id for p in placed])
    outcome = assert_end_state(cluster, placed, crashed=True)
    report("a worker killed", kills=kills, settling_s=round(settling, 1), **outcome.figures())
