"""Celery mode's tasks, run in this process: what a commit wakes, what a worker does with a
wake-up, what beat's sweep sends, and a broker that does not answer."""

import logging
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from kombu.exceptions import OperationalError

from config.celery import app
from eventstore import signals
from eventstore.follower import tasks
from eventstore.follower.dispatch import dispatch_committed
from eventstore.follower.effects import EffectSubscriber
from eventstore.follower.subscriptions import Subscriber
from eventstore.models import Effect
from eventstore.observability.logs import LogContextFilter
from eventstore.store import NewEvent

pytestmark = pytest.mark.django_db


class Recorder(Subscriber):
    name = "tests.tasks.recorder"
    event_types = frozenset({"Step"})

    def __init__(self):
        self.handled = []

    def handle(self, event):
        self.handled.append(event.position)


class Caller(EffectSubscriber):
    name = "tests.tasks.caller"
    event_types = frozenset({"Step"})

    def __init__(self):
        self.called = []

    def perform(self, event, *, attempt):
        self.called.append(event.position)


@pytest.fixture(autouse=True)
def broker_not_paused(monkeypatch):
    """Each test starts with a broker this process has not given up on."""
    monkeypatch.setattr(tasks, "_broker_paused_until", 0.0)


@pytest.fixture
def sent(monkeypatch):
    """Every task sent to the broker, as (task name, args), instead of sending it."""
    calls = []

    def apply_async(task, args=None, **options):
        calls.append((task.name, tuple(args)))

    monkeypatch.setattr("celery.app.task.Task.apply_async", apply_async)
    return calls


def steps(store, orders):
    return [
        store.append_to_stream(
            "saga", order, [NewEvent("Step", {}, metadata={"correlation_id": order})]
        )[0]
        for order in orders
    ]


def test_the_celery_app_reads_the_projects_settings():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_soft_time_limit > 0
    assert set(app.conf.task_queues) == {"events", "effects"}
    assert app.conf.task_routes["eventstore.tasks.make_calls"] == {"queue": "effects"}
    assert "eventstore.tasks.sweep" in {entry["task"] for entry in app.conf.beat_schedule.values()}


def test_a_worker_finds_every_task_under_its_stable_name():
    """A worker registers the tasks it can run as Celery's loader finds them (in a fresh
    interpreter, where nothing imported them first); messages name them, so the names stay."""
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "from config.celery import app; app.loader.import_default_modules(); "
            "print(' '.join(sorted(name for name in app.tasks if name.startswith('eventstore.'))))",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert found.stdout.split() == [
        "eventstore.tasks.catch_up_partition",
        "eventstore.tasks.make_calls",
        "eventstore.tasks.sweep",
    ]


def test_a_commit_in_celery_mode_wakes_only_the_touched_partitions(
    store, subscribe, settings, sent, django_capture_on_commit_callbacks
):
    settings.EVENTSTORE_DISPATCH = "celery"
    settings.EVENTSTORE_PARTITIONS = 8
    recorder = subscribe(Recorder())

    with django_capture_on_commit_callbacks(execute=True):
        [event] = steps(store, ["order-1"])
        store.append_to_stream("other", "x", [NewEvent("Unread", {})])

    assert sent == [("eventstore.tasks.catch_up_partition", (recorder.name, event.partition(8)))]
    assert recorder.handled == [], "nothing is handled in the committing thread"


def test_wake_without_events_wakes_every_partition(subscribe, settings, sent):
    settings.EVENTSTORE_PARTITIONS = 3
    recorder = subscribe(Recorder())

    assert tasks.wake(None) == 3
    assert sent == [
        ("eventstore.tasks.catch_up_partition", (recorder.name, partition))
        for partition in range(3)
    ]


