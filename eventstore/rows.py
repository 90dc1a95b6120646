"""Row access on hot paths: read rows by key, insert, update, increment and delete them.

Inline projections write a row or two for every event, inside the appending transaction, so
their cost is paid by every command; the vault and the checks a command makes run for every
order too. Compiling those statements through the ORM's query
machinery took more time than the database spent running them (BENCHMARKS.md), so these
helpers build each statement once per model and set of columns and reuse it. Values are adapted
by the model's own fields (`get_db_prep_save`: JSON, decimals, aware datetimes, choices), so a
row reads back through the ORM exactly as if the ORM had written it. Model signals and
`save()` overrides do not run: read models have none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from django.db import connections, models, router


def _connection(model: type[models.Model]):
    return connections[router.db_for_write(model)]


def _columns(model: type[models.Model], names: tuple[str, ...]) -> list[str]:
    quote = _connection(model).ops.quote_name
    return [quote(model._meta.get_field(name).column) for name in names]


@cache
def _insert_sql(model: type[models.Model], names: tuple[str, ...]) -> str:
    table = _connection(model).ops.quote_name(model._meta.db_table)
    marks = ", ".join(["%s"] * len(names))
    return f"INSERT INTO {table} ({', '.join(_columns(model, names))}) VALUES ({marks})"


@cache
def _update_sql(model: type[models.Model], names: tuple[str, ...], added: tuple[str, ...]) -> str:
    quote = _connection(model).ops.quote_name
    assignments = [f"{column} = %s" for column in _columns(model, names)]
    assignments += [f"{column} = {column} + %s" for column in _columns(model, added)]
    return (
        f"UPDATE {quote(model._meta.db_table)} SET {', '.join(assignments)} "
        f"WHERE {quote(model._meta.pk.column)} = %s"
    )


@cache
def _concrete_fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    return tuple(model._meta.concrete_fields)


def _execute(model: type[models.Model], sql: str, params: list[Any]) -> int:
    with _connection(model).cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@cache
def _fields(model: type[models.Model], names: tuple[str, ...]) -> tuple[models.Field, ...]:
    return tuple(model._meta.get_field(name) for name in names)


def _prepared(model: type[models.Model], values: Mapping[str, Any]) -> list[Any]:
    connection = _connection(model)
    return [
        field.get_db_prep_save(value, connection)
        for field, value in zip(_fields(model, tuple(values)), values.values(), strict=True)
    ]


def _with_defaults(model: type[models.Model], values: dict[str, Any]) -> dict[str, Any]:
    """Every field's value: the given one, else the field's default."""
    row = {}
    for field in _concrete_fields(model):
        if field.name in values:
            row[field.name] = values.pop(field.name)
        else:
            row[field.name] = field.get_default()
    if values:
        raise TypeError(f"{model.__name__} has no field(s) {', '.join(values)}")
    return row


def insert(model: type[models.Model], **values: Any) -> None:
    """Insert one row; fields not given take their defaults."""
    row = _with_defaults(model, values)
    _execute(model, _insert_sql(model, tuple(row)), _prepared(model, row))


@cache
def _upsert_sql(model: type[models.Model], names: tuple[str, ...]) -> str:
    quote = _connection(model).ops.quote_name
    key = model._meta.pk.column
    changed = [column for column in _columns(model, names) if column != quote(key)]
    return f"{_insert_sql(model, names)} ON CONFLICT ({quote(key)}) DO UPDATE SET " + ", ".join(
        f"{column} = excluded.{column}" for column in changed
    )


def upsert(model: type[models.Model], **values: Any) -> None:
    """Insert one row, or, when its primary key is taken, set the given values on that row
    (one statement; fields not given take their defaults in an insert)."""
    row = _with_defaults(model, values)
    _execute(model, _upsert_sql(model, tuple(row)), _prepared(model, row))


def update(
    model: type[models.Model], pk: Any, *, add: Mapping[str, int] | None = None, **values: Any
) -> int:
    """Set `values` on the row with primary key `pk`, and add `add`'s amounts to its counters;
    return how many rows changed (0 when there is no such row)."""
    add = dict(add or {})
    sql = _update_sql(model, tuple(values), tuple(add))
    params = _prepared(model, values) + list(add.values())
    params.append(model._meta.pk.get_db_prep_value(pk, _connection(model)))
    return _execute(model, sql, params)


def update_many(
    model: type[models.Model],
    changes: Mapping[Any, Mapping[str, Any]],
    added: Mapping[Any, Mapping[str, int]] | None = None,
) -> None:
    """`update` each row (by primary key) with its values and amounts added; rows that change
    the same columns, none of them to NULL, in one statement (a CASE on the key per column)."""
    added = added or {}
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Any]] = {}
    for pk in {**changes, **added}:
        values, amounts = changes.get(pk, {}), added.get(pk, {})
        if len(changes) + len(added) == 1 or any(value is None for value in values.values()):
            update(model, pk, add=amounts, **values)
            continue
        groups.setdefault((tuple(values), tuple(amounts)), []).append(pk)
    for (names, amounts), pks in groups.items():
        if len(pks) == 1:
            [pk] = pks
            update(model, pk, add=added.get(pk), **changes.get(pk, {}))
            continue
        _update_rows(model, names, amounts, pks, changes, added)


def _update_rows(
    model: type[models.Model],
    names: tuple[str, ...],
    amounts: tuple[str, ...],
    pks: list[Any],
    changes: Mapping[Any, Mapping[str, Any]],
    added: Mapping[Any, Mapping[str, int]],
) -> None:
    connection = _connection(model)
    quote = connection.ops.quote_name
    pk_field = model._meta.pk
    key = quote(pk_field.column)
    keys = [pk_field.get_db_prep_value(pk, connection) for pk in pks]
    whens = " ".join(["WHEN %s THEN %s"] * len(pks))
    assignments, params = [], []
    for name, column in zip(names, _columns(model, names), strict=True):
        field = model._meta.get_field(name)
        assignments.append(f"{column} = CASE {key} {whens} END")
        for pk, prepared in zip(pks, keys, strict=True):
            params += [prepared, field.get_db_prep_save(changes[pk][name], connection)]
    for name, column in zip(amounts, _columns(model, amounts), strict=True):
        assignments.append(f"{column} = {column} + CASE {key} {whens} END")
        for pk, prepared in zip(pks, keys, strict=True):
            params += [prepared, added[pk][name]]
    marks = ", ".join(["%s"] * len(pks))
    _execute(
        model,
        f"UPDATE {quote(model._meta.db_table)} SET {', '.join(assignments)} "
        f"WHERE {key} IN ({marks})",
        [*params, *keys],
    )


def delete(model: type[models.Model], pk: Any) -> int:
    """Delete the row with primary key `pk`; how many rows went (0 or 1)."""
    quote = _connection(model).ops.quote_name
    sql = f"DELETE FROM {quote(model._meta.db_table)} WHERE {quote(model._meta.pk.column)} = %s"
    return _execute(model, sql, [model._meta.pk.get_db_prep_value(pk, _connection(model))])


def keys(model: type[models.Model], pks: Iterable[Any]) -> set[Any]:
    """Which of these primary keys have a row (as the keys were given)."""
    pks = list(pks)
    if not pks:
        return set()
    connection = _connection(model)
    quote = connection.ops.quote_name
    pk = model._meta.pk
    prepared = {pk.get_db_prep_value(key, connection): key for key in pks}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote(pk.column)} FROM {quote(model._meta.db_table)} "
            f"WHERE {quote(pk.column)} IN ({', '.join(['%s'] * len(prepared))})",
            list(prepared),
        )
        return {prepared[row[0]] for row in cursor.fetchall() if row[0] in prepared}


def insert_instance(instance: models.Model) -> None:
    """Insert an unsaved model instance as one row (see `insert`)."""
    insert(
        type(instance),
        **{
            field.name: getattr(instance, field.attname)
            for field in _concrete_fields(type(instance))
        },
    )


def update_instance(instance: models.Model, fields: tuple[str, ...] | list[str]) -> int:
    """Write these fields of a loaded model instance to its row (see `update`)."""
    return update(type(instance), instance.pk, **{name: getattr(instance, name) for name in fields})


@cache
def _reader(model: type[models.Model]) -> tuple[str, list[tuple[Any, list[Any]]]]:
    """The SELECT of every column, and each column's expression and converters (as the ORM's
    compiler applies them: the backend's, then the field's own `from_db_value`)."""
    connection = _connection(model)
    quote = connection.ops.quote_name
    fields = _concrete_fields(model)
    columns = ", ".join(quote(field.column) for field in fields)
    sql = (
        f"SELECT {columns} FROM {quote(model._meta.db_table)} WHERE {quote(model._meta.pk.column)}"
    )
    converters = []
    for field in fields:
        column = field.get_col(model._meta.db_table)
        converters.append(
            (column, connection.ops.get_db_converters(column) + field.get_db_converters(connection))
        )
    return sql, converters


def in_bulk(model: type[models.Model], pks: Iterable[Any]) -> dict[Any, models.Model]:
    """The rows with these primary keys as model instances, by key (missing keys are left out)."""
    pks = list(pks)
    if not pks:
        return {}
    connection = _connection(model)
    sql, converters = _reader(model)
    pk_field = model._meta.pk
    with connection.cursor() as cursor:
        cursor.execute(
            f"{sql} IN ({', '.join(['%s'] * len(pks))})",
            [pk_field.get_db_prep_value(pk, connection) for pk in pks],
        )
        rows = cursor.fetchall()
    names = [field.attname for field in _concrete_fields(model)]
    found = {}
    for row in rows:
        values = []
        for value, (column, functions) in zip(row, converters, strict=True):
            for function in functions:
                value = function(value, column, connection)
            values.append(value)
        instance = model.from_db(connection.alias, names, values)
        found[instance.pk] = instance
    return found


class RowBatch:
    """The writes of one projection batch to one model, merged by primary key: a row inserted
    in the batch takes later changes into its insert; `flush` writes each row once (inserts
    first, then updates)."""

    def __init__(self, model: type[models.Model]):
        self.model = model
        self._new: dict[Any, dict[str, Any]] = {}
        self._changed: dict[Any, dict[str, Any]] = {}
        self._added: dict[Any, dict[str, int]] = {}

    def insert(self, pk: Any, values: dict[str, Any]) -> None:
        """Insert a new row with primary key `pk` (see `insert`)."""
        self._new[pk] = values

    def is_new(self, pk: Any) -> bool:
        """Whether the row with primary key `pk` is inserted by this batch."""
        return pk in self._new

    def change(
        self, pk: Any, values: Mapping[str, Any], *, add: Mapping[str, int] | None = None
    ) -> None:
        """Set `values` on the row with primary key `pk`, new in this batch or stored, and add
        `add`'s amounts to its counters (without reading the row)."""
        add = add or {}
        row = self._new.get(pk)
        if row is None:
            self._changed.setdefault(pk, {}).update(values)
            added = self._added.setdefault(pk, {})
            for name, amount in add.items():
                added[name] = added.get(name, 0) + amount
            return
        row.update(values)
        for name, amount in add.items():
            row[name] = row.get(name, 0) + amount

    def flush(self) -> None:
        """Write every insert, then every update, once each (rows that change the same columns
        in one statement, `update_many`)."""
        for values in self._new.values():
            insert(self.model, **values)
        if self._changed:
            update_many(self.model, self._changed, self._added)
