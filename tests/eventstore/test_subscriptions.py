"""Checkpointed subscribers: exactly-once delivery after commit, redelivery and crash recovery."""

from unittest import mock

import pytest
from django.core.management import call_command
from django.db import OperationalError, transaction

from eventstore import signals
from eventstore.follower.dispatch import dispatch_committed
from eventstore.follower.subscriptions import (
    TRANSIENT_RETRIES,
    Subscriber,
    SubscriberError,
    catch_up,
    catch_up_all,
    get_subscribers,
    register_subscriber,
)
from eventstore.models import Checkpoint, Event
from eventstore.recorders import recorder
from eventstore.store import NewEvent, event_store
from tests.factories import NewEventFactory


class Noter(Subscriber):
    """Reacts to each ThingHappened by appending a Noted event: a visible, transactional effect."""

    name = "tests.noter"
    event_types = frozenset({"ThingHappened"})

    def __init__(self, fail_on=()):
        self.fail_on = set(fail_on)
        self.seen = []

    def handle(self, event):
        from eventstore.store import event_store

        event_store.append_to_stream(
            "note", f"n{event.position}", [NewEvent("Noted", {"position": event.position})]
        )
        if event.payload.get("n") in self.fail_on:
            raise RuntimeError(f"cannot note {event.payload['n']}")
        self.seen.append(event.position)


class Echo(Subscriber):
    """Reacts to Noted events, so a wake-up chain crosses two subscribers."""

    name = "tests.echo"
    event_types = frozenset({"Noted"})

    def handle(self, event):
        from eventstore.store import event_store

        event_store.append_to_stream("echo", f"e{event.position}", [NewEvent("Echoed", {})])


def notes():
    return sorted(
        Event.objects.filter(event_type="Noted").values_list("payload__position", flat=True)
    )


def happened(store, count):
    return [
        event.position
        for event in store.append_to_stream(
            "thing", "t1", [NewEventFactory(payload={"n": i}) for i in range(count)]
        )
    ]


@pytest.mark.django_db
def test_after_commit_each_event_is_handled_once(
    store, subscribe, django_capture_on_commit_callbacks
):
    subscribe(Noter())

    with django_capture_on_commit_callbacks(execute=True):
        positions = happened(store, 3)

    assert notes() == positions
    assert Checkpoint.objects.get(subscriber="tests.noter").position == positions[-1]


class Counter(Subscriber):
    """Also reacts to each ThingHappened, by counting it in a stream of its own."""

    name = "tests.counter"
    event_types = frozenset({"ThingHappened"})

    def __init__(self, fail_on=()):
        self.fail_on = set(fail_on)

    def handle(self, event):
        from eventstore.store import event_store

        if event.payload.get("n") in self.fail_on:
            raise RuntimeError(f"cannot count {event.payload['n']}")
        event_store.append_to_stream("count", f"c{event.position}", [NewEvent("Counted", {})])


def counted():
    return Event.objects.filter(event_type="Counted").count()


@pytest.mark.django_db
def test_a_commit_that_wakes_two_subscribers_catches_both_up_in_one_pass(store, subscribe):
    subscribe(Noter())
    subscribe(Counter())
    [position] = happened(store, 1)
    reads = []
    real = recorder().lock_and_read_many

    def lock_and_read_many(wanted, limit):
        reads.append([name for name, *_ in wanted])
        return real(wanted, limit)

    with mock.patch.object(recorder(), "lock_and_read_many", lock_and_read_many):
        dispatch_committed(events=store.read_page())

    assert reads == [["tests.noter", "tests.counter"]]
    assert (notes(), counted()) == ([position], 1)
    assert set(Checkpoint.objects.values_list("subscriber", "position")) == {
        ("tests.noter", position),
        ("tests.counter", position),
    }


@pytest.mark.django_db
def test_a_failure_in_a_shared_pass_undoes_it_and_each_subscriber_is_caught_up_alone(
    store, subscribe
):
    subscribe(Noter())
    subscribe(Counter(fail_on={0}))
    [position] = happened(store, 1)

    dispatch_committed(events=store.read_page())

    assert (notes(), counted()) == ([position], 0)
    noted, failed = Checkpoint.objects.order_by("subscriber").reverse()
    assert (noted.subscriber, noted.position, noted.last_error) == ("tests.noter", position, "")
    assert (failed.subscriber, failed.position) == ("tests.counter", 0)
    assert failed.last_error == "RuntimeError: cannot count 0"