def test_a_broker_that_does_not_answer_leaves_the_wake_up_to_the_sweep(
    store, subscribe, settings, monkeypatch, caplog
):
    settings.EVENTSTORE_DISPATCH = "celery"
    subscribe(Recorder())

    def refuse(*args, **kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr("celery.app.task.Task.apply_async", refuse)
    with caplog.at_level(logging.WARNING, logger="eventstore.follower.tasks"):
        [event] = steps(store, ["order-1"])
        dispatch_committed(events=[event])

    assert "left to beat's sweep" in caplog.text
    assert store.get(event.event_id) is not None, "the event stays committed"


def test_after_a_failure_the_broker_is_left_alone_for_a_pause(subscribe, monkeypatch):
    subscribe(Recorder())
    attempts = []
    now = [1000.0]
    monkeypatch.setattr(tasks.time, "monotonic", lambda: now[0])

    def refuse(task, args=None, **options):
        attempts.append(args)
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr("celery.app.task.Task.apply_async", refuse)
    assert tasks.wake(None) == 0
    assert tasks.wake(None) == 0
    assert len(attempts) == 1, "no second attempt during the pause"

    now[0] += tasks.BROKER_PAUSE + 0.1
    assert tasks.wake(None) == 0
    assert len(attempts) == 2, "tried again once the pause is over"


def test_a_commit_asks_for_one_call_per_call_its_events_owe(store, subscribe, settings, sent):
    settings.EVENTSTORE_PARTITIONS = 4
    caller = subscribe(Caller())
    events = steps(store, [f"order-{n}" for n in range(8)])
    positions = [event.position for event in events]

    tasks.wake(events)

    owed = Effect.objects.filter(subscriber=caller.name).values_list("position", flat=True)
    assert sorted(owed) == positions, "owed when their events were appended"
    assert sent == [("eventstore.tasks.make_calls", (caller.name,))] * len(events)
    assert caller.called == [], "calls are made by make_calls, on their own queue"
    assert [tasks.make_calls(caller.name) for _ in sent] == [1] * len(events)
    assert sorted(caller.called) == positions
    assert tasks.make_calls(caller.name) == 0, "nothing left to call"


def test_an_effect_subscribers_wake_up_task_owes_what_no_append_did(
    store, subscribe, settings, sent
):
    settings.EVENTSTORE_PARTITIONS = 4
    caller = subscribe(Caller())
    # Intents appended before calls were owed at append: only the safety net owes them.
    with mock.patch.object(store, "calls_owed", None):
        events = steps(store, [f"order-{n}" for n in range(8)])
    partition = events[0].partition(4)

    outcome = tasks.catch_up_partition(caller.name, partition)

    mine = [event.position for event in events if event.partition(4) == partition]
    owed = list(Effect.objects.filter(subscriber=caller.name).values_list("position", flat=True))
    assert sorted(owed) == mine
    assert outcome == {"handled": len(mine), "busy": False}
    assert sent == [], "the sweep asks for calls due an interval"
    assert caller.called == []


def test_a_wake_up_for_a_partition_that_no_longer_exists_does_nothing(subscribe, settings):
    settings.EVENTSTORE_PARTITIONS = 2
    recorder = subscribe(Recorder())

    assert tasks.catch_up_partition(recorder.name, 5) == {"handled": 0, "busy": False}


def test_the_sweep_wakes_partitions_behind_and_due_calls_and_runs_the_housekeeping(
    store, subscribe, settings, sent
):
    settings.EVENTSTORE_PARTITIONS = 4
    settings.EVENTSTORE_SWEEP_INTERVAL = 0  # everything recorded so far has waited long enough
    recorder = subscribe(Recorder())
    caller = subscribe(Caller())
    events = steps(store, [f"order-{n}" for n in range(8)])
    tasks.catch_up_partition(caller.name, events[0].partition(4))  # owes calls now
    owed = Effect.objects.filter(subscriber=caller.name).count()
    sent.clear()
    housekeeping = []

    def receiver(sender, **kwargs):
        housekeeping.append(sender)

    signals.worker_pass.connect(receiver, weak=False, dispatch_uid="tests.sweep")
    try:
        count = tasks.sweep()
    finally:
        signals.worker_pass.disconnect(dispatch_uid="tests.sweep")

    holding = sorted({event.partition(4) for event in events})
    assert (
        sent
        == [("eventstore.tasks.catch_up_partition", (recorder.name, p)) for p in holding]
        + [
            ("eventstore.tasks.catch_up_partition", (caller.name, p))
            for p in holding
            if p != events[0].partition(4)
        ]
        + [("eventstore.tasks.make_calls", (caller.name,))] * owed
    )
    assert count == len(sent)
    assert housekeeping == [tasks.sweep]


def test_a_failing_housekeeping_receiver_is_logged_and_the_sweep_runs_the_others(sent, caplog):
    ran = []

    def broken(sender, **kwargs):
        raise RuntimeError("housekeeping broke")

    def working(sender, **kwargs):
        ran.append(sender)

    signals.worker_pass.connect(broken, weak=False, dispatch_uid="tests.sweep.broken")
    signals.worker_pass.connect(working, weak=False, dispatch_uid="tests.sweep.working")
    try:
        with caplog.at_level(logging.ERROR, logger="eventstore.signals"):
            count = tasks.sweep()
    finally:
        signals.worker_pass.disconnect(dispatch_uid="tests.sweep.broken")
        signals.worker_pass.disconnect(dispatch_uid="tests.sweep.working")

    assert (count, ran) == (0, [tasks.sweep])
    [failure] = [r for r in caplog.records if r.name == "eventstore.signals"]
    assert "failed" in failure.getMessage() and "broken" in failure.getMessage()
    assert str(failure.exc_info[1]) == "housekeeping broke"


def test_the_sweep_leaves_events_and_calls_newer_than_its_interval_to_their_wake_ups(
    store, subscribe, settings, sent
):
    settings.EVENTSTORE_PARTITIONS = 4
    settings.EVENTSTORE_SWEEP_INTERVAL = 60
    subscribe(Recorder())
    caller = subscribe(Caller())
    events = steps(store, [f"order-{n}" for n in range(8)])
    tasks.catch_up_partition(caller.name, events[0].partition(4))  # owes calls, due now
    sent.clear()

    assert tasks.sweep() == 0
    assert sent == []


class Noter(Subscriber):
    """Appends a Noted event, with the same correlation id, for each Step."""

    name = "tests.tasks.noter"
    event_types = frozenset({"Step"})

    def handle(self, event):
        from eventstore.store import event_store

        event_store.append_to_stream(
            "note",
            f"n{event.position}",
            [NewEvent("Noted", {}, metadata=event.caused_metadata("t"))],
        )


class NoteReader(Recorder):
    name = "tests.tasks.note-reader"
    event_types = frozenset({"Noted"})


@pytest.mark.django_db(transaction=True)
def test_a_wake_up_task_follows_up_what_its_own_commits_woke_in_this_process(
    store, subscribe, settings, sent
):
    settings.EVENTSTORE_DISPATCH = "celery"
    settings.EVENTSTORE_PARTITIONS = 4
    subscribe(Noter())
    reader = subscribe(NoteReader())
    caller = subscribe(Caller())
    caller.event_types = frozenset({"Noted"})
    [step] = steps(store, ["order-1"])
    sent.clear()  # the wake-ups of the Step's own commit

    tasks.catch_up_partition(Noter.name, step.partition(4))

    [noted] = store.read_page(event_types=["Noted"])
    assert noted.partition(4) == step.partition(4), "a reaction stays in its cause's partition"
    assert reader.handled == [noted.position], "followed up in this task"
    assert Effect.objects.filter(subscriber=caller.name).count() == 1
    assert sent == [("eventstore.tasks.make_calls", (caller.name,))], "only the call is sent"


@pytest.mark.django_db(transaction=True)
def test_a_follow_up_that_fails_is_sent_to_the_broker(store, subscribe, settings, sent, caplog):
    settings.EVENTSTORE_DISPATCH = "celery"
    subscribe(Noter())

    class Broken(Recorder):
        name = "tests.tasks.broken"
        event_types = frozenset({"Noted"})

    broken = subscribe(Broken())
    steps(store, ["order-1"])
    sent.clear()

    original = tasks.catch_up_one

    def catch_up_one(subscriber, partition, **kwargs):
        if subscriber is broken:
            raise RuntimeError("database went away")
        return original(subscriber, partition, **kwargs)

    with mock.patch.object(tasks, "catch_up_one", catch_up_one):
        tasks.catch_up_partition(Noter.name, 0)

    assert sent == [("eventstore.tasks.catch_up_partition", (broken.name, 0))]
    assert "Following up tests.tasks.broken partition 0 failed" in caplog.text


class Talker(Subscriber):
    """Logs a line as it handles each Step."""

    name = "tests.tasks.talker"
    event_types = frozenset({"Step"})

    def handle(self, event):
        logging.getLogger("tests.tasks").info("handled #%s", event.position)


class TalkingCaller(EffectSubscriber):
    """Logs a line as it makes the call each Step owes."""

    name = "tests.tasks.talking_caller"
    event_types = frozenset({"Step"})

    def perform(self, event, *, attempt):
        logging.getLogger("tests.tasks").info("called for #%s", event.position)


def test_a_workers_records_carry_the_request_id_of_the_event_it_handles(
    store, subscribe, sent, caplog
):
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(LogContextFilter())
    talker, caller = subscribe(Talker()), subscribe(TalkingCaller())
    [event] = store.append_to_stream(
        "thing", "t-1", [NewEvent("Step", {}, {"correlation_id": "o-1", "request_id": "r-9"})]
    )

    tasks.catch_up_partition(talker.name, 0)
    tasks.make_calls(caller.name)

    lines = {r.getMessage(): r for r in caplog.records if r.name == "tests.tasks"}
    for message in (f"handled #{event.position}", f"called for #{event.position}"):
        assert (lines[message].request_id, lines[message].correlation_id) == ("r-9", "o-1")
