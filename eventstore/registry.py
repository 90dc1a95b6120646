"""Registries of named parts (projections, subscribers): each name registered once, kept in
registration order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    """Anything registered by its `name`."""

    name: str


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Named parts of one kind; a second, different part under a taken name is an error."""

    def __init__(self, kind: str, error: type[Exception]) -> None:
        self.kind = kind
        self.error = error
        self._parts: dict[str, T] = {}

    def __bool__(self) -> bool:
        return bool(self._parts)

    def add(self, part: T) -> T:
        """Register `part` (again: a no-op); raises `error` when another has its name."""
        known = self._parts.get(part.name)
        if known is not None and known is not part:
            raise self.error(f"A {self.kind} named {part.name!r} is already registered")
        self._parts[part.name] = part
        return part

    def remove(self, name: str) -> None:
        """Forget the part of this name (none: nothing happens)."""
        self._parts.pop(name, None)

    def get(self, names: Iterable[str] | None = None) -> list[T]:
        """Every part in registration order, or the named ones in the order named; raises
        `error` naming the unknown ones."""
        if names is None:
            return list(self._parts.values())
        names = list(names)
        unknown = [name for name in names if name not in self._parts]
        if unknown:
            known = ", ".join(self._parts) or "none"
            raise self.error(f"Unknown {self.kind}(s): {', '.join(unknown)} (known: {known})")
        return [self._parts[name] for name in names]

    @contextmanager
    def emptied(self) -> Iterator[None]:
        """Hold no part inside the block (for tests), then what was held before again."""
        held, self._parts = self._parts, {}
        try:
            yield
        finally:
            self._parts = held
