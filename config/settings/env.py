"""The parsers the settings read the environment with. Each takes the variable's name first, and
fails loudly, naming the variable, on a value it cannot use; unset (or, for most, empty) gives the
default."""

import os
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

Parsed = TypeVar("Parsed")

# What DRF's throttles accept: requests per second, minute, hour or day ("60/min").
RATE_PATTERN = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")


def env_flag(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable ("1", "true", "yes", "on" are true)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_parsed(name: str, default: Parsed, parse: Callable[[str], Parsed], kind: str) -> Parsed:
    """`parse` of an environment variable (`default` when unset or empty), failing loudly with
    "<name> must be <kind>" on a value it refuses."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return parse(value)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be {kind}, got {value!r}") from error


def env_float(name: str, default: float) -> float:
    """Read a decimal number from the environment, failing loudly on anything else."""
    return _env_parsed(name, default, float, "a number")


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable, failing loudly on a non-integer."""
    return _env_parsed(name, default, int, "an integer")


def env_list(name: str, default: str = "") -> list[str]:
    """Read a comma-separated list, each item stripped and empty ones left out (`default`, also
    comma-separated, only when the variable is unset)."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_rate(name: str, default: str) -> str:
    """Read a request rate ("60/min") from the environment, failing loudly on anything else."""
    value = (os.environ.get(name) or default).strip()
    if not RATE_PATTERN.match(value):
        raise ImproperlyConfigured(
            f"{name} must be a rate like 60/min (per s, min, hour or day), got {value!r}"
        )
    return value


def env_database(name: str, default: str, **options: Any) -> dict[str, Any]:
    """A DATABASES entry from a database URL in the environment (`default` when unset or
    empty), failing loudly with "<name> must be ..." on a URL that names no known database; the
    message never repeats the URL, which may hold a password."""
    value = os.environ.get(name) or default
    try:
        return dj_database_url.parse(value, **options)
    except ValueError as error:
        scheme = urlsplit(value).scheme if "://" in value else ""
        if not scheme:
            problem = "it has no scheme"
        elif isinstance(error, dj_database_url.UnknownSchemeError):
            problem = f"its scheme {scheme}:// is not a database's"
        else:
            problem = "it is not a URL (quote special characters of the password: @ as %40)"
        raise ImproperlyConfigured(
            f"{name} must be a database URL such as postgres://user:password@host:5432/name or "
            f"sqlite:////absolute/path/db.sqlite3: {problem}."
        ) from None
