"""Aggregates and the repository: state from events, versioned saves, snapshots, retries."""

from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection

from eventstore.aggregates import (
    Aggregate,
    AggregateNotFound,
    Repository,
    UnknownEventError,
    applies,
    retry_on_conflict,
)
from eventstore.models import Event, Snapshot
from eventstore.store import ConcurrencyError, NewEvent

pytestmark = pytest.mark.django_db


class NotEnoughStock(Exception):
    pass


class Bin(Aggregate):
    """A stock bin used to exercise the base class."""

    aggregate_type = "bin"

    def __init__(self, aggregate_id):
        super().__init__(aggregate_id)
        self.units = 0
        self.history = []

    def add(self, units):
        self.record("UnitsAdded", {"units": units})

    def take(self, units):
        if units > self.units:
            raise NotEnoughStock(units)
        self.record("UnitsTaken", {"units": units})

    @applies("UnitsAdded")
    def _added(self, payload):
        self.units += payload["units"]
        self.history.append(payload["units"])

    @applies("UnitsTaken")
    def _taken(self, payload):
        self.units -= payload["units"]
        self.history.append(-payload["units"])


class PricedBin(Bin):
    """Subclass: inherits its parent's appliers and adds its own."""

    aggregate_type = "priced_bin"

    @applies("Priced")
    def _priced(self, payload):
        self.price = payload["price"]


@pytest.fixture
def bins():
    return Repository(Bin, snapshot_every=0)


def test_recorded_events_change_state_and_are_saved_with_versions(bins):
    bin_ = bins.new("b1")
    bin_.add(5)
    bin_.take(2)

    assert (bin_.units, bin_.version, bin_.loaded_version) == (3, 2, 0)
    recorded = bins.save(bin_)

    assert [(e.event_type, e.version) for e in recorded] == [("UnitsAdded", 1), ("UnitsTaken", 2)]
    assert bin_.pending_events == [] and bin_.loaded_version == 2


def test_loaded_state_comes_only_from_events(bins):
    bin_ = bins.new("b1")
    bin_.add(5)
    bin_.take(2)
    bins.save(bin_)

    loaded = bins.load("b1")

    assert (loaded.units, loaded.history, loaded.version) == (3, [5, -2], 2)


def test_a_rule_broken_by_a_command_records_nothing(bins):
    bin_ = bins.new("b1")
    bin_.add(1)
    bins.save(bin_)

    with pytest.raises(NotEnoughStock):
        bin_.take(2)

    assert bin_.pending_events == []
    assert bins.save(bin_) == []


def test_a_stale_aggregate_cannot_be_saved(bins):
    bin_ = bins.new("b1")
    bin_.add(5)
    bins.save(bin_)
    first, second = bins.load("b1"), bins.load("b1")
    first.take(5)
    bins.save(first)
    second.take(5)

    with pytest.raises(ConcurrencyError) as caught:
        bins.save(second)

    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert bins.load("b1").units == 0
    assert Event.objects.count() == 2


def test_saving_several_aggregates_is_all_or_nothing(bins):
    stale = bins.new("b2")
    stale.add(1)
    bins.save(stale)
    stale_copy = bins.load("b2")
    stale.add(1)
    bins.save(stale)
    fresh = bins.new("b1")
    fresh.add(3)
    stale_copy.add(1)

    with pytest.raises(ConcurrencyError):
        bins.save(fresh, stale_copy)

    assert not Event.objects.filter(aggregate_id="b1").exists()


def test_save_adds_metadata_to_every_event(bins):
    bin_ = bins.new("b1")
    bin_.add(1)
    bin_.add(2)

    bins.save(bin_, metadata={"correlation_id": "order-1", "actor": "staff"})

    metadata = list(Event.objects.values_list("metadata", flat=True))
    assert metadata == [{"correlation_id": "order-1", "actor": "staff"}] * 2


def test_loading_a_missing_aggregate_raises_but_load_or_new_gives_a_fresh_one(bins):
    with pytest.raises(AggregateNotFound, match="bin/nope"):
        bins.load("nope")

    fresh = bins.load_or_new("nope")
    assert (fresh.units, fresh.version) == (0, 0)


def test_an_event_the_aggregate_cannot_apply_raises(bins, store):
    store.append_to_stream("bin", "b1", [NewEvent("SomethingElse", {})])

    with pytest.raises(UnknownEventError, match="SomethingElse"):
        bins.load("b1")


