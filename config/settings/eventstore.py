"""The event store: snapshots and batches, appends, subscribers' partitions and how reactions
run (EVENTSTORE_DISPATCH), calls to the outside world, the health check and admission."""

import os

from django.core.exceptions import ImproperlyConfigured

from config.settings.env import env_flag, env_float, env_int

# Take a snapshot of an aggregate every N events; loading costs the snapshot plus < N events.
EVENTSTORE_SNAPSHOT_EVERY = env_int("EVENTSTORE_SNAPSHOT_EVERY", 25)
# Events read per query when replaying.
EVENTSTORE_BATCH_SIZE = env_int("EVENTSTORE_BATCH_SIZE", 500)
# Events a subscriber handles per transaction when catching up. Short: on PostgreSQL every
# other follower waits for the oldest running transaction of the project, so under a backlog
# long batches leave workers idle (BENCHMARKS.md, Overload).
EVENTSTORE_HANDLE_BATCH_SIZE = env_int("EVENTSTORE_HANDLE_BATCH_SIZE", 50)
# Wake subscribers after each commit; off, only `manage.py process_events` delivers.
EVENTSTORE_DISPATCH_ON_COMMIT = env_flag("EVENTSTORE_DISPATCH_ON_COMMIT", True)
# PostgreSQL: how long an append waits for a lock (a replay holding the log, another writer of
# the same stream version) before failing with AppendTimeout.
EVENTSTORE_LOCK_TIMEOUT_MS = env_int("EVENTSTORE_LOCK_TIMEOUT_MS", 5000)
# PostgreSQL: every append takes the log table's EXCLUSIVE lock until commit, as before appends
# ran concurrently. Off by default; the benchmark turns it on to compare the two designs.
EVENTSTORE_APPEND_LOCK = env_flag("EVENTSTORE_APPEND_LOCK", False)
# PostgreSQL: how long a commit's wake-up waits, at most, for older transactions still running
# to end, so that the subscribers it wakes can read its events (eventstore.subscriptions).
EVENTSTORE_FOLLOW_WAIT = env_float("EVENTSTORE_FOLLOW_WAIT", 2.0)
# How many times a command handler reloads and decides again after a ConcurrencyError.
EVENTSTORE_COMMAND_RETRIES = env_int("EVENTSTORE_COMMAND_RETRIES", 5)
# Calls to the outside world (eventstore/effects.py): calls of one effect before it is parked,
# the wait before the first retry in seconds (doubling each time, up to the cap), and how long
# a call may run before another worker takes it over (longer than any provider's timeout).
EVENTSTORE_EFFECT_ATTEMPTS = env_int("EVENTSTORE_EFFECT_ATTEMPTS", 5)
EVENTSTORE_EFFECT_BACKOFF = env_float("EVENTSTORE_EFFECT_BACKOFF", 2.0)
EVENTSTORE_EFFECT_BACKOFF_MAX = env_float("EVENTSTORE_EFFECT_BACKOFF_MAX", 300.0)
EVENTSTORE_EFFECT_LEASE = env_float("EVENTSTORE_EFFECT_LEASE", 60.0)

# Partitioned subscribers and how reactions run (eventstore/subscriptions.py, eventstore/tasks.py).
# Each subscriber's work is split into this many partitions by the key stored with each event
# (its correlation id, else its aggregate id): events of one key are handled in log order, and
# different partitions at once by different processes. 1 keeps a single checkpoint per
# subscriber; 16 suits a pool of Celery workers. Every process of one database must agree.
EVENTSTORE_PARTITIONS = env_int("EVENTSTORE_PARTITIONS", 1)
# inline: after a commit the request's own thread catches the subscribers up (no broker).
# celery: after a commit the touched partitions are woken by tasks on CELERY_BROKER_URL, and
# `celery -A config worker` catches them up; `celery -A config beat` sweeps for lost wake-ups.
EVENTSTORE_DISPATCH = os.environ.get("EVENTSTORE_DISPATCH", "inline")
if EVENTSTORE_DISPATCH not in ("inline", "celery"):
    raise ImproperlyConfigured(
        f"EVENTSTORE_DISPATCH must be inline or celery, not {EVENTSTORE_DISPATCH!r}"
    )
if EVENTSTORE_PARTITIONS < 1:
    raise ImproperlyConfigured("EVENTSTORE_PARTITIONS must be at least 1")
# Seconds between beat's sweeps: wake every partition whose backlog has waited that long, ask
# for the calls to the outside world due as long, and run the worker-pass housekeeping (overdue
# saga steps).
EVENTSTORE_SWEEP_INTERVAL = env_float("EVENTSTORE_SWEEP_INTERVAL", 5.0)

# The health check (GET /api/health/) answers 503 when a subscriber partition is more than this
# many events behind the log.
HEALTH_MAX_LAG_EVENTS = env_int("HEALTH_MAX_LAG_EVENTS", 10000)
# On PostgreSQL it also answers 503 when a transaction followers wait for (one of the
# project's, see DATABASE_APPLICATION_NAME) has run longer than this many seconds.
HEALTH_MAX_HELD_SECONDS = env_float("HEALTH_MAX_HELD_SECONDS", 30.0)

# New orders are refused (429 with Retry-After, nothing written) while the oldest work not yet
# started (an event a subscriber has yet to handle, a call owed and not begun) has waited longer
# than this many seconds: overload is met at the door (eventstore.admission). 0: never refused.
ADMISSION_MAX_BACKLOG_SECONDS = env_float("ADMISSION_MAX_BACKLOG_SECONDS", 10.0)
