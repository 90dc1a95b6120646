"""The in-process bus.

`events_recorded` is sent inside the appending transaction (inline projections listen; if one
raises, the append rolls back). `events_committed` is sent after that transaction commits, and
never for one that rolled back; it wakes the checkpointed subscribers, which then read the log
from their own checkpoints. Both send `events`: a list of `RecordedEvent`.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)

# Cached receiver lists: both are sent for every append, always by the EventStore class.
events_recorded = Signal(use_caching=True)
events_committed = Signal(use_caching=True)

# Sent after each pass of the worker loop (`manage.py process_events`) and each sweep of
# celery mode's beat, by `run_worker_pass`; apps connect housekeeping that must run even when
# no event arrives (e.g. the saga's step timeouts).
worker_pass = Signal()


def run_worker_pass(sender: Any) -> list[tuple[Callable[..., Any], Exception]]:
    """Send `worker_pass`: every receiver runs though another fails; each failure is logged
    and returned, as (receiver, error)."""
    failures = []
    for receiver, outcome in worker_pass.send_robust(sender=sender):
        if isinstance(outcome, Exception):
            logger.error("worker_pass receiver %r failed", receiver, exc_info=outcome)
            failures.append((receiver, outcome))
    return failures
