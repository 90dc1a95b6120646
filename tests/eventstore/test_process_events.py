"""process_events: catching subscribers up once, or following the log until stopped."""

import os
import signal
from unittest.mock import patch

import pytest

from eventstore import signals
from eventstore.follower.subscriptions import Subscriber, registry
from eventstore.models import Checkpoint, Event
from eventstore.store import NewEvent, event_store
from tests.factories import StreamAppendFactory


class Recorder(Subscriber):
    """A subscriber that remembers the positions it handled, in order."""

    name = "tests.commands.recorder"

    def __init__(self):
        self.handled = []

    def handle(self, event):
        self.handled.append(event.position)


class FailsOnType(Subscriber):
    """A subscriber that fails on one event type until told to stop failing. What it handled
    it records in the log (a Handled event), so a handling that was rolled back leaves none."""

    name = "tests.commands.fails"
    event_types = frozenset({"OrderPlaced", "OrderConfirmed", "OrderCompleted", "ThingHappened"})

    def __init__(self, failing_type):
        self.failing_type = failing_type

    def handle(self, event):
        if event.event_type == self.failing_type:
            raise RuntimeError(f"cannot handle {event.event_type}")
        event_store.append_to_stream(
            "handled", str(event.position), [NewEvent("Handled", {"position": event.position})]
        )

    @property
    def handled(self):
        """The positions of the events whose handling committed, in the order handled."""
        return list(
            Event.objects.filter(event_type="Handled").values_list("payload__position", flat=True)
        )


# --- process_events ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_process_events_without_subscribers_says_there_is_nothing_to_do(run):
    event_store.append(StreamAppendFactory())

    with registry.emptied():
        out, _ = run("process_events")

    assert "No subscribers are registered" in out


@pytest.mark.django_db
def test_process_events_handles_pending_events_exactly_once_across_runs(subscribe, run, populate):
    recorder = subscribe(Recorder())
    first_batch = populate()

    first_out, _ = run("process_events", recorder.name)
    second_out, _ = run("process_events", recorder.name)

    positions = [event.position for event in first_batch]
    assert recorder.handled == positions
    assert f"handled {len(positions)} event(s), checkpoint at position {positions[-1]}" in (
        first_out
    )
    assert f"handled 0 event(s), checkpoint at position {positions[-1]}" in second_out
    assert Checkpoint.objects.get(subscriber=recorder.name).position == positions[-1]


@pytest.mark.django_db
def test_process_events_delivers_only_the_events_appended_since_the_last_run(
    subscribe, run, populate
):
    recorder = subscribe(Recorder())
    earlier = populate()
    run("process_events", recorder.name)

    later = event_store.append(StreamAppendFactory(), StreamAppendFactory())
    out, _ = run("process_events", recorder.name)

    assert recorder.handled == [event.position for event in earlier + later]
    assert f"handled 2 event(s), checkpoint at position {later[-1].position}" in out


@pytest.mark.django_db
def test_process_events_without_names_runs_every_registered_subscriber(subscribe, run, populate):
    recorder = subscribe(Recorder())
    events = populate()

    out, _ = run("process_events")

    assert recorder.handled == [event.position for event in events]
    assert f"{recorder.name}: handled {len(events)} event(s)" in out


@pytest.mark.django_db
def test_process_events_rejects_an_unknown_subscriber_by_name(subscribe, run_failing):
    subscribe(Recorder())

    error, _, _ = run_failing("process_events", "no.such.subscriber")

    assert "no.such.subscriber" in str(error)


@pytest.mark.django_db
def test_process_events_fails_and_records_the_error_on_the_checkpoint(
    subscribe, run_failing, populate
):
    subscriber = subscribe(FailsOnType("OrderConfirmed"))
    events = populate()
    placed, confirmed = events[0], events[1]
    assert (placed.event_type, confirmed.event_type) == ("OrderPlaced", "OrderConfirmed")

    error, _, err = run_failing("process_events", subscriber.name)

    assert "1 subscriber(s) or housekeeping task(s) failed" in str(error)
    assert subscriber.name in err
    assert "RuntimeError: cannot handle OrderConfirmed" in err
    checkpoint = Checkpoint.objects.get(subscriber=subscriber.name)
    assert checkpoint.position == placed.position
    assert checkpoint.failed_position == confirmed.position
    assert checkpoint.last_error == "RuntimeError: cannot handle OrderConfirmed"
    assert subscriber.handled == [placed.position]