def test_subclasses_inherit_appliers_and_payloads_apply_as_stored():
    bin_ = PricedBin("p1")
    bin_.add(2)
    bin_.record("Priced", {"price": Decimal("2.50")})

    # The live state sees the payload as it will read back from the log.
    assert (bin_.units, bin_.price) == (2, "2.50")
    with pytest.raises(UnknownEventError, match="Priced"):
        Bin("b1").record("Priced", {"price": "1"})


def test_snapshots_are_taken_every_n_events():
    bins = Repository(Bin, snapshot_every=3)
    bin_ = bins.new("b1")
    for _ in range(2):
        bin_.add(1)
    bins.save(bin_)
    assert not Snapshot.objects.exists()

    for _ in range(5):
        bin_.add(1)
    bins.save(bin_)

    snapshot = Snapshot.objects.get(aggregate_type="bin", aggregate_id="b1")
    assert snapshot.version == 7
    assert snapshot.state == {"units": 7, "history": [1] * 7}


def test_load_with_a_snapshot_equals_a_full_replay_and_reads_only_later_events(store):
    bins = Repository(Bin, snapshot_every=4)
    bin_ = bins.new("b1")
    for units in range(1, 11):
        bin_.add(units)
        if units % 3 == 0:
            bin_.take(1)
        bins.save(bin_)

    reads = []
    real_read = store.read_for_load

    def read(*args, **kwargs):
        reads.append(real_read(*args, **kwargs))
        return reads[-1]

    with mock.patch.object(store, "read_for_load", side_effect=read):
        from_snapshot = bins.load("b1")
    replayed = bins.load("b1", use_snapshot=False)

    snapshot_version = Snapshot.objects.get().version
    assert 0 < snapshot_version < from_snapshot.version
    [[(snapshot, later)]] = reads
    assert snapshot[0] == snapshot_version
    assert [version for version, _, _ in later] == list(
        range(snapshot_version + 1, from_snapshot.version + 1)
    )
    assert vars(from_snapshot) == vars(replayed)


def test_a_snapshot_of_an_older_state_format_is_ignored(store):
    bins = Repository(Bin, snapshot_every=2)
    bin_ = bins.new("b1")
    bin_.add(1)
    bin_.add(1)
    bins.save(bin_)
    Snapshot.objects.update(state_version=0, state={"units": 999, "history": []})

    assert bins.load("b1").units == 2


def test_snapshot_every_defaults_to_the_setting(settings):
    settings.EVENTSTORE_SNAPSHOT_EVERY = 2
    bins = Repository(Bin)
    bin_ = bins.new("b1")
    bin_.add(1)
    bin_.add(1)
    bins.save(bin_)

    assert bins.snapshot_every == 2
    assert Snapshot.objects.get().version == 2


def test_retry_on_conflict_reloads_and_decides_again(bins, store):
    bin_ = bins.new("b1")
    bin_.add(3)
    bins.save(bin_)
    calls = []

    @retry_on_conflict(attempts=3)
    def take_one():
        loaded = bins.load("b1")
        if not calls:
            # Another writer changes the stream between this load and save.
            other = bins.load("b1")
            other.take(1)
            bins.save(other)
        calls.append(loaded.units)
        loaded.take(1)
        bins.save(loaded)

    take_one()

    assert calls == [3, 2]
    assert bins.load("b1").units == 1


def test_retry_on_conflict_gives_up_after_the_attempts(settings):
    settings.EVENTSTORE_COMMAND_RETRIES = 4
    calls = []

    @retry_on_conflict
    def always_conflicts():
        calls.append(1)
        raise ConcurrencyError("bin", "b1", 1, 2)

    with pytest.raises(ConcurrencyError):
        always_conflicts()
    assert len(calls) == 4


@pytest.mark.django_db(transaction=True)
def test_retry_on_conflict_decides_again_holding_the_appenders_lock(monkeypatch):
    # The first attempt is optimistic; later ones take the lock before they load, so no other
    # writer can move the stream between their load and their append.
    locked = []
    monkeypatch.setattr(
        "eventstore.store.EventStore.lock_appends",
        lambda self=None: locked.append(connection.in_atomic_block),
    )
    attempts = []

    @retry_on_conflict(attempts=3)
    def conflicts_once():
        attempts.append((connection.in_atomic_block, len(locked)))
        if len(attempts) == 1:
            raise ConcurrencyError("bin", "b1", 1, 2)
        return "decided"

    assert conflicts_once() == "decided"
    assert attempts == [(False, 0), (True, 1)]
    assert locked == [True]
