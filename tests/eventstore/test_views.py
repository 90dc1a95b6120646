"""The HTTP API of the event store: health, schema and docs, and the API root (the event log
itself: test_event_log.py)."""

import functools
import time
from unittest.mock import patch

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from kombu.exceptions import OperationalError

from config.celery import app as celery_app
from eventstore.follower.effects import EffectSubscriber
from eventstore.follower.subscriptions import Subscriber, catch_up
from tests.factories import append_event
from tests.processes import HOST, free_port, held_transaction, rabbitmq_missing

# --- health --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_health_answers_200_without_authentication(anonymous_client):
    response = anonymous_client.get("/api/health/")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("ok", "ok")
    if connection.vendor == "postgresql":
        assert body["followers"] == {
            "oldest_transaction_seconds": 0.0,
            "waiting_for": None,
            "oldest_ignored": None,
            "events_behind_horizon": 0,
            "transaction_ids_ahead": False,
            "held": "ok",
        }
    else:
        assert "followers" not in body


@pytest.mark.postgres
@pytest.mark.django_db
def test_health_answers_503_when_the_log_holds_transaction_ids_the_database_has_not_reached(
    anonymous_client,
):
    """As after a dump restored into a new cluster: a stored event's id lies ahead."""
    from tests.eventstore.test_migrations import unguarded_log

    event = append_event()
    with unguarded_log(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eventstore_event SET transaction_id = %s WHERE position = %s",
            [2**40, event.position],
        )
    response = anonymous_client.get("/api/health/")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "restore" in body["database"]
    assert body["followers"]["transaction_ids_ahead"] is True


@pytest.mark.postgres
@pytest.mark.django_db
def test_health_answers_503_naming_a_transaction_that_held_followers_back_too_long(
    anonymous_client, settings
):
    with held_transaction(settings.DATABASE_APPLICATION_NAME) as pid:
        time.sleep(0.3)
        within_limit = anonymous_client.get("/api/health/")
        settings.HEALTH_MAX_HELD_SECONDS = 0.2
        past_limit = anonymous_client.get("/api/health/")

    assert within_limit.status_code == 200
    assert within_limit.json()["followers"]["held"] == "ok"
    assert past_limit.status_code == 503
    body = past_limit.json()
    assert body["status"] == "unavailable"
    followers = body["followers"]
    assert followers["waiting_for"]["pid"] == pid
    assert followers["waiting_for"]["state"] == "idle in transaction"
    assert followers["oldest_transaction_seconds"] >= 0.3
    assert followers["held"].startswith("held back for 0.")
    assert (
        f"pid {pid} (application_name 'order-processing', idle in transaction)"
        in (followers["held"])
    )


@pytest.mark.postgres
@pytest.mark.django_db
def test_health_stays_200_and_shows_another_applications_long_transaction_as_ignored(
    anonymous_client, settings
):
    settings.HEALTH_MAX_HELD_SECONDS = 0.2
    with held_transaction("psql") as pid:
        time.sleep(0.3)
        response = anonymous_client.get("/api/health/")

    assert response.status_code == 200
    followers = response.json()["followers"]
    assert (followers["held"], followers["waiting_for"]) == ("ok", None)
    assert followers["oldest_ignored"]["pid"] == pid
    assert followers["oldest_ignored"]["application_name"] == "psql"
    assert followers["oldest_ignored"]["seconds"] >= 0.3


@pytest.mark.django_db
def test_health_answers_503_when_the_database_is_unreachable(anonymous_client):
    with patch.object(connection, "cursor", side_effect=DatabaseError("connection refused")):
        response = anonymous_client.get("/api/health/")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "DatabaseError" in body["database"]


class Lagging(Subscriber):
    """Reads ThingHappened and is never caught up in these tests: its lag is what was appended."""

    name = "tests.lagging"
    event_types = frozenset({"ThingHappened"})

    def handle(self, event):
        pass


@pytest.fixture
def three_events_behind(subscribe):
    """A subscriber of the events appended here, three events behind the log."""
    subscribe(Lagging())
    for _ in range(3):
        append_event()


@pytest.mark.django_db
def test_health_reports_the_largest_lag_and_stays_200_up_to_the_limit(
    anonymous_client, three_events_behind, settings
):
    settings.HEALTH_MAX_LAG_EVENTS = 3
    time.sleep(0.01)  # so the oldest of them has waited a measurable while

    response = anonymous_client.get("/api/health/")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["subscribers"]) == ("ok", "ok")
    assert body["largest_lag"] == {
        "subscriber": "tests.lagging",
        "partition": 0,
        "events": 3,
        "exact": True,
    }
    assert body["backlog_seconds"] > 0  # the three events wait, shown without a 503
    assert "broker" not in body


@pytest.mark.django_db
def test_health_answers_503_naming_the_partition_when_a_lag_exceeds_the_limit(
    anonymous_client, three_events_behind, settings
):
    settings.HEALTH_MAX_LAG_EVENTS = 2

    response = anonymous_client.get("/api/health/")

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"]) == ("unavailable", "ok")
    # Counted no further than the limit: the number shown is an estimate from log positions.
    lag = body["largest_lag"]
    assert (lag["exact"], lag["events"] >= 3) == (False, True)
    assert body["subscribers"] == (
        f"behind: tests.lagging partition 0 is about {lag['events']} events behind (limit 2)"
    )


