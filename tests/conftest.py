"""Fixtures shared by every test suite."""

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from eventstore.follower.subscriptions import register_subscriber, unregister_subscriber
from eventstore.models import Event
from eventstore.projections import get_projections
from eventstore.store import event_store
from notifications.services import forget_push_answers
from payments.gateway import get_gateway
from tests.factories import StaffUserFactory, UserFactory


def on_postgres() -> bool:
    """Whether the tests run against PostgreSQL (DATABASE_URL=postgres://...)."""
    return connection.vendor == "postgresql"


def pytest_collection_modifyitems(config, items):
    """Skip tests marked `postgres` unless the suite runs against a PostgreSQL database."""
    if on_postgres():
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL: run with DATABASE_URL=postgres://... (.ci/run does)"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def fresh_gateway():
    """Forget the process-wide simulated gateway (and the charges it remembers) around every
    test, so one test's payment ids never meet another's."""
    get_gateway.cache_clear()
    yield
    get_gateway.cache_clear()


@pytest.fixture(autouse=True)
def fresh_push_answers():
    """Forget which customers have a live push subscription, as this process remembers it
    (notifications.services), so a customer id one test used never carries into another."""
    forget_push_answers()
    yield
    forget_push_answers()


@pytest.fixture
def store():
    """The event store."""
    return event_store


@pytest.fixture
def event_count(db):
    """A function giving how many events the log holds."""
    return Event.objects.count


@pytest.fixture
def stream_projection():
    """The event store's own projection of streams."""
    return get_projections(["eventstore.streams"])[0]


@pytest.fixture
def subscribe():
    """Register subscribers for one test; they are unregistered afterwards."""
    names = []

    def register(subscriber):
        names.append(subscriber.name)
        return register_subscriber(subscriber)

    yield register
    for name in names:
        unregister_subscriber(name)


def _client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    client.user = user
    return client


@pytest.fixture
def staff_user(db):
    return StaffUserFactory()


@pytest.fixture
def customer_user(db):
    return UserFactory()


@pytest.fixture
def anonymous_client():
    return APIClient()


@pytest.fixture
def staff_client(staff_user):
    """An API client authenticated with a staff user's token."""
    return _client_for(staff_user)


@pytest.fixture
def customer_client(customer_user):
    """An API client authenticated with a customer's token."""
    return _client_for(customer_user)


@pytest.fixture
def spans():
    """Trace this test: the event store's spans and Django's request spans go to an in-memory
    exporter (the fixture's value), through a tracer provider installed for the test only."""
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from eventstore.observability import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure(provider)
    # Request spans: test clients load their middleware at their first request, after this.
    DjangoInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        DjangoInstrumentor().uninstrument()
        tracing.configure(None)
        provider.shutdown()
