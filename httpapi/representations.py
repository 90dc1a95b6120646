"""Public representations by kind ("order", ...): each service registers, at ready(), how the API
shows one of its resources, so that others (webhooks) can show it the same way without importing
the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Representer = Callable[[str], dict[str, Any] | None]

_representers: dict[str, Representer] = {}


def register_representation(kind: str, representer: Representer) -> None:
    """Register how a resource of `kind` is shown: a function of its id giving what the API
    answers for it, or None when there is none."""
    _representers[kind] = representer


def represent(kind: str, resource_id: str) -> dict[str, Any] | None:
    """The API's representation of the resource, or None (unknown kind or resource)."""
    representer = _representers.get(kind)
    return None if representer is None else representer(resource_id)
