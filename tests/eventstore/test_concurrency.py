"""Real concurrency: threads with their own database connections and real commits."""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from eventstore.aggregates import Repository, retry_on_conflict
from eventstore.follower.subscriptions import catch_up
from eventstore.models import Event
from eventstore.records import START
from eventstore.store import (
    AppendTimeout,
    ConcurrencyError,
    EventStore,
    NewEvent,
    StreamAppend,
    event_store,
)
from tests.eventstore.test_aggregates import Bin, NotEnoughStock
from tests.eventstore.test_subscriptions import Noter, notes
from tests.threads import holding_the_log_lock, run_threads

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_writers_appending_the_same_version_exactly_one_wins():
    outcomes = []

    def append(index):
        try:
            event_store.append_to_stream(
                "thing", "contended", [NewEvent("Claimed", {"by": index})], expected_version=0
            )
            outcomes.append("won")
        except ConcurrencyError as error:
            outcomes.append(("lost", error.expected, error.actual))

    run_threads(append, 2)

    assert sorted(outcomes, key=str) == [("lost", 0, 1), "won"]
    assert Event.objects.filter(aggregate_id="contended").count() == 1


def test_concurrent_appenders_and_a_follower_never_skip_an_event():
    done = threading.Event()
    seen = []

    def append(index):
        for round_ in range(40):
            event_store.append_to_stream(
                "thing", f"w{index}", [NewEvent("Tick", {"round": round_})] * 1
            )

    def follow():
        after = START
        try:
            while True:
                finished = done.is_set()
                for event in event_store.read_new(after, limit=50):
                    seen.append(event)
                    after = event.log_point
                if finished:
                    return
                time.sleep(0.001)
        finally:
            connections.close_all()

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        run_threads(append, 4)
    finally:
        done.set()
        follower.join(timeout=120)

    stored = list(Event.objects.order_by("position").values_list("position", flat=True))
    assert len(stored) == 160
    assert sorted(event.position for event in seen) == stored  # each once, none skipped
    for index in range(4):
        rounds = [e.payload["round"] for e in seen if e.aggregate_id == f"w{index}"]
        assert rounds == list(range(40))


def test_concurrent_commands_with_retries_never_take_more_than_there_is():
    bins = Repository(Bin, snapshot_every=0)
    stock = bins.new("hot")
    stock.add(10)
    bins.save(stock)
    taken = []

    @retry_on_conflict(attempts=50)
    def take_one():
        current = bins.load("hot")
        current.take(1)
        bins.save(current)

    def customer(index):
        for _ in range(3):
            try:
                take_one()
                taken.append(index)
            except NotEnoughStock:
                pass

    run_threads(customer, 6)

    assert len(taken) == 10
    assert bins.load("hot").units == 0


def test_concurrent_catch_ups_of_one_subscriber_handle_each_event_once(subscribe, settings):
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False
    noter = subscribe(Noter())
    positions = [
        event_store.append_to_stream("thing", "t1", [NewEvent("ThingHappened", {"n": i})])[
            0
        ].position
        for i in range(30)
    ]

    run_threads(lambda index: catch_up(noter, batch_size=4), 3)

    assert notes() == positions


@pytest.mark.postgres
def test_appenders_wait_for_the_log_lock_and_give_up_after_the_lock_timeout(settings):
    settings.EVENTSTORE_LOCK_TIMEOUT_MS = 200

    with holding_the_log_lock():
        # Readers pass the lock ...
        assert list(event_store.read_all()) == []
        # ... appenders time out on it and write nothing.
        with pytest.raises(AppendTimeout, match="lock timeout"):
            event_store.append_to_stream("thing", "t1", [NewEvent("Blocked", {})])

    assert not Event.objects.exists()
    assert connection.vendor == "postgresql"


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("server_side_binding", [False, True])
def test_the_log_lock_and_its_timeout_hold_until_the_transaction_ends(
    settings, monkeypatch, server_side_binding
):
    settings.EVENTSTORE_LOCK_TIMEOUT_MS = 1234
    options = connection.settings_dict["OPTIONS"]
    monkeypatch.setitem(options, "server_side_binding", server_side_binding)

    with transaction.atomic(), connection.cursor() as cursor:
        EventStore.lock_appends()
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "1234ms"
        cursor.execute(
            "SELECT mode FROM pg_locks WHERE relation = 'eventstore_event'::regclass "
            "AND pid = pg_backend_pid()"
        )
        assert "ExclusiveLock" in {row[0] for row in cursor.fetchall()}


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("streams", [1, 250])  # 250: past the streams one check reads at once
def test_an_append_sets_the_lock_timeout_for_the_rest_of_its_transaction(settings, streams):
    settings.EVENTSTORE_LOCK_TIMEOUT_MS = 1234

    with transaction.atomic(), connection.cursor() as cursor:
        event_store.append(
            *[
                StreamAppend("thing", f"t{n}", [NewEvent("Happened", {})], expected_version=0)
                for n in range(streams)
            ]
        )
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "1234ms"
    assert Event.objects.count() == streams
