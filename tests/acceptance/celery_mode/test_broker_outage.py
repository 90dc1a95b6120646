"""Scenario: celery mode with its broker cut off for a few seconds (every process reaches
RabbitMQ through tests/proxy.py). Orders placed meanwhile are accepted quickly and finish once
the broker is back; the cluster and the end-state checks are those of test_workers.py."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from django.conf import settings

from tests.acceptance.celery_mode.checks import assert_end_state, p50_max
from tests.acceptance.celery_mode.cluster import (
    ORDERS,
    assert_accepted,
    place_orders,
    report,
    wait_until_settled,
)

CUT_SECONDS = 5.0  # at least this long without a broker
SERVER_MARGIN = 0.5  # seconds a request may take besides waiting on the broker
RECONNECT_GRACE = timedelta(seconds=1)  # after the restore, until sends succeed again
LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"  # the project's log lines begin with the local time


@pytest.mark.processes
@pytest.mark.postgres
def test_orders_placed_while_the_broker_is_cut_off_are_accepted_and_finish_once_it_is_back(
    broker_proxy, cluster
):
    """Every process reaches RabbitMQ through a proxy, which cuts every connection and refuses
    new ones for CUT_SECONDS while a third of the orders are placed. The API keeps answering:
    each order is committed, its wake-up is logged as not sent (eventstore.tasks._send) and
    left to beat's sweep once the broker is back, and the server spends no more than the
    broker's connection timeout on it (CELERY_BROKER_CONNECTION_TIMEOUT, as
    config/settings/celery.py promises). Once the broker is back the web server sends wake-ups
    again, and every order reaches its end with every effect once: no event was lost."""
    cluster.start(broker_port=broker_proxy.port)
    cluster.add_products()
    before = place_orders(cluster, range(0, 70))

    cut_at = time.monotonic()
    assert broker_proxy.cut() > 0, "no process was connected through the proxy"
    during = place_orders(cluster, range(70, 130))
    time.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - cut_at)))
    broker_proxy.restore()
    restored_at = datetime.now()
    cut_for = time.monotonic() - cut_at
    after = place_orders(cluster, range(130, ORDERS))
    placed = before + during + after

    with cluster.explained():
        # No 5xx while the broker was away, and no request waited long on it.
        assert_accepted(placed)
        server = cluster.server_seconds()
        limit = settings.CELERY_BROKER_CONNECTION_TIMEOUT + SERVER_MARGIN
        slow = {p.index: server[p.key] for p in during if server[p.key] > limit}
        assert not slow, f"orders placed while the broker was cut off took over {limit} s: {slow}"
        # The wake-ups those commits could not send were logged, and only while the broker
        # was away: the web server sent them again once it was back.
        failed_sends = [
            datetime.strptime(line[:23], LOG_TIME)
            for line in cluster.log_text("web").splitlines()
            if "Could not enqueue" in line
        ]
        assert failed_sends, "no wake-up failed to send: the cut missed the requests"
        assert max(failed_sends) < restored_at + RECONNECT_GRACE, "sends fail after the restore"

    settling = wait_until_settled(cluster, [p.order_id for p in placed])
    outcome = assert_end_state(cluster, placed, crashed=False)
    report(
        "broker cut",
        cut_s=round(cut_for, 1),
        failed_sends=len(failed_sends),
        server_s_while_cut_p50_max=p50_max([server[p.key] for p in during]),
        server_s_before_p50_max=p50_max([server[p.key] for p in before]),
        client_s_while_cut_max=round(max(p.seconds for p in during), 2),
        refused_connections=broker_proxy.refused,
        settling_s=round(settling, 1),
        **outcome.figures(),
    )
