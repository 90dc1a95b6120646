"""What the log holds as its readers see it: recorded events and places in the log.

Plain values with no database access, so that the store, the recorders that read the log and
every subscriber share one definition of an event and of the order followers read it in.
"""

from __future__ import annotations

import uuid
import zlib
from datetime import datetime
from typing import Any, NamedTuple


class LogPoint(NamedTuple):
    """A place in the order followers read the log in: (transaction id, position).

    On PostgreSQL, positions are handed out in insert order but become visible in commit order,
    so a follower that only remembered a position could pass one whose transaction commits a
    moment later. Followers read in (transaction_id, position) order instead, and only events
    whose transaction id lies below every transaction still running
    (`PostgresRecorder.follow_condition`): an event that is not visible yet always sorts after
    every point a follower has reached. On SQLite every transaction id is 0: the single writer
    commits positions in order.
    """

    transaction_id: int
    position: int

    def __str__(self) -> str:
        if self.transaction_id:
            return f"{self.position} (transaction {self.transaction_id})"
        return str(self.position)

    @classmethod
    def of(cls, value: Any) -> LogPoint:
        """A point from its stored form: [transaction id, position], or a bare position (the
        form from before transaction ids, whose events all have transaction id 0)."""
        if isinstance(value, int):
            return cls(0, value)
        transaction_id, position = value
        return cls(int(transaction_id), int(position))


START = LogPoint(0, 0)

# The metadata keys that carry an event's W3C trace context (`eventstore.observability.tracing`).
TRACE_KEYS = ("traceparent", "tracestate")
# What an event hands on to the events it causes, besides its correlation: the id of the HTTP
# request that started the chain (config.middleware.RequestIdMiddleware), and the trace.
CARRIED_KEYS = ("request_id", *TRACE_KEYS)


class RecordedEvent(NamedTuple):
    """A stored event as readers see it: payload already upcast to the newest schema version.

    Its fields name the event table's columns that every read selects, in this order (see
    `Recorder`). A named tuple rather than a frozen dataclass: replays build one per event, and
    a tuple is built four times faster.
    """

    position: int
    event_id: uuid.UUID
    aggregate_type: str
    aggregate_id: str
    version: int
    event_type: str
    schema_version: int
    payload: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime
    # With position, its place in the order followers read the log in (`log_point`).
    transaction_id: int = 0

    @property
    def log_point(self) -> LogPoint:
        """Where this event lies in the order followers read the log in."""
        return LogPoint(self.transaction_id, self.position)

    def partition(self, partitions: int) -> int:
        """The partition this event falls in when a subscriber is split into `partitions`."""
        return partition_hash(self.metadata, self.aggregate_id) % partitions

    @property
    def correlation_id(self) -> str | None:
        """The id of the business transaction (the order) this event belongs to."""
        return self.metadata.get("correlation_id")

    def caused_metadata(self, actor: str) -> dict[str, Any]:
        """Metadata for an event this one caused: the same correlation (and request id and
        trace, when this one carries them), this event as the cause."""
        metadata = {"causation_id": str(self.event_id), "actor": actor}
        if self.correlation_id:
            metadata["correlation_id"] = self.correlation_id
        for key in CARRIED_KEYS:
            if key in self.metadata:
                metadata[key] = self.metadata[key]
        return metadata


# What an API or the admin shows of an event, in this order: every field readers see but the
# transaction id, which only orders followers.
SHOWN_FIELDS = tuple(name for name in RecordedEvent._fields if name != "transaction_id")


def stored_correlation_id(metadata: dict[str, Any]) -> str:
    """The indexed copy of the metadata's correlation id ("" when there is none)."""
    value = metadata.get("correlation_id")
    return "" if value is None else str(value)[:128]


def partition_hash(metadata: dict[str, Any], aggregate_id: str) -> int:
    """The stored hash of an event's partition key: its correlation id (the order, for
    everything a saga does), else its aggregate id. Events of one key share a partition, so a
    partitioned subscriber handles them in log order. Stable across processes and versions
    (CRC-32), non-negative and within a 32-bit signed integer column."""
    key = stored_correlation_id(metadata) or str(aggregate_id)
    return zlib.crc32(key.encode()) & 0x7FFFFFFF
