"""The aggregate the event-store workloads write and load: a counter of numbered events."""

from __future__ import annotations

from typing import Any

from eventstore.aggregates import Aggregate, Repository, applies
from tests.bench.payloads import AGGREGATE_TYPE, EVENT_TYPE, METADATA, fold, payload

__all__ = ["AGGREGATE_TYPE", "EVENT_TYPE", "METADATA", "Counter", "fold", "payload", "repository"]


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


def repository(snapshot_every: int | None = None) -> Repository[Counter]:
    return Repository(Counter, snapshot_every=snapshot_every)
