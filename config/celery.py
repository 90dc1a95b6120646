"""The Celery application of celery mode (EVENTSTORE_DISPATCH=celery), in the layout Celery
documents for Django: every CELERY_* setting configures it, and each app's tasks.py is found.

    celery -A config worker    catches partitions up and makes calls to the outside world
                               (serves every queue declared in CELERY_TASK_QUEUES)
    celery -A config beat      sends the periodic sweep (CELERY_BEAT_SCHEDULE)
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
