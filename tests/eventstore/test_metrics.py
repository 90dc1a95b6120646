"""The event store's Prometheus series, and GET /metrics."""

import time
from types import SimpleNamespace

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from eventstore.follower.subscriptions import Subscriber, catch_up
from eventstore.observability.metrics import scrape_registry
from eventstore.recorders import recorder
from eventstore.store import NewEvent
from tests.processes import held_transaction

APPENDED = "eventstore_events_appended_total"
THING = {"aggregate_type": "thing", "event_type": "MetricMeasured"}


def appended(labels=THING):
    return REGISTRY.get_sample_value(APPENDED, labels) or 0.0


class Failing(Subscriber):
    """Raises on every event it reads."""

    name = "tests.metrics.failing"
    event_types = frozenset({"MetricMeasured"})

    def handle(self, event):
        raise RuntimeError("cannot measure")


def measure(store, n=1, stream="t1"):
    return store.append_to_stream(
        "thing", stream, [NewEvent("MetricMeasured", {}) for _ in range(n)]
    )


@pytest.mark.django_db
def test_appended_events_are_counted_by_type_once_their_transaction_commits(
    store, django_capture_on_commit_callbacks
):
    before = appended()
    with django_capture_on_commit_callbacks(execute=True):
        measure(store, 3)
        assert appended() == before  # not yet committed

    assert appended() == before + 3


@pytest.mark.django_db
def test_an_append_that_rolls_back_counts_nothing_and_a_repeated_event_id_counts_once(
    store, django_capture_on_commit_callbacks
):
    before = appended()
    event = NewEvent("MetricMeasured", {})
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            store.append_to_stream("thing", "t1", [event])
            raise RuntimeError("rolled back")
        store.append_to_stream("thing", "t1", [event])
        store.append_to_stream("thing", "t1", [event])  # already stored: nothing inserted

    assert appended() == before + 1


@pytest.mark.django_db
def test_each_failed_handling_counts_as_a_subscriber_error(store, subscribe):
    subscriber = subscribe(Failing())
    labels = {"subscriber": subscriber.name}
    before = REGISTRY.get_sample_value("eventstore_subscriber_errors_total", labels) or 0.0
    measure(store)

    catch_up(subscriber)
    catch_up(subscriber)

    after = REGISTRY.get_sample_value("eventstore_subscriber_errors_total", labels)
    assert after == before + 2


@pytest.mark.django_db
def test_lag_and_parked_partitions_are_read_at_scrape_time(store, subscribe, settings):
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False
    subscriber = subscribe(Failing())
    lag = {"subscriber": subscriber.name, "partition": "0"}
    parked_before = scrape_registry().get_sample_value("eventstore_subscribers_parked")
    assert scrape_registry().get_sample_value("eventstore_subscriber_lag_events", lag) == 0

    measure(store, 2)
    assert scrape_registry().get_sample_value("eventstore_subscriber_lag_events", lag) == 2

    catch_up(subscriber)  # stops on the first event, its error recorded
    registry = scrape_registry()
    assert registry.get_sample_value("eventstore_subscriber_lag_events", lag) == 2
    assert registry.get_sample_value("eventstore_subscribers_parked") == parked_before + 1


# --- GET /metrics ---------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # each scrape reads pg_stat_activity afresh
def test_the_age_of_the_oldest_transaction_followers_wait_for_is_read_at_scrape_time(settings):
    held = "eventstore_followers_held_seconds"
    assert scrape_registry().get_sample_value(held) == 0
    with held_transaction("psql"):
        time.sleep(0.2)
        assert scrape_registry().get_sample_value(held) == 0  # not waited for
    with held_transaction(settings.DATABASE_APPLICATION_NAME):
        time.sleep(0.2)
        assert scrape_registry().get_sample_value(held) >= 0.2


@pytest.mark.django_db
def test_metrics_answer_staff_in_the_prometheus_text_format(staff_client):
    response = staff_client.get("/metrics", HTTP_ACCEPT="text/plain;version=0.0.4;q=0.3")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert "# TYPE eventstore_subscriber_lag_events gauge" in text
    assert "django_http_requests_total_by_method_total" in text


@pytest.mark.django_db
def test_metrics_answer_a_staff_session_too(client, staff_user):
    client.force_login(staff_user)

    assert client.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_metrics_refuse_anonymous_and_customer_clients(anonymous_client, customer_client):
    assert anonymous_client.get("/metrics").status_code == 401
    assert customer_client.get("/metrics").status_code == 403


@pytest.mark.django_db
def test_metrics_answer_anyone_when_public(anonymous_client, settings):
    settings.METRICS_PUBLIC = True

    assert anonymous_client.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_multiprocess_mode_sums_the_files_of_every_process(tmp_path, monkeypatch):
    from prometheus_client import multiprocess

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    collectors = []
    monkeypatch.setattr(
        multiprocess, "MultiProcessCollector", lambda registry: collectors.append(registry)
    )

    registry = scrape_registry()

    assert collectors == [registry]
    assert registry.get_sample_value("eventstore_subscribers_parked") is not None


def test_gunicorn_forgets_an_exited_workers_live_gauges_in_multiprocess_mode(tmp_path, monkeypatch):
    from config import gunicorn

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    (tmp_path / "counter_4242.db").write_bytes(b"")

    gunicorn.child_exit(None, SimpleNamespace(pid=4242))

    assert sorted(path.name for path in tmp_path.iterdir()) == ["counter_4242.db"]


@pytest.mark.django_db
def test_a_database_error_at_scrape_time_costs_only_the_series_read_from_it(monkeypatch, subscribe):
    from django.db import OperationalError

    def unreachable(*args, **kwargs):
        raise OperationalError("database unreachable")

    # A subscriber's lag is read by the recorder's query; the sagas' states by the ORM.
    subscribe(Failing())
    monkeypatch.setattr(type(recorder()), "partition_lags", unreachable)

    registry = scrape_registry()

    assert registry.get_sample_value("eventstore_subscribers_parked") is None
    assert registry.get_sample_value("saga_instances", {"state": "running"}) == 0


@pytest.mark.django_db
def test_the_backlog_is_read_at_scrape_time(store, subscribe):
    class Waiting(Subscriber):
        name = "tests.metrics.waiting"
        event_types = frozenset({"MetricMeasured"})

        def handle(self, event):
            pass

    subscriber = subscribe(Waiting())
    assert scrape_registry().get_sample_value("eventstore_backlog_seconds") == 0
    measure(store)
    time.sleep(0.01)

    assert scrape_registry().get_sample_value("eventstore_backlog_seconds") >= 0.01

    catch_up(subscriber)
    assert scrape_registry().get_sample_value("eventstore_backlog_seconds") == 0
