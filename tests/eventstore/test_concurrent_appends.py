"""Appends without the log's table lock, on PostgreSQL: followers stay gap-free.

Positions are handed out in insert order and become visible in commit order. Followers read in
(transaction id, position) order, and only events below the oldest transaction still running
(eventstore.recorders.PostgresRecorder.follow_condition), so a writer that has not committed
holds every follower back instead of being passed; and an appended event's transaction id is
raised to its stream's previous event's, so a stream's events are read in version order even
from a transaction that took its id before the writer it follows. Only the project's own
transactions (those of sessions carrying DATABASE_APPLICATION_NAME) hold followers back; one
whose owner pg_stat_activity does not show counts as the project's.
"""

import random
import threading
import time
from collections import Counter

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections, transaction

from eventstore.follower.subscriptions import Subscriber, catch_up
from eventstore.models import Checkpoint, Event
from eventstore.recorders import recorder
from eventstore.records import START, LogPoint, RecordedEvent
from eventstore.store import ConcurrencyError, NewEvent, event_store
from tests.processes import held_transaction
from tests.threads import run_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class Follower(Subscriber):
    """Remembers each event it handled, in order (one thread catches it up at a time)."""

    event_types = None

    def __init__(self, name: str):
        self.name = name
        self.handled: list = []

    def handle(self, event):
        self.handled.append(event)


def checkpoint(name: str) -> LogPoint:
    row = Checkpoint.objects.get(subscriber=name)
    return LogPoint(row.transaction_id, row.position)


class OpenWriter:
    """A thread that appends in a transaction and keeps it open until `commit()`."""

    def __init__(self, stream: str, event_type: str = "Early"):
        self.inserted = threading.Event()
        self.release = threading.Event()
        self.recorded = []
        self.thread = threading.Thread(
            target=run_threads, args=(self._write, 1, stream, event_type)
        )

    def _write(self, index, stream, event_type):
        with transaction.atomic():
            self.recorded = event_store.append_to_stream(
                "thing", stream, [NewEvent(event_type, {})]
            )
            self.inserted.set()
            self.release.wait(timeout=30)

    def __enter__(self):
        self.thread.start()
        assert self.inserted.wait(timeout=30), "the writer never appended"
        return self

    def commit(self):
        self.release.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()

    def __exit__(self, *exc_info):
        self.commit()


def test_a_writer_that_has_not_committed_holds_every_follower_back(subscribe, settings, caplog):
    settings.EVENTSTORE_FOLLOW_WAIT = 0.1  # the late commit's wake-up gives up waiting soon
    follower = subscribe(Follower("tests.follower"))
    with OpenWriter("early") as writer:
        [late] = event_store.append_to_stream("thing", "late", [NewEvent("Late", {})])
        [early] = writer.recorded
        assert early.position < late.position  # inserted first, committed last

        # The late event is committed, but sorts behind the open transaction: nobody reads it.
        assert event_store.read_new(START) == []
        assert catch_up(follower).handled == 0
        assert checkpoint(follower.name) == START
        held = recorder().horizon()
        assert held["events_behind_horizon"] == 1
        assert held["oldest_transaction_seconds"] > 0
        assert held["transaction_ids_ahead"] is False

    # Once it commits (its commit wakes the follower), the early event is delivered first, and
    # the checkpoint never passed it.
    catch_up(follower)
    assert [event.event_type for event in follower.handled] == ["Early", "Late"]
    assert "still behind an older running transaction" in caplog.text
    assert checkpoint(follower.name) == follower.handled[-1].log_point
    assert recorder().horizon()["events_behind_horizon"] == 0


def append_elsewhere(stream: str) -> RecordedEvent:
    """An event appended and committed by another connection of the project (a thread)."""
    appended = []
    run_threads(
        lambda index: appended.extend(
            event_store.append_to_stream("thing", stream, [NewEvent("Late", {})])
        ),
        1,
    )
    return appended[0]


def test_a_transaction_of_another_application_holds_no_follower_back(subscribe):
    """A psql session left open with a transaction id: the project's later events flow on."""
    follower = subscribe(Follower("tests.follower"))
    with held_transaction("psql") as pid:
        event_store.append_to_stream("thing", "late", [NewEvent("Late", {})])

        catch_up(follower)  # its commit's wake-up delivered it already
        assert [event.event_type for event in follower.handled] == ["Late"]
        held = recorder().horizon()
        assert held["waiting_for"] is None
        assert held["oldest_ignored"]["pid"] == pid
        assert held["oldest_ignored"]["application_name"] == "psql"
        assert held["events_behind_horizon"] == 0


def test_a_transaction_of_the_projects_application_holds_followers_back_on_any_connection(
    subscribe, settings
):
    """What counts is the application name, not which connection object took the id."""
    settings.EVENTSTORE_FOLLOW_WAIT = 0.1  # the append's wake-up gives up waiting soon
    follower = subscribe(Follower("tests.follower"))
    name = django_settings.DATABASE_APPLICATION_NAME
    with held_transaction(name) as pid:
        event_store.append_to_stream("thing", "late", [NewEvent("Late", {})])

        assert catch_up(follower).handled == 0
        held = recorder().horizon()
        assert held["waiting_for"]["pid"] == pid
        assert held["waiting_for"]["application_name"] == name
        assert held["waiting_for"]["state"] == "idle in transaction"
        assert held["events_behind_horizon"] == 1

    assert catch_up(follower).handled == 1


