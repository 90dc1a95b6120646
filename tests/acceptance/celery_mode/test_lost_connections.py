"""Scenario: the database ends every connection of the processes several times (as a restart or
a fail-over does) while two clients place orders, with connections kept for a minute
(CONN_MAX_AGE=60, as `make cluster` and deployments run), in inline and in celery dispatch.
No request answers 500: a kept connection is checked before reuse, and one lost under a request
answers 503 with Retry-After, which the client repeats with the same Idempotency-Key. Every
order ends completed or cancelled, and none was created twice. In-process cases, one lost
connection each: tests/acceptance/test_lost_connection.py."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.acceptance.celery_mode.cluster import (
    Cluster,
    Placed,
    order_for,
    place,
    report,
    wait_until_settled,
)

CLIENTS = 2
CUTS = 5  # times every connection of the processes is ended
CUT_EVERY = 1.5  # seconds between cuts
REPEATS = 10  # times a client repeats an order answered 503 before giving up
ACCEPTED = (201, 202)


def place_until_answered(cluster: Cluster, placed: Placed, answers: list[tuple[int, str]]) -> None:
    """Place the order, repeating it with the same Idempotency-Key after each 503 as its
    Retry-After says; every answer's (status, Retry-After) goes to `answers`."""
    for _ in range(REPEATS):
        place(cluster, placed)
        answers.append((placed.status or 0, placed.retry_after))
        if placed.status != 503 or not placed.retry_after:
            return
        time.sleep(float(placed.retry_after))


def client(cluster: Cluster, first: int, stop: threading.Event) -> list[tuple[Placed, list]]:
    """Place orders first, first + CLIENTS, ... until `stop` is set."""
    placed = []
    index = first
    while not stop.is_set():
        order, answers = order_for(index), []
        place_until_answered(cluster, order, answers)
        placed.append((order, answers))
        index += CLIENTS
    return placed


def end_connections(cluster: Cluster) -> int:
    """End every connection to the cluster's database but the one asking; how many."""
    rows = cluster.query(
        "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return sum(1 for row in rows if row["ended"])


@pytest.mark.processes
@pytest.mark.postgres
@pytest.mark.parametrize("dispatch", ["inline", "celery"])
def test_connections_ended_under_load_never_answer_500_and_no_order_is_lost_or_doubled(
    request, dispatch
):
    cluster: Cluster = request.getfixturevalue(
        "inline_cluster" if dispatch == "inline" else "cluster"
    )
    cluster.settings["CONN_MAX_AGE"] = "60"
    cluster.start()
    cluster.add_products()

    stop = threading.Event()
    ended = []
    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = [pool.submit(client, cluster, n, stop) for n in range(CLIENTS)]
        try:
            for _ in range(CUTS):
                time.sleep(CUT_EVERY)
                ended.append(end_connections(cluster))
            time.sleep(CUT_EVERY)  # orders placed after the last cut
        finally:
            stop.set()
        results = [answered for future in clients for answered in future.result()]

    placed = [order for order, _ in results]
    answers = [answer for _, order_answers in results for answer in order_answers]
    with cluster.explained():
        assert all(ended), f"a cut found no connection to end: {ended}"
        exited = [process.name for process in cluster.processes if not process.alive]
        assert not exited, f"processes exited: {exited}"
        failed = [a for a in answers if a[0] >= 500 and not (a[0] == 503 and a[1])]
        assert not failed, f"5xx other than 503 with Retry-After: {failed}"
        refused = [(p.index, p.status, p.error) for p in placed if p.status not in ACCEPTED]
        assert not refused, f"orders never accepted: {refused}"
        created = cluster.query(
            "SELECT aggregate_id, count(*) AS times FROM eventstore_event "
            "WHERE event_type = 'OrderCreated' GROUP BY aggregate_id"
        )
        assert {row["aggregate_id"] for row in created} == {p.order_id for p in placed}
        assert all(row["times"] == 1 for row in created), "an order was created twice"
    settling = wait_until_settled(cluster, [p.order_id for p in placed])
    report(
        f"connections ended ({dispatch})",
        orders=len(placed),
        ended_per_cut=ended,
        answered_503=sum(1 for status, _ in answers if status == 503),
        settling_s=round(settling, 1),
    )
