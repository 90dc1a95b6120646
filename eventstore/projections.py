"""Projections: read-model updaters that run inline, inside the transaction that appends.

A projection owns its read-model tables (`models`), applies events to them, and can be reset
and replayed from the log at any time (`manage.py rebuild_projections`). Because it runs in the
appending transaction, a read model is never behind its own events, and a failing projection
rolls the append back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from django.db import models

from eventstore import signals
from eventstore.models import Stream
from eventstore.recorders import recorder
from eventstore.records import RecordedEvent
from eventstore.registry import Registry


class ProjectionError(Exception):
    """A projection is registered twice, or an unknown projection was asked for."""


class Projection:
    """Base class. Set a unique `name`, the `event_types` it reads (None: all), the streams it
    reads them on by `aggregate_type` (one, a frozenset of several, or None: every stream's),
    the read-model `models` it owns, and implement `apply` (or `apply_batch` for bulk writes)."""

    name: ClassVar[str]
    aggregate_type: ClassVar[str | frozenset[str] | None] = None
    event_types: ClassVar[frozenset[str] | None] = None
    models: ClassVar[tuple[type[models.Model], ...]] = ()
    _aggregate_types: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        wanted = cls.aggregate_type
        cls._aggregate_types = (
            None if wanted is None else frozenset([wanted] if isinstance(wanted, str) else wanted)
        )

    def handles(self, event: RecordedEvent) -> bool:
        """Whether this projection reads `event`: one of its event types, on one of its
        streams."""
        return (self.event_types is None or event.event_type in self.event_types) and (
            self._aggregate_types is None or event.aggregate_type in self._aggregate_types
        )

    def apply(self, event: RecordedEvent) -> None:
        """Update the read model for one event."""
        raise NotImplementedError

    def apply_batch(self, events: Iterable[RecordedEvent]) -> None:
        """Update the read model for events in position order."""
        for event in events:
            if self.handles(event):
                self.apply(event)

    def reset(self) -> None:
        """Empty every read-model table this projection owns."""
        for model in reversed(self.models):
            model.objects.all().delete()

    def row_key(self, model: type[models.Model]) -> tuple[str, ...]:
        """Fields that identify a row across rebuilds: a natural primary key, else the first
        unique constraint, else every compared field."""
        pk = model._meta.pk
        if not isinstance(pk, models.AutoField):  # also true for BigAutoField, SmallAutoField
            return (pk.attname,)
        for constraint in model._meta.constraints:
            if isinstance(constraint, models.UniqueConstraint) and constraint.fields:
                return tuple(constraint.fields)
        return tuple(self.compared_fields(model))

    def compared_fields(self, model: type[models.Model]) -> list[str]:
        """Columns whose values must match between the live and a rebuilt read model."""
        return [
            field.attname
            for field in model._meta.concrete_fields
            if not isinstance(field, models.AutoField)  # surrogate keys differ after a rebuild
        ]

    def receive(self, sender: Any = None, events: Iterable[RecordedEvent] = (), **kwargs) -> None:
        """`events_recorded` receiver: applies the events of the types this projection reads."""
        if self.event_types is not None:
            events = [event for event in events if event.event_type in self.event_types]
            if not events:
                return
        self.apply_batch(events)


registry: Registry[Projection] = Registry("projection", ProjectionError)


def register_projection(projection: Projection) -> Projection:
    """Register a projection and connect it to `events_recorded` (call from AppConfig.ready())."""
    name = registry.add(projection).name
    signals.events_recorded.connect(
        projection.receive, weak=False, dispatch_uid=f"eventstore.projection.{name}"
    )
    return projection


def unregister_projection(name: str) -> None:
    """Disconnect and forget a projection (used by tests)."""
    registry.remove(name)
    signals.events_recorded.disconnect(dispatch_uid=f"eventstore.projection.{name}")


def get_projections(names: Iterable[str] | None = None) -> list[Projection]:
    """Registered projections, all or the named ones, in registration order."""
    return registry.get(names)


class StreamProjection(Projection):
    """The event store's own read model: every stream with its version and latest event.

    An append moves the stream index itself, in its own statement (`Recorder.append`), so the
    live read model needs nothing from here; rebuilds and checks replay the log through
    `apply_batch`, as for every projection.
    """

    name = "eventstore.streams"
    models = (Stream,)

    def receive(self, sender: Any = None, events: Iterable[RecordedEvent] = (), **kwargs) -> None:
        """Nothing: the append wrote the stream index already."""

    def apply_batch(self, events: Iterable[RecordedEvent]) -> None:
        first: dict[tuple[str, str], RecordedEvent] = {}
        last: dict[tuple[str, str], RecordedEvent] = {}
        for event in events:
            key = (event.aggregate_type, event.aggregate_id)
            first.setdefault(key, event)
            last[key] = event
        if not last:
            return
        # One upsert per batch; `first_recorded_at` is kept from the row's first insert.
        recorder().upsert_streams(
            [
                (
                    event.aggregate_type,
                    event.aggregate_id,
                    event.version,
                    event.event_type,
                    event.position,
                    first[key].recorded_at,
                    event.recorded_at,
                )
                for key, event in last.items()
            ]
        )

    def apply(self, event: RecordedEvent) -> None:
        self.apply_batch([event])
