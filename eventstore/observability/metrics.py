"""The event store's Prometheus series, and the registry `GET /metrics` exports.

Counters count what committed, never what rolled back: appended events are counted in an
on-commit callback of the append, so an append whose transaction rolls back (and the retry
that appends the same events again) is counted once. Gauges that describe stored state
(subscriber lag, parked partitions, and the collectors service apps add with
`register_collector`) are read from the database at scrape time, so every process reports the
same figure and no process has to keep them up to date.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn, Celery: several processes), the counters and
histograms of every process are summed by `MultiProcessCollector`; without it, the process's
own default registry is exported.
"""

from __future__ import annotations

import logging
import os
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any

from django.db import DatabaseError
from prometheus_client import REGISTRY, CollectorRegistry, Counter, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from eventstore.records import RecordedEvent

logger = logging.getLogger(__name__)

events_appended = Counter(
    "eventstore_events_appended_total",
    "Events appended to the log (counted when their transaction commits).",
    ["aggregate_type", "event_type"],
)

subscriber_errors = Counter(
    "eventstore_subscriber_errors_total",
    "Events a subscriber's handler raised on (each failed attempt counts).",
    ["subscriber"],
)


def count_appended(events: Iterable[RecordedEvent]) -> None:
    """Count committed events by aggregate type and event type (an on-commit callback)."""
    for labels, count in Tally(
        (event.aggregate_type, event.event_type) for event in events
    ).items():
        _appended(labels).inc(count)


@cache
def _appended(labels: tuple[str, str]) -> Any:
    """The counter of one (aggregate type, event type), looked up once."""
    aggregate_type, event_type = labels
    return events_appended.labels(aggregate_type=aggregate_type, event_type=event_type)


class SubscriberLagCollector(Collector):
    """eventstore_subscriber_lag_events per subscriber partition and eventstore_subscribers_parked
    (partitions whose last catch-up stopped on an error), from `lags()` at scrape time
    (`eventstore.follower.subscriptions.lags`, given when the app registers it)."""

    def __init__(self, lags: Callable[[], Iterable[Any]]) -> None:
        self.lags = lags

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "eventstore_subscriber_lag_events",
            "Events a subscriber partition has yet to handle.",
            labels=["subscriber", "partition"],
        )
        parked = 0
        for partition in self.lags():
            lag.add_metric([partition.subscriber, str(partition.partition)], partition.events)
            parked += bool(partition.last_error)
        yield lag
        yield GaugeMetricFamily(
            "eventstore_subscribers_parked",
            "Subscriber partitions whose last catch-up stopped on an error.",
            value=parked,
        )


class HeldFollowersCollector(Collector):
    """eventstore_followers_held_seconds: the age of the oldest running transaction followers
    wait for, from `held_by()` at scrape time (the recorder's, given when the app registers it;
    one short query of pg_stat_activity, none on SQLite)."""

    def __init__(self, held_by: Callable[[], dict[str, Any] | None]) -> None:
        self.held_by = held_by

    def collect(self) -> Iterator[GaugeMetricFamily]:
        waiting_for = (self.held_by() or {}).get("waiting_for")
        yield GaugeMetricFamily(
            "eventstore_followers_held_seconds",
            "Age of the oldest running transaction subscribers wait for (0: none, or its age "
            "is hidden from this role).",
            value=(waiting_for and waiting_for["seconds"]) or 0,
        )


class BacklogCollector(Collector):
    """eventstore_backlog_seconds: how long the oldest work not started has waited (what
    admission refuses new orders on), from `backlog_seconds()` at scrape time (given when the
    app registers it; two lock-free statements)."""

    def __init__(self, backlog_seconds: Callable[[], float]) -> None:
        self.backlog_seconds = backlog_seconds

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "eventstore_backlog_seconds",
            "Seconds the oldest work not started (an event a subscriber has yet to handle, a "
            "call owed and not begun) has waited (0: none waits).",
            value=self.backlog_seconds(),
        )


_collectors: list[Collector] = []


def register_collector(collector: Collector) -> Collector:
    """Add a scrape-time collector to what `GET /metrics` exports (call from a ready())."""
    if not any(type(known) is type(collector) for known in _collectors):
        _collectors.append(collector)
    return collector


class _Guarded(Collector):
    """A scrape-time collector whose database errors cost only its own series: the rest of the
    scrape (HTTP traffic, counters) is what an operator needs most when the database is down."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterator:
        try:
            return iter(list(self.collector.collect()))
        except DatabaseError:
            logger.exception("Metrics collector %s failed", type(self.collector).__name__)
            return iter(())


class _ProcessRegistry(Collector):
    """This process's default registry (the single-process case)."""

    def collect(self) -> Iterator:
        return REGISTRY.collect()


def multiprocess_dir() -> str:
    """The directory every process writes its series to ("" when each process reports alone)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()


def scrape_registry(collectors: Iterable[Collector] | None = None) -> CollectorRegistry:
    """A registry of every series: the processes' counters and histograms (summed over all of
    them in multiprocess mode) and the scrape-time gauges of `collectors` (default: every
    registered one; none needs no database)."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessRegistry())
    for collector in _collectors if collectors is None else collectors:
        registry.register(_Guarded(collector))
    return registry
