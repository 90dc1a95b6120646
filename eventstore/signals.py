"""The in-process bus.

`events_recorded` is sent inside the appending transaction (inline projections listen; if one
raises, the append rolls back). `events_committed` is sent after that transaction commits, and
never for one that rolled back; it wakes the checkpointed subscribers, which then read the log
from their own checkpoints. Both send `events`: a list of `RecordedEvent`.
"""

from django.dispatch import Signal

# Cached receiver lists: both are sent for every append, always by the EventStore class.
events_recorded = Signal(use_caching=True)
events_committed = Signal(use_caching=True)

# Sent by `manage.py process_events` after each catch-up pass; apps connect
# housekeeping that must run even when no event arrives (e.g. the saga's step timeouts).
worker_pass = Signal()