@pytest.mark.django_db
def test_an_event_delivered_twice_takes_effect_once(store, subscribe):
    noter = subscribe(Noter())
    positions = happened(store, 2)

    dispatch_committed(events=[])
    dispatch_committed(events=[])
    catch_up(noter)

    assert notes() == positions
    assert noter.seen == positions


@pytest.mark.django_db
def test_process_events_delivers_what_a_crashed_process_never_dispatched(
    store, subscribe, settings
):
    settings.EVENTSTORE_DISPATCH_ON_COMMIT = False  # the process "dies" before its callbacks run
    subscribe(Noter())
    positions = happened(store, 4)
    assert notes() == []

    call_command("process_events", verbosity=0)
    call_command("process_events", verbosity=0)

    assert notes() == positions


@pytest.mark.django_db
def test_a_crash_before_the_checkpoint_commits_undoes_the_effects_too(store, subscribe):
    noter = subscribe(Noter())
    positions = happened(store, 3)

    with (
        mock.patch.object(recorder(), "save_checkpoints", side_effect=SystemError("power cut")),
        pytest.raises(SystemError),
    ):
        catch_up(noter)
    assert notes() == []

    catch_up(noter)
    assert notes() == positions


@pytest.mark.django_db
def test_a_failing_event_stops_the_subscriber_just_before_it_and_is_retried(store, subscribe):
    noter = subscribe(Noter(fail_on={2}))
    positions = happened(store, 4)

    result = catch_up(noter)

    assert (result.handled, result.position) == (2, positions[1])
    assert "cannot note 2" in result.error
    checkpoint = Checkpoint.objects.get(subscriber="tests.noter")
    assert (checkpoint.position, checkpoint.failed_position) == (positions[1], positions[2])
    assert "RuntimeError" in checkpoint.last_error
    assert notes() == positions[:2]  # the failed event's own effects were rolled back

    noter.fail_on.clear()
    result = catch_up(noter)

    assert (result.handled, result.error) == (2, "")
    assert notes() == positions
    assert Checkpoint.objects.get(subscriber="tests.noter").last_error == ""


@pytest.mark.django_db
def test_catch_up_works_through_several_batches(store, subscribe):
    noter = subscribe(Noter())
    positions = happened(store, 7)

    result = catch_up(noter, batch_size=3)

    assert result.handled == 7
    assert notes() == positions


@pytest.mark.django_db
def test_reactions_to_reactions_are_delivered_without_recursion(
    store, subscribe, django_capture_on_commit_callbacks
):
    subscribe(Noter())
    subscribe(Echo())

    with django_capture_on_commit_callbacks(execute=True):
        happened(store, 2)

    assert len(notes()) == 2
    assert Event.objects.filter(event_type="Echoed").count() == 2


@pytest.mark.django_db
def test_a_subscriber_failure_after_commit_does_not_reach_the_appender(
    store, subscribe, django_capture_on_commit_callbacks
):
    subscribe(Noter(fail_on={0}))

    with django_capture_on_commit_callbacks(execute=True):
        positions = happened(store, 1)

    assert Event.objects.filter(position=positions[0]).exists()
    assert Checkpoint.objects.get(subscriber="tests.noter").failed_position == positions[0]


@pytest.mark.django_db
def test_an_unexpected_error_while_catching_up_is_logged_not_raised(store, subscribe, caplog):
    subscribe(Noter())
    happened(store, 1)

    with mock.patch("eventstore.follower.dispatch.catch_up", side_effect=RuntimeError("db gone")):
        dispatch_committed()  # no event list: every subscriber is woken

    assert "Catching up subscriber tests.noter failed" in caplog.text


