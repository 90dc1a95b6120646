"""Upcasters: registered functions that upgrade an old event payload one schema version at a time.

History is never rewritten. An event stored with schema_version 1 is read through the chain
(1 -> 2, 2 -> 3, ...) before it reaches an aggregate or projection, and new events of that type
are written at the newest version.
"""

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

_upcasters: dict[tuple[str, int], Upcaster] = {}


class UpcasterError(Exception):
    """Raised when an upcaster is registered twice for the same event type and version."""


def register_upcaster(event_type: str, from_version: int, function: Upcaster) -> Upcaster:
    """Register `function` to upgrade a `from_version` payload of `event_type` by one version.
    Registering the same function again changes nothing (an app's ready() may run twice);
    another function for the same version is refused."""
    key = (event_type, from_version)
    if from_version < 1:
        raise UpcasterError(f"Schema versions start at 1, got {from_version} for {event_type}")
    if _upcasters.get(key, function) is not function:
        raise UpcasterError(f"An upcaster for {event_type} v{from_version} is already registered")
    _upcasters[key] = function
    return function


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator form of `register_upcaster`."""

    def decorate(function: Upcaster) -> Upcaster:
        return register_upcaster(event_type, from_version, function)

    return decorate


def unregister_upcaster(event_type: str, from_version: int) -> None:
    """Remove a registered upcaster (used by tests)."""
    _upcasters.pop((event_type, from_version), None)


def current_schema_version(event_type: str) -> int:
    """The newest schema version of `event_type`: 1 plus the length of its upcaster chain."""
    version = 1
    while (event_type, version) in _upcasters:
        version += 1
    return version


def upcast(event_type: str, schema_version: int, payload: Payload) -> tuple[int, Payload]:
    """Run `payload` through every registered upcaster from `schema_version` on."""
    while (event_type, schema_version) in _upcasters:
        payload = _upcasters[(event_type, schema_version)](dict(payload))
        schema_version += 1
    return schema_version, payload
