"""Too many requests answer 429 with Retry-After: anonymous callers, users, and placing orders
each have their own rate, read from the environment."""

from decimal import Decimal

import pytest
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from eventstore.models import Event
from inventory.services import product_create
from tests.config.test_settings import load_settings

pytestmark = pytest.mark.django_db

ORDER = {"items": [{"product_id": "p1", "quantity": 1}]}


@pytest.fixture
def rates(monkeypatch):
    """A function setting the throttles' rates for one test, with no request counted yet.

    DRF's throttles read their rates once, when they are imported: patch what they read."""

    def set_rates(**scopes):
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", scopes)
        cache.clear()

    yield set_rates
    cache.clear()


def test_anonymous_callers_get_429_with_retry_after_past_their_rate(anonymous_client, rates):
    rates(anon="2/min", user="100/min", orders="100/min")

    answers = [anonymous_client.get("/api/schema/?format=json") for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 60
    assert "detail" in answers[-1].json()


def test_the_health_check_is_never_throttled(anonymous_client, rates):
    rates(anon="1/min", user="1/min", orders="1/min")

    assert [anonymous_client.get("/api/health/").status_code for _ in range(3)] == [200] * 3


def test_each_user_has_their_own_rate(customer_client, staff_client, rates):
    rates(anon="100/min", user="2/min", orders="100/min")

    mine = [customer_client.get("/api/orders/").status_code for _ in range(3)]
    theirs = staff_client.get("/api/orders/")

    assert mine == [200, 200, 429]
    assert theirs.status_code == 200


def test_placing_orders_has_a_stricter_rate_and_a_throttled_order_writes_nothing(
    customer_client, rates
):
    product_create(product_id="p1", name="Widget", price=Decimal("2.50"), initial_stock=10)
    rates(anon="100/min", user="100/min", orders="1/min")

    first = customer_client.post("/api/orders/", ORDER, format="json")
    events_after_first = Event.objects.count()
    second = customer_client.post("/api/orders/", ORDER, format="json")

    assert first.status_code == 201
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) > 0
    assert Event.objects.count() == events_after_first
    # Reading is not placing: the user's own rate still allows it.
    assert customer_client.get("/api/orders/").status_code == 200


def test_rates_come_from_the_environment_with_defaults():
    code = "from config import settings as s; print(s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'])"
    default = load_settings(DEBUG="1", code=code)
    chosen = load_settings(
        DEBUG="1", THROTTLE_ANON="5/s", THROTTLE_USER="100/hour", THROTTLE_ORDERS="7/day", code=code
    )

    assert default.stdout.strip() == "{'anon': '60/min', 'user': '600/min', 'orders': '60/min'}"
    assert chosen.stdout.strip() == "{'anon': '5/s', 'user': '100/hour', 'orders': '7/day'}"


def test_a_rate_that_is_not_one_fails_loudly():
    result = load_settings(DEBUG="1", THROTTLE_ORDERS="lots")

    assert result.returncode != 0
    assert "THROTTLE_ORDERS must be a rate like 60/min" in result.stderr


CACHE = (
    "from config import settings as s; c = s.CACHES['default']; "
    "print(c['BACKEND'], c.get('LOCATION'), c.get('KEY_PREFIX'))"
)


def test_the_counts_are_each_processs_own_unless_cache_url_names_a_redis_server():
    own = load_settings(DEBUG="1", code=CACHE)
    shared = load_settings(
        DEBUG="1", CACHE_URL="rediss://cache:6380/2", CACHE_KEY_PREFIX="shop", code=CACHE
    )

    assert own.stdout.strip() == "django.core.cache.backends.locmem.LocMemCache None None"
    assert shared.stdout.strip() == (
        "django.core.cache.backends.redis.RedisCache rediss://cache:6380/2 shop"
    )


def test_a_cache_url_that_is_not_redis_is_refused_naming_the_variable_not_its_password():
    result = load_settings(DEBUG="1", CACHE_URL="memcached://user:secret@cache:11211")

    assert result.returncode != 0
    assert "CACHE_URL must start with redis:// or rediss://" in result.stderr
    assert "secret" not in result.stderr
