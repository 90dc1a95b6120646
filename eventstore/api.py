"""What the services build on: the one module of the event store they import (an import-linter
contract in pyproject.toml holds them to it). Everything else in the package is its inside, free
to move. docs/EVENTSTORE.md explains each part.

Import it once the apps are loaded (from a service's modules, or inside `AppConfig.ready`): it
brings the event store's models with it.
"""

from eventstore import rows, signals
from eventstore.admin import (
    ReadOnlyAdmin,
    admin_links,
    admin_url,
    correlated_events_url,
    pretty_json,
    stream_events_url,
)
from eventstore.aggregates import (
    Aggregate,
    AggregateNotFound,
    Repository,
    UnknownEventError,
    applies,
    derived_event_id,
    load_together,
    retry_on_conflict,
    unit_of_work,
)
from eventstore.follower.admission import Overloaded, admit
from eventstore.follower.dispatch import reactions_run_later
from eventstore.follower.effects import (
    EffectSubscriber,
    RequestProgress,
    Withdrawal,
    owe_calls,
    requests_progress,
    require_no_transaction,
)
from eventstore.follower.subscriptions import Subscriber, register_subscriber
from eventstore.http.filters import StorableDateTimeFilter
from eventstore.http.pagination import PositionCursorPagination
from eventstore.http.serializers import EventOutputSerializer
from eventstore.management.helpers import add_dry_run, write_dry_run
from eventstore.models import Event
from eventstore.observability import tracing
from eventstore.observability.logs import set_correlation_id
from eventstore.observability.metrics import register_collector
from eventstore.projections import Projection, register_projection
from eventstore.recorders.connections import connection_lost, on_commit_robust
from eventstore.records import RecordedEvent
from eventstore.store import AppendTimeout, ConcurrencyError, NewEvent, event_store
from eventstore.upcasting import register_upcaster
from eventstore.vault import (
    vault_describe,
    vault_describer_register,
    vault_erase,
    vault_put,
    vault_retain,
    vault_take,
)

__all__ = [
    "Aggregate",
    "AggregateNotFound",
    "AppendTimeout",
    "ConcurrencyError",
    "EffectSubscriber",
    "Event",
    "EventOutputSerializer",
    "NewEvent",
    "Overloaded",
    "PositionCursorPagination",
    "Projection",
    "ReadOnlyAdmin",
    "RecordedEvent",
    "Repository",
    "RequestProgress",
    "StorableDateTimeFilter",
    "Subscriber",
    "UnknownEventError",
    "Withdrawal",
    "add_dry_run",
    "admin_links",
    "admin_url",
    "admit",
    "applies",
    "connection_lost",
    "correlated_events_url",
    "derived_event_id",
    "event_store",
    "load_together",
    "on_commit_robust",
    "owe_calls",
    "pretty_json",
    "reactions_run_later",
    "register_collector",
    "register_projection",
    "register_subscriber",
    "register_upcaster",
    "requests_progress",
    "require_no_transaction",
    "retry_on_conflict",
    "rows",
    "set_correlation_id",
    "signals",
    "stream_events_url",
    "tracing",
    "unit_of_work",
    "vault_describe",
    "vault_describer_register",
    "vault_erase",
    "vault_put",
    "vault_retain",
    "vault_take",
    "write_dry_run",
]