@pytest.mark.django_db
def test_health_counts_a_lag_no_further_than_the_limit_and_estimates_it_from_positions(
    anonymous_client, subscribe, settings
):
    settings.HEALTH_MAX_LAG_EVENTS = 4
    subscriber = subscribe(Lagging())
    first = append_event()
    catch_up(subscriber)  # the checkpoint is at the first event
    appended = [append_event() for _ in range(20)]

    with CaptureQueriesContext(connection) as queries:
        response = anonymous_client.get("/api/health/")

    assert response.status_code == 503
    lag = response.json()["largest_lag"]
    assert lag["exact"] is False
    # The positions between the checkpoint and the log's end: here every one is an event.
    assert lag["events"] == appended[-1].position - first.position
    assert any("LIMIT 5" in query["sql"] for query in queries.captured_queries)
    assert not any("COUNT(*) FROM eventstore_event" in q["sql"] for q in queries.captured_queries)


class Calling(EffectSubscriber):
    """Owes a call for each ThingHappened: its calls are owed as they are appended, and its
    checkpoint is a safety net nobody follows in these tests."""

    name = "tests.calling"
    event_types = frozenset({"ThingHappened"})

    def perform(self, event, *, attempt):
        pass


@pytest.mark.django_db
def test_health_leaves_an_effect_subscribers_safety_net_out_of_the_lag(
    anonymous_client, subscribe, settings
):
    settings.HEALTH_MAX_LAG_EVENTS = 2
    subscribe(Calling())
    for _ in range(3):
        append_event()

    response = anonymous_client.get("/api/health/")

    assert response.status_code == 200
    assert response.json()["largest_lag"] is None


@pytest.mark.django_db
def test_health_shows_no_lag_once_subscribers_caught_up(anonymous_client, subscribe):
    subscriber = subscribe(Lagging())
    append_event()
    catch_up(subscriber)

    body = anonymous_client.get("/api/health/").json()

    assert body["largest_lag"]["events"] == 0
    assert body["backlog_seconds"] == 0


@pytest.mark.django_db
def test_health_in_celery_mode_answers_200_when_the_broker_accepts_a_connection(
    anonymous_client, settings
):
    settings.EVENTSTORE_DISPATCH = "celery"
    with patch.object(celery_app, "connection_for_write") as connection_for_write:
        response = anonymous_client.get("/api/health/")

    assert response.status_code == 200
    assert response.json()["broker"] == "ok"
    broker = connection_for_write.return_value.__enter__.return_value
    broker.ensure_connection.assert_called_once_with(
        max_retries=0, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT
    )


@pytest.mark.django_db
def test_health_in_celery_mode_answers_503_naming_an_unreachable_broker(anonymous_client, settings):
    settings.EVENTSTORE_DISPATCH = "celery"
    with patch.object(celery_app, "connection_for_write") as connection_for_write:
        broker = connection_for_write.return_value.__enter__.return_value
        broker.ensure_connection.side_effect = OperationalError("connection refused")
        response = anonymous_client.get("/api/health/")

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"]) == ("unavailable", "ok")
    assert body["broker"] == "unreachable: OperationalError"


@pytest.mark.django_db
def test_health_gives_up_on_a_broker_that_refuses_connections_within_the_timeout(
    anonymous_client, settings
):
    """A real kombu connection to a port nothing listens on: one attempt, no retry sleep."""
    settings.EVENTSTORE_DISPATCH = "celery"
    nothing_listens = f"amqp://guest:guest@{HOST}:{free_port()}//"
    to_nothing = functools.partial(celery_app.connection_for_write, nothing_listens)
    with patch.object(celery_app, "connection_for_write", to_nothing):
        started = time.monotonic()
        response = anonymous_client.get("/api/health/")
        waited = time.monotonic() - started

    assert response.status_code == 503
    assert response.json()["broker"].startswith("unreachable: ")
    assert waited < settings.CELERY_BROKER_CONNECTION_TIMEOUT + 0.5


@pytest.mark.django_db
def test_health_in_celery_mode_reaches_a_running_rabbitmq(anonymous_client, settings):
    missing = rabbitmq_missing(settings.CELERY_BROKER_URL)
    if missing:
        pytest.skip(missing)
    settings.EVENTSTORE_DISPATCH = "celery"

    response = anonymous_client.get("/api/health/")

    assert response.json()["broker"] == "ok"


# --- schema and docs -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_schema_is_served_to_anonymous_callers_and_describes_the_event_log(anonymous_client):
    response = anonymous_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/events/" in schema["paths"]
    assert "/api/events/{event_id}/" in schema["paths"]
    assert "/api/health/" in schema["paths"]


@pytest.mark.django_db
def test_event_log_schema_lists_every_filter_and_the_cursor(anonymous_client):
    response = anonymous_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    parameters = {
        parameter["name"]
        for parameter in response.json()["paths"]["/api/events/"]["get"]["parameters"]
    }
    assert {
        "aggregate_type",
        "aggregate_id",
        "event_type",
        "correlation_id",
        "after_position",
        "recorded_after",
        "recorded_before",
        "cursor",
        "page_size",
    } <= parameters


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_are_served_anonymously_with_local_assets(anonymous_client, url):
    response = anonymous_client.get(url)

    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn.jsdelivr.net" not in page
    assert "unpkg.com" not in page
    assert "/api/schema/" in page


# --- API root ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_root_is_refused_to_anonymous_callers(anonymous_client):
    response = anonymous_client.get("/api/")

    assert response.status_code == 401
    assert "detail" in response.json()


@pytest.mark.django_db
def test_api_root_lists_the_event_log_to_a_token_user(customer_client):
    response = customer_client.get("/api/")

    assert response.status_code == 200
    assert response.json()["events"].endswith("/api/events/")
