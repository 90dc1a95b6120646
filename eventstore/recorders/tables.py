"""What every part of a recorder builds on: the models' tables and columns by field name, how
values are bound and decoded, and the connection the statements run on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import models, transaction
from django.utils.dateparse import parse_datetime

from eventstore.models import Checkpoint, Effect, Event, Snapshot, Stream

INSERT_CHUNK = 500  # rows per INSERT, well inside every backend's limit on parameters


class Table:
    """A model's table name (`str(table)`) and its columns by field name (`table.field`)."""

    def __init__(self, model: type[models.Model]):
        self._name = model._meta.db_table
        self._columns = {field.name: field.column for field in model._meta.concrete_fields}

    def __str__(self) -> str:
        return self._name

    def __getattr__(self, name: str) -> str:
        try:
            return self._columns[name]
        except KeyError:
            raise AttributeError(name) from None

    def columns(self, names: Iterable[str]) -> list[str]:
        """The columns of these fields, in this order."""
        return [self._columns[name] for name in names]


def current_connection():
    """The connection of the database transactions run on (Django's default)."""
    return transaction.get_connection()


def as_uuid(value: Any) -> uuid.UUID:
    """A UUID from a column that stores it as text or as a UUID."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def from_json(value: Any) -> Any:
    """A JSON column's value, decoded where the driver returns the text."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def written_fields(model: type[models.Model]) -> list[models.Field]:
    """The model's fields in declaration order, but for a surrogate key the database assigns."""
    return [
        field for field in model._meta.concrete_fields if not isinstance(field, models.AutoField)
    ]


def aware(value: datetime) -> datetime:
    """A datetime read back, in UTC (SQLite stores naive UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def as_datetime(value: Any) -> datetime | None:
    """A datetime column's value read back in UTC, where the driver returns the text (SQLite,
    for a value computed by the statement) or None."""
    if value is None:
        return None
    return aware(parse_datetime(value) if isinstance(value, str) else value)


class RecorderBase:
    """The tables a recorder writes, and how a value is bound to a column. This class binds as
    SQLite does; `PostgresRecorder` overrides what PostgreSQL does otherwise."""

    # A placeholder for JSON text bound to a JSON column.
    json_mark = "%s"

    def __init__(self) -> None:
        self._statements: dict[Any, str] = {}
        self.events = Table(Event)
        self.checkpoints = Table(Checkpoint)
        self.streams = Table(Stream)
        self.snapshots = Table(Snapshot)
        self.effects = Table(Effect)

    def _statement(self, key: Any, build: Callable[[], str]) -> str:
        """The statement `build` makes for `key`, built the first time only (a statement's text
        depends on its shape, never on its values)."""
        sql = self._statements.get(key)
        if sql is None:
            sql = self._statements[key] = build()
        return sql

    def _mark(self, field: models.Field) -> str:
        """The placeholder of a value bound to the field's column."""
        return self.json_mark if isinstance(field, models.JSONField) else "%s"

    def _insert_row(self, model: type[models.Model], row: dict[str, Any]) -> tuple[str, list[Any]]:
        """An INSERT of one row of the model from values by field name, and its parameters."""

        def build() -> str:
            fields = [model._meta.get_field(name) for name in row]
            columns = ", ".join(field.column for field in fields)
            values = self._values(fields, 1)
            return f"INSERT INTO {model._meta.db_table} ({columns}) VALUES {values}"

        return self._statement(("insert", model, tuple(row)), build), list(row.values())

    def _values(self, fields: Sequence[models.Field], rows: int) -> str:
        """The VALUES list of `rows` rows of these fields."""
        row = f"({', '.join(self._mark(field) for field in fields)})"
        return ", ".join([row] * rows)

    @staticmethod
    def db_uuid(value: uuid.UUID) -> Any:
        """An event id as the column stores it (char(32) hex on SQLite)."""
        return value.hex

    @staticmethod
    def db_datetime(value: datetime) -> Any:
        """A datetime as the connection stores it."""
        return current_connection().ops.adapt_datetimefield_value(value)

    def _for_update(self, skip_locked: bool = False) -> str:
        """The row-lock clause (none: SQLite's IMMEDIATE transaction holds the write lock)."""
        return ""
