"""The Celery application of celery mode (EVENTSTORE_DISPATCH=celery), in the layout Celery
documents for Django: every CELERY_* setting configures it, and each app's tasks.py is found
(the event store's is eventstore/follower/tasks.py).

    celery -A config worker    catches partitions up and makes calls to the outside world
                               (serves every queue declared in CELERY_TASK_QUEUES)
    celery -A config beat      sends the periodic sweep (CELERY_BEAT_SCHEDULE)

Database connections live as long as CONN_MAX_AGE says, as they do for requests: before and
after each task, Django's `close_old_connections` closes those that are too old or broken.
(Celery's own Django support would close every connection around every task, so each task,
however short, would open a new one; CELERY_DB_REUSE_MAX in the settings turns that off.)
"""

import os

from celery import Celery
from celery.signals import beat_init, task_postrun, task_prerun, worker_init
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["eventstore.follower"])


@worker_init.connect
@beat_init.connect
def setup_telemetry(**kwargs) -> None:
    """Traces in workers and beat, when the OTEL_* environment asks for them (a prefork
    worker's children inherit them; the SDK restarts its export thread in each)."""
    from config.telemetry import setup

    setup()


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(**kwargs) -> None:
    """Around each task, as around each request: close connections past CONN_MAX_AGE."""
    close_old_connections()