def test_a_transaction_id_pg_stat_activity_does_not_show_holds_followers_back():
    """pg_stat_activity is read once per transaction: an id taken after that read has no
    owner it shows, even from another application, so it counts until a later transaction
    sees whose it is."""
    with transaction.atomic():
        assert recorder().held_by()["ignored"] is None  # pg_stat_activity read now
        with held_transaction("psql"):
            late = append_elsewhere("late")

            assert not recorder().followable(late.transaction_id)
            assert event_store.read_new(START) == []

    with held_transaction("psql"):
        assert recorder().followable(late.transaction_id)


def test_a_commit_wakes_its_subscribers_once_the_older_writers_it_waited_for_have_ended(
    subscribe,
):
    """The late commit's wake-up waits for the open writer instead of finding nothing."""
    follower = subscribe(Follower("tests.follower"))
    with OpenWriter("early") as writer:
        threading.Timer(0.3, writer.release.set).start()
        started = time.monotonic()
        event_store.append_to_stream("thing", "late", [NewEvent("Late", {})])
        waited = time.monotonic() - started

    # Delivered by the late commit's own wake-up, within the append call.
    assert [event.event_type for event in follower.handled] == ["Early", "Late"]
    assert waited >= 0.25


def test_an_event_appended_from_an_older_transaction_stays_after_its_stream_predecessor():
    """A transaction takes its id first (a batch locking its checkpoint row does), another
    writer appends version 1 and commits, then the older transaction appends version 2 on top."""
    appended = threading.Event()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            (own,) = cursor.fetchone()

        def append_first(index):
            event_store.append_to_stream("thing", "s", [NewEvent("First", {})], expected_version=0)
            appended.set()

        run_threads(append_first, 1)
        assert appended.is_set()
        [second] = event_store.append_to_stream(
            "thing", "s", [NewEvent("Second", {})], expected_version=1
        )

    [first] = event_store.read_stream("thing", "s")[:1]
    assert own < first.transaction_id  # the other writer's id is the younger one
    assert second.transaction_id == first.transaction_id  # raised to its predecessor's
    read = event_store.read_new(START)
    assert [(event.event_type, event.version) for event in read] == [("First", 1), ("Second", 2)]


WRITERS = 8
STREAMS = 6
SECONDS = 3.0


def test_eight_writers_on_overlapping_streams_and_two_followers_lose_and_repeat_nothing(subscribe):
    followers = [subscribe(Follower(f"tests.follower-{n}")) for n in range(2)]
    stop = threading.Event()
    appended = Counter()
    conflicts = Counter()

    def write(index):
        rng = random.Random(index)
        while not stop.is_set():
            stream = f"s{rng.randrange(STREAMS)}"
            try:
                with transaction.atomic():
                    if rng.random() < 0.3:
                        # Take a transaction id before appending, as a subscriber's batch does.
                        with connection.cursor() as cursor:
                            cursor.execute("SELECT pg_current_xact_id()")
                        time.sleep(rng.random() / 200)
                    version = event_store.stream_version("thing", stream)
                    event_store.append_to_stream(
                        "thing",
                        stream,
                        [NewEvent("Tick", {"by": index})],
                        expected_version=version,
                    )
                appended[index] += 1
            except ConcurrencyError:
                conflicts[index] += 1

    def follow(index):
        follower = followers[index - WRITERS]
        while True:
            finished = stop.is_set()
            catch_up(follower, batch_size=7)
            if finished:
                return
            time.sleep(0.002)

    def run(index):
        if index < WRITERS:
            write(index)
        else:
            follow(index)

    timer = threading.Timer(SECONDS, stop.set)
    timer.start()
    try:
        run_threads(run, WRITERS + 2)
    finally:
        stop.set()
        timer.cancel()
    for follower in followers:  # the writers are done: whatever is left is within the horizon
        catch_up(follower)

    stored = list(Event.objects.order_by("position").values_list("event_id", flat=True))
    assert len(stored) == sum(appended.values()) > 100
    versions = {}
    for follower in followers:
        assert sorted(e.event_id for e in follower.handled) == sorted(stored)  # each once
        for event in follower.handled:  # a stream's versions arrive 1, 2, 3 ...
            assert event.version == versions.get((follower.name, event.aggregate_id), 0) + 1
            versions[(follower.name, event.aggregate_id)] = event.version
        points = [event.log_point for event in follower.handled]
        assert points == sorted(points)
    connections.close_all()


def test_events_stored_before_transaction_ids_are_followed_first_from_where_a_checkpoint_stood(
    subscribe, settings
):
    """Migration 0007 leaves every stored event at transaction id 0 and every checkpoint at
    (0, its position): they were written under the table lock, so position order is their
    commit order, and a follower carries on exactly where it stood."""
    from tests.eventstore.test_migrations import unguarded_log

    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False  # only the catch-up below delivers
    old = [
        event_store.append_to_stream("thing", f"old-{n}", [NewEvent("Old", {})])[0]
        for n in range(3)
    ]
    with unguarded_log(), connection.cursor() as cursor:
        cursor.execute("UPDATE eventstore_event SET transaction_id = 0")
    follower = subscribe(Follower("tests.follower"))
    Checkpoint.objects.create(
        name=Checkpoint.name_for(follower.name, 0, 1),
        subscriber=follower.name,
        position=old[0].position,
    )
    [new] = event_store.append_to_stream("thing", "new", [NewEvent("New", {})])
    assert new.transaction_id > 0

    catch_up(follower)

    assert [(e.event_type, e.position) for e in follower.handled] == [
        ("Old", old[1].position),
        ("Old", old[2].position),
        ("New", new.position),
    ]
