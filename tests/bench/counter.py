"""The aggregate the event-store workloads write and load: a counter of numbered events."""

from __future__ import annotations

from typing import Any

from eventstore.aggregates import Aggregate, Repository, applies

AGGREGATE_TYPE = "BenchCounter"
EVENT_TYPE = "Counted"


class Counter(Aggregate):
    """Counts its events and sums their numbers: enough state to make replaying them real work."""

    aggregate_type = AGGREGATE_TYPE

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.count = 0
        self.total = 0

    def add(self, number: int) -> None:
        self.record(EVENT_TYPE, payload(number))

    @applies(EVENT_TYPE)
    def _counted(self, data: dict[str, Any]) -> None:
        self.count += 1
        self.total += data["n"]


def payload(number: int) -> dict[str, Any]:
    """An event payload of a realistic size (about 100 bytes of JSON)."""
    return {"n": number, "sku": f"sku-{number % 97:04d}", "note": "benchmark event"}


METADATA = {"actor": "bench", "correlation_id": "bench"}


def fold(payloads: list[dict[str, Any]]) -> tuple[int, int]:
    """The baseline's version of replaying a counter: (count, total)."""
    count = total = 0
    for data in payloads:
        count += 1
        total += data["n"]
    return count, total


def repository(snapshot_every: int | None = None) -> Repository[Counter]:
    return Repository(Counter, snapshot_every=snapshot_every)