@pytest.mark.django_db
def test_a_commit_wakes_only_the_subscribers_that_read_its_event_types(store, subscribe):
    subscribe(Noter())
    subscribe(Echo())
    unrelated = store.append_to_stream("other", "o1", [NewEvent("Unrelated", {})])
    noted = store.append_to_stream("note", "n1", [NewEvent("Noted", {})])

    with mock.patch("eventstore.follower.dispatch.catch_up") as woken:
        dispatch_committed(events=unrelated)
        assert woken.call_count == 0
        dispatch_committed(events=unrelated + noted)

    assert [call.args[0].name for call in woken.call_args_list] == ["tests.echo"]


@pytest.mark.django_db(transaction=True)
def test_nothing_is_published_for_a_rolled_back_transaction(store):
    published = []

    def receiver(sender, events, **kwargs):
        published.extend(event.event_type for event in events)

    signals.events_committed.connect(receiver, dispatch_uid="tests.published")
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            store.append_to_stream("thing", "t1", [NewEvent("RolledBack", {})])
            raise RuntimeError("abort")
        store.append_to_stream("thing", "t1", [NewEvent("Committed", {})])
    finally:
        signals.events_committed.disconnect(dispatch_uid="tests.published")

    assert published == ["Committed"]
    assert list(Event.objects.values_list("event_type", flat=True)) == ["Committed"]


@pytest.mark.django_db(transaction=True)
def test_committed_events_are_delivered_to_subscribers_without_any_command(store, subscribe):
    subscribe(Noter())

    positions = happened(store, 2)

    assert notes() == positions


def test_a_second_subscriber_with_the_same_name_is_refused(subscribe):
    subscribe(Noter())

    with pytest.raises(SubscriberError, match="already registered"):
        register_subscriber(Noter())


def test_asking_for_an_unknown_subscriber_names_it(subscribe):
    subscribe(Noter())

    with pytest.raises(SubscriberError, match=r"nope.*known: tests\.noter"):
        get_subscribers(["nope"])


@pytest.mark.django_db
def test_catch_up_all_reports_each_subscriber(store, subscribe):
    subscribe(Noter())
    subscribe(Echo())
    happened(store, 2)

    results = {result.name: result.handled for result in catch_up_all()}

    assert results == {"tests.noter": 2, "tests.echo": 2}


class Deadlocked(Subscriber):
    """Meets PostgreSQL's deadlock error (SQLSTATE 40P01) on its first `failures` attempts at
    the second event, as a batch that lost a deadlock to another worker's does. What it handled
    it records in the log (a Handled event), so a handling that was rolled back leaves none."""

    name = "tests.deadlocked"
    event_types = frozenset({"ThingHappened"})

    def __init__(self, failures):
        self.failures = failures
        self.attempts = 0

    def handle(self, event):
        if event.payload["n"] == 1 and self.attempts < self.failures:
            self.attempts += 1
            error = OperationalError("deadlock detected")
            error.__cause__ = type("DeadlockDetected", (Exception,), {"sqlstate": "40P01"})()
            raise error
        event_store.append_to_stream(
            "handled", str(event.position), [NewEvent("Handled", {"n": event.payload["n"]})]
        )

    @property
    def handled(self):
        """The events whose handling committed, by their number, in the order handled."""
        return list(Event.objects.filter(event_type="Handled").values_list("payload__n", flat=True))


@pytest.mark.django_db
def test_a_deadlocked_event_is_handled_again_in_a_new_transaction_without_an_error(
    store, subscribe
):
    subscriber = subscribe(Deadlocked(failures=2))
    happened(store, 3)

    result = catch_up(subscriber)

    assert subscriber.handled == [0, 1, 2]  # each once, in order
    assert result.error == ""
    assert Checkpoint.objects.get(subscriber=subscriber.name).last_error == ""


@pytest.mark.django_db
def test_an_event_that_keeps_deadlocking_stops_its_subscriber_with_the_error(store, subscribe):
    subscriber = subscribe(Deadlocked(failures=TRANSIENT_RETRIES + 1))
    happened(store, 3)

    result = catch_up(subscriber)

    assert subscriber.handled == [0]
    assert "deadlock detected" in result.error
    assert subscriber.attempts == TRANSIENT_RETRIES + 1
