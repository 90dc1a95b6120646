"""Metrics settings: the database through django-prometheus on demand, and the counts of
several processes summed in multiprocess mode."""

import pytest

from tests.config.test_settings import load_settings

ENGINE = "from config import settings as s; print(s.DATABASES['default']['ENGINE'])"

APPEND_ONE = (
    "from types import SimpleNamespace as E; "
    "from eventstore.observability.metrics import count_appended; "
    "count_appended([E(aggregate_type='thing', event_type='Measured')])"
)
SUM = (
    "from eventstore.observability import metrics; "
    "print(metrics.scrape_registry(collectors=())"
    ".get_sample_value('eventstore_events_appended_total', "
    "{'aggregate_type': 'thing', 'event_type': 'Measured'}))"
)


@pytest.mark.parametrize(
    ("url", "engine"),
    [
        ("sqlite:////tmp/metrics.sqlite3", "django_prometheus.db.backends.sqlite3"),
        ("postgres://u@localhost:5432/orders", "django_prometheus.db.backends.postgresql"),
    ],
)
def test_metrics_database_runs_the_database_through_django_prometheus(url, engine):
    plain = load_settings(code=ENGINE, DEBUG="1", DATABASE_URL=url)
    measured = load_settings(code=ENGINE, DEBUG="1", DATABASE_URL=url, METRICS_DATABASE="1")

    assert plain.stdout.strip() == engine.replace("django_prometheus", "django")
    assert measured.stdout.strip() == engine


def test_a_scrape_sums_the_counts_of_every_process_sharing_the_multiprocess_directory(tmp_path):
    for _ in range(2):
        appended = load_settings(code=APPEND_ONE, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
        assert appended.returncode == 0, appended.stderr

    scraped = load_settings(code=SUM, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))

    assert scraped.returncode == 0, scraped.stderr
    assert scraped.stdout.strip() == "2.0"
