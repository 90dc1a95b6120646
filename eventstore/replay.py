"""Rebuilding and verifying projections by replaying the log in position order."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import models, transaction

from eventstore.projections import Projection
from eventstore.store import event_store

Progress = Callable[[int], None]


@dataclass
class RebuildResult:
    """What a rebuild replayed."""

    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        """Replay throughput (0 when nothing was replayed)."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


def _event_types(projections: Sequence[Projection]) -> list[str] | None:
    """The union of the event types the projections read (None when one reads everything)."""
    if any(projection.event_types is None for projection in projections):
        return None
    return sorted(set().union(*(projection.event_types for projection in projections)))


def count_replay_events(projections: Sequence[Projection]) -> int:
    """How many events a rebuild of these projections replays."""
    return event_store.count(event_types=_event_types(projections))


def rebuild(
    projections: Sequence[Projection],
    *,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> RebuildResult:
    """Reset the projections' read models and replay the log into them, all in one transaction.

    Appenders wait while it runs, so the rebuilt read models match the log exactly; a failure
    leaves the old read models untouched.
    """
    batch_size = batch_size or int(settings.EVENTSTORE_BATCH_SIZE)
    started = time.perf_counter()
    replayed = 0
    with transaction.atomic():
        event_store.hold_appends()
        for projection in projections:
            projection.reset()
        after = 0
        event_types = _event_types(projections)
        while True:
            page = event_store.read_page(
                after_position=after, limit=batch_size, event_types=event_types
            )
            if not page:
                break
            for projection in projections:
                projection.apply_batch(page)
            replayed += len(page)
            after = page[-1].position
            if progress is not None:
                progress(len(page))
            if len(page) < batch_size:
                break
    return RebuildResult(events=replayed, seconds=time.perf_counter() - started)


@dataclass
class RowDifference:
    """One read-model row that differs between the live tables and a fresh rebuild."""

    projection: str
    model: str
    key: dict[str, Any]
    live: dict[str, Any] | None
    rebuilt: dict[str, Any] | None
    fields: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """`missing` (only in the rebuild), `unexpected` (only live) or `changed`."""
        if self.live is None:
            return "missing"
        if self.rebuilt is None:
            return "unexpected"
        return "changed"

    def describe(self) -> str:
        """One line for humans."""
        key = ", ".join(f"{name}={value!r}" for name, value in self.key.items())
        if self.kind == "missing":
            return f"{self.model} [{key}]: missing from the live read model"
        if self.kind == "unexpected":
            return f"{self.model} [{key}]: in the live read model but not derived from any event"
        changes = "; ".join(
            f"{name}: live {self.live[name]!r} != rebuilt {self.rebuilt[name]!r}"
            for name in self.fields
        )
        return f"{self.model} [{key}]: {changes}"


def _capture(projection: Projection, model: type[models.Model]) -> dict[tuple, dict[str, Any]]:
    key_fields = projection.row_key(model)
    columns = projection.compared_fields(model)
    rows: dict[tuple, dict[str, Any]] = {}
    for row in model.objects.order_by().values(*columns).iterator(chunk_size=2000):
        rows[tuple(row[name] for name in key_fields)] = row
    return rows


def verify(
    projections: Sequence[Projection],
    *,
    batch_size: int | None = None,
    progress: Progress | None = None,
    keep: bool = False,
) -> tuple[list[RowDifference], RebuildResult]:
    """Rebuild and list every row that differs from the live read models. The rebuild is
    rolled back, unless `keep`: then it replaces the live read models, as `rebuild` does."""
    differences: list[RowDifference] = []
    with transaction.atomic():
        event_store.hold_appends()
        live = {
            (projection.name, model): _capture(projection, model)
            for projection in projections
            for model in projection.models
        }
        result = rebuild(projections, batch_size=batch_size, progress=progress)
        for projection in projections:
            for model in projection.models:
                differences.extend(_compare(projection, model, live[(projection.name, model)]))
        if not keep:
            transaction.set_rollback(True)
    return differences, result


def _compare(
    projection: Projection, model: type[models.Model], live: dict[tuple, dict[str, Any]]
) -> list[RowDifference]:
    rebuilt = _capture(projection, model)
    key_fields = projection.row_key(model)
    label = model._meta.label
    differences = []
    for key in sorted(live.keys() | rebuilt.keys(), key=repr):
        live_row, rebuilt_row = live.get(key), rebuilt.get(key)
        if live_row == rebuilt_row:
            continue
        changed = (
            [name for name in live_row if live_row[name] != rebuilt_row[name]]
            if live_row is not None and rebuilt_row is not None
            else []
        )
        differences.append(
            RowDifference(
                projection.name,
                label,
                dict(zip(key_fields, key, strict=True)),
                live_row,
                rebuilt_row,
                changed,
            )
        )
    return differences
