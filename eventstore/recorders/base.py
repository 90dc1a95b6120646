"""`Recorder`: the event store's statements as every database runs them as written (SQLite's
dialect), built once from the models' `_meta`. Each part of them is a module of its own: the
events and the stream index that moves with them (events.py), subscribers' checkpoints
(checkpoints.py), owed calls (effects.py), snapshots (snapshots.py), read-model copies for
rebuilds (shadows.py), on what they share
(tables.py). What one database does differently is a subclass in a module of its own
(sqlite.py, postgres.py)."""

from __future__ import annotations

from eventstore.recorders.checkpoints import CheckpointRecorder
from eventstore.recorders.effects import EffectRecorder
from eventstore.recorders.shadows import ShadowRecorder
from eventstore.recorders.snapshots import SnapshotRecorder


class Recorder(ShadowRecorder, CheckpointRecorder, EffectRecorder, SnapshotRecorder):
    """The event store's statements for one kind of database, built once (see `recorder()`).

    This class runs them as SQLite does; a subclass overrides what its database does otherwise.
    """
