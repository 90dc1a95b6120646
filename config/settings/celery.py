"""Celery, in celery mode only (EVENTSTORE_DISPATCH=celery): config/celery.py reads every
CELERY_* setting. Wake-ups travel over the broker, never events: the log stays the truth."""

import os

from config.settings.env import env_float, env_int
from config.settings.eventstore import EVENTSTORE_SWEEP_INTERVAL

# The broker: RabbitMQ by default; redis://127.0.0.1:6379/0 works too.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
# Two queues: "events" (catching partitions up) and "effects" (calls to the outside world), so
# a slow provider never holds up the reactions. A worker started with no -Q serves both.
CELERY_TASK_DEFAULT_QUEUE = "events"
CELERY_TASK_QUEUES = {"events": {}, "effects": {}}
CELERY_TASK_ROUTES = {"eventstore.tasks.make_calls": {"queue": "effects"}}
# A task is acknowledged after it ran, so a worker that dies mid-task leaves it to another;
# each worker process reserves one task at a time.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Seconds a task may run before it is asked to stop (SoftTimeLimitExceeded), then killed.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 30
# Wake-ups need no results.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# A request's commit enqueues its wake-ups: a broker that does not answer costs the request at
# most this many seconds (the wake-up is then left to beat's sweep, and the request succeeds).
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 1.0)
# One attempt to connect per send. Without it kombu, after a refused connection (a broker that
# is down or restarting), sleeps its first retry interval (2 s) before a second attempt,
# whatever the timeout above: every request would then take over 2 s while the broker is down.
# Celery's own reconnection loops (the workers' consumers, beat) pass their retry counts
# explicitly (CELERY_BROKER_CONNECTION_MAX_RETRIES) and are not shortened by this.
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 0}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Database connections are closed by config/celery.py as CONN_MAX_AGE says; Celery's own
# closing of every connection around every task is kept for every this-many tasks only.
CELERY_DB_REUSE_MAX = 1000
# What a task prints (the console email backend's emails) goes to the worker's output as it
# is, not through a logger as warnings.
CELERY_WORKER_REDIRECT_STDOUTS = False
CELERY_BEAT_SCHEDULE = {
    "sweep": {"task": "eventstore.tasks.sweep", "schedule": EVENTSTORE_SWEEP_INTERVAL},
}
