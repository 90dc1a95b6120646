"""The API's throttles: DRF's own, counting in the default cache, letting a request through
when that cache does not answer.

A shared cache (CACHE_URL: Redis) is one more server every request would depend on. Throttling
guards the service; it is not what the service is for: while the cache is down requests are
allowed, each logged, rather than all answered 500 (a health check would show nothing wrong).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.core.cache import cache
from rest_framework import throttling

logger = logging.getLogger(__name__)


class _ForgivingCache:
    """The default cache as DRF's throttles use it (get, set). A read that fails finds no
    requests counted; a write that fails is dropped."""

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return cache.get(key, default)
        except redis.RedisError as error:
            logger.warning("Throttle cache did not answer, request allowed: %s", error)
            return default

    def set(self, key: str, value: Any, timeout: float | None = None) -> None:
        try:
            cache.set(key, value, timeout)
        except redis.RedisError as error:
            logger.warning("Throttle cache did not answer, request not counted: %s", error)


forgiving_cache = _ForgivingCache()


class AnonRateThrottle(throttling.AnonRateThrottle):
    """Anonymous callers by address, at THROTTLE_ANON."""

    cache = forgiving_cache


class UserRateThrottle(throttling.UserRateThrottle):
    """Each user, at THROTTLE_USER."""

    cache = forgiving_cache


class ScopedRateThrottle(throttling.ScopedRateThrottle):
    """A view's own budget (its throttle_scope), e.g. placing orders at THROTTLE_ORDERS."""

    cache = forgiving_cache
