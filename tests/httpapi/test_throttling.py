"""The throttles count in the default cache, and let requests through, logged, while it does not
answer: a Redis outage costs the throttling, never the API."""

import logging

import pytest
from django.test import override_settings
from rest_framework.throttling import SimpleRateThrottle

from tests.processes import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead_cache(monkeypatch):
    """The default cache is a Redis server that does not answer (nothing listens on its port),
    and every rate allows one request."""
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "1/min", "user": "1/min"})
    cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
    with override_settings(CACHES={"default": cache}):
        yield


def test_requests_are_allowed_and_logged_while_the_cache_does_not_answer(
    anonymous_client, customer_client, dead_cache, caplog
):
    with caplog.at_level(logging.WARNING, logger="httpapi.throttling"):
        anonymous = [anonymous_client.get("/api/schema/?format=json") for _ in range(2)]
        customer = [customer_client.get("/api/orders/") for _ in range(2)]

    assert [answer.status_code for answer in anonymous + customer] == [200] * 4
    assert "Throttle cache did not answer, request allowed" in caplog.text