@pytest.mark.django_db
def test_process_events_retries_the_failed_event_and_clears_the_error(
    subscribe, run_failing, run, populate
):
    subscriber = subscribe(FailsOnType("OrderConfirmed"))
    events = populate()
    run_failing("process_events", subscriber.name)

    subscriber.failing_type = None
    run("process_events", subscriber.name)

    checkpoint = Checkpoint.objects.get(subscriber=subscriber.name)
    assert subscriber.handled == [event.position for event in events]
    assert checkpoint.position == events[-1].position
    assert checkpoint.failed_position is None
    assert checkpoint.last_error == ""


@pytest.mark.django_db
def test_process_events_follow_polls_until_interrupted(subscribe, run, populate):
    recorder = subscribe(Recorder())
    earlier = populate()
    later = []

    def sleep(seconds):
        # First pause: a new event arrives; second pause: Ctrl+C.
        if not later:
            later.extend(event_store.append(StreamAppendFactory()))
            return
        raise KeyboardInterrupt

    with patch("eventstore.management.commands.process_events.time") as fake_time:
        fake_time.sleep.side_effect = sleep
        out, _ = run("process_events", recorder.name, "--follow", "--interval", "0.5")

    assert [call.args for call in fake_time.sleep.call_args_list] == [(0.5,), (0.5,)]
    assert recorder.handled == [event.position for event in earlier + later]
    lines = out.strip().splitlines()
    assert lines[0] == "Following the log for 1 subscriber(s); Ctrl+C stops."
    assert lines[-1] == "Stopped."
    assert f"handled 1 event(s), checkpoint at position {later[0].position}" in out


@pytest.mark.django_db
def test_process_events_rejects_interval_zero(subscribe, run_failing):
    subscribe(Recorder())

    error, _, _ = run_failing("process_events", "--follow", "--interval", "0")

    assert "--interval" in str(error)


@pytest.mark.django_db
def test_process_events_follow_finishes_its_pass_and_stops_on_sigterm(subscribe, run, populate):
    recorder = subscribe(Recorder())
    events = populate()
    before = signal.getsignal(signal.SIGTERM)

    def sleep(seconds):
        # The service manager stops the worker while it waits for new events.
        os.kill(os.getpid(), signal.SIGTERM)

    with patch("eventstore.management.commands.process_events.time") as fake_time:
        fake_time.sleep.side_effect = sleep
        out, _ = run("process_events", recorder.name, "--follow")

    assert fake_time.sleep.call_count == 1
    assert recorder.handled == [event.position for event in events]
    assert out.strip().splitlines()[-1] == "Stopped."
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.fixture
def worker_pass_receiver():
    """Connect a receiver to `worker_pass` for one test; it records each call or raises."""
    calls = []

    def receiver(sender=None, **kwargs):
        calls.append(sender)
        if getattr(receiver, "fail", False):
            raise RuntimeError("housekeeping broke")

    signals.worker_pass.connect(receiver, weak=False, dispatch_uid="tests.worker_pass")
    yield receiver, calls
    signals.worker_pass.disconnect(dispatch_uid="tests.worker_pass")


@pytest.mark.django_db
def test_process_events_runs_housekeeping_after_each_pass(subscribe, worker_pass_receiver, run):
    subscribe(Recorder())
    _, calls = worker_pass_receiver

    run("process_events")

    assert len(calls) == 1


@pytest.mark.django_db
def test_failing_housekeeping_is_reported_and_fails_the_run(
    subscribe, worker_pass_receiver, run_failing, populate
):
    recorder = subscribe(Recorder())
    receiver, _ = worker_pass_receiver
    receiver.fail = True
    events = populate()

    error, _, err = run_failing("process_events")

    assert "1 subscriber(s) or housekeeping task(s) failed" in str(error)
    assert "housekeeping broke" in err
    # The subscribers' work is kept: housekeeping runs after the catch-up.
    assert recorder.handled == [event.position for event in events]
