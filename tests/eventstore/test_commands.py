"""The management commands: rebuild_projections, verify_projections and process_events."""

import io
import os
import re
import signal
from datetime import timedelta
from unittest.mock import patch

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from eventstore import signals
from eventstore.models import Checkpoint, Stream
from eventstore.projections import get_projections
from eventstore.store import event_store
from eventstore.subscriptions import Subscriber, registry
from tests.factories import NewEventFactory, StreamAppendFactory

REBUILT_LINE = re.compile(
    r"^Rebuilt (?P<projections>\d+) projection\(s\) from (?P<events>\d+) events "
    r"in \d+\.\d\d s \([\d,]+ events/s\)$",
    re.MULTILINE,
)


def run(command, *args, **options):
    """Run a management command; return what it wrote to stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=stdout, stderr=stderr, **options)
    return stdout.getvalue(), stderr.getvalue()


def run_failing(command, *args, **options):
    """Run a command expected to fail; return its CommandError and what it wrote to stdout."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command(command, *args, stdout=stdout, stderr=stderr, **options)
    return raised.value, stdout.getvalue(), stderr.getvalue()


def populate():
    """Append events to several streams, some of them in one append; return every event."""
    order = StreamAppendFactory(
        aggregate_type="order",
        events=[
            NewEventFactory(event_type="OrderPlaced"),
            NewEventFactory(event_type="OrderConfirmed"),
        ],
    )
    payment = StreamAppendFactory(aggregate_type="payment")
    recorded = event_store.append(order, payment)
    # An hour later, so the order stream's first and last recorded times surely differ.
    an_hour_later = recorded[0].recorded_at + timedelta(hours=1)
    with patch.object(timezone, "now", return_value=an_hour_later):
        recorded += event_store.append_to_stream(
            "order",
            order.aggregate_id,
            [NewEventFactory(event_type="OrderCompleted")],
            expected_version=2,
        )
        recorded += event_store.append(StreamAppendFactory(aggregate_type="inventory"))
    return recorded


class Recorder(Subscriber):
    """A subscriber that remembers the positions it handled, in order."""

    name = "tests.commands.recorder"

    def __init__(self):
        self.handled = []

    def handle(self, event):
        self.handled.append(event.position)


class FailsOnType(Subscriber):
    """A subscriber that fails on one event type until told to stop failing."""

    name = "tests.commands.fails"

    def __init__(self, failing_type):
        self.failing_type = failing_type
        self.handled = []

    def handle(self, event):
        if event.event_type == self.failing_type:
            raise RuntimeError(f"cannot handle {event.event_type}")
        self.handled.append(event.position)


# --- rebuild_projections -------------------------------------------------------------------------


@pytest.mark.django_db
def test_rebuild_projections_on_an_empty_store_reports_zero_events(capsys):
    out, _ = run("rebuild_projections")

    closing = REBUILT_LINE.search(out)
    assert closing, out
    assert int(closing["projections"]) == len(get_projections())
    assert closing["events"] == "0"
    assert Stream.objects.count() == 0


@pytest.mark.django_db
def test_rebuild_projections_replays_every_event_and_reproduces_the_streams(capsys, stream_rows):
    events = populate()
    before = stream_rows()
    assert len(before) == 3

    out, _ = run("rebuild_projections")

    closing = REBUILT_LINE.search(out)
    assert closing, out
    assert int(closing["projections"]) == len(get_projections())
    assert int(closing["events"]) == len(events)
    assert f"from {len(events)} event(s)" in out
    assert stream_rows() == before


@pytest.mark.django_db
def test_rebuild_projections_in_small_batches_reproduces_the_streams(capsys, stream_rows):
    # A stream whose events fall into different batches must keep its first recorded time.
    events = populate()
    before = stream_rows()

    out, _ = run("rebuild_projections", "eventstore.streams", "--batch-size", "1")

    closing = REBUILT_LINE.search(out)
    assert closing, out
    assert closing["projections"] == "1"
    assert int(closing["events"]) == len(events)
    assert stream_rows() == before
    placed, completed = events[0], events[3]
    order = Stream.objects.get(aggregate_type="order")
    assert (order.version, order.last_event_type, order.last_position) == (
        3,
        "OrderCompleted",
        completed.position,
    )
    assert order.first_recorded_at == placed.recorded_at
    assert order.last_recorded_at == completed.recorded_at > placed.recorded_at


@pytest.mark.django_db
def test_rebuild_projections_repairs_a_tampered_read_model(capsys, stream_rows):
    populate()
    before = stream_rows()
    Stream.objects.filter(aggregate_type="order").update(version=99, last_event_type="Wrong")
    Stream.objects.filter(aggregate_type="payment").delete()

    run("rebuild_projections", "eventstore.streams")

    assert stream_rows() == before


@pytest.mark.django_db
def test_rebuild_projections_drops_rows_no_event_explains(capsys, stream_rows):
    populate()
    before = stream_rows()
    Stream.objects.create(
        aggregate_type="ghost",
        aggregate_id="nobody",
        version=1,
        last_event_type="Nothing",
        last_position=10_000,
        first_recorded_at=before[0]["first_recorded_at"],
        last_recorded_at=before[0]["last_recorded_at"],
    )

    run("rebuild_projections")

    assert stream_rows() == before


@pytest.mark.django_db
def test_rebuild_projections_shows_progress_on_stderr(capsys):
    populate()

    run("rebuild_projections")

    assert "replay" in capsys.readouterr().err


@pytest.mark.django_db
def test_rebuild_projections_at_verbosity_0_prints_only_the_closing_line(capsys):
    populate()

    out, _ = run("rebuild_projections", verbosity=0)

    assert "replay" not in capsys.readouterr().err
    assert out.strip().splitlines() == [REBUILT_LINE.search(out).group(0)]


@pytest.mark.django_db
def test_rebuild_projections_list_names_the_stream_projection_and_rebuilds_nothing(capsys):
    populate()
    Stream.objects.filter(aggregate_type="order").update(version=99)

    out, _ = run("rebuild_projections", "--list")

    assert "eventstore.streams" in out.splitlines()
    assert "Rebuilt" not in out
    assert Stream.objects.get(aggregate_type="order").version == 99


@pytest.mark.django_db
def test_rebuild_projections_rejects_an_unknown_projection_by_name(capsys):
    error, _, _ = run_failing("rebuild_projections", "eventstore.streams", "no.such.projection")

    assert "no.such.projection" in str(error)
    assert "eventstore.streams" not in str(error).split("(known")[0]


@pytest.mark.django_db
def test_rebuild_projections_rejects_batch_size_zero(capsys):
    error, _, _ = run_failing("rebuild_projections", "--batch-size", "0")

    assert "--batch-size" in str(error)


# --- verify_projections --------------------------------------------------------------------------


@pytest.mark.django_db
def test_verify_projections_says_ok_on_a_consistent_store(capsys):
    events = populate()

    out, _ = run("verify_projections")

    assert out.startswith("OK:")
    assert f"a rebuild of {len(events)} events" in out


@pytest.mark.django_db
def test_verify_projections_says_ok_on_an_empty_store(capsys):
    out, _ = run("verify_projections")

    assert out.startswith("OK:")
    assert "a rebuild of 0 events" in out


@pytest.mark.django_db
def test_verify_projections_names_a_tampered_row_and_field(capsys):
    populate()
    payment = Stream.objects.get(aggregate_type="payment")
    Stream.objects.filter(pk=payment.pk).update(version=99)

    error, out, _ = run_failing("verify_projections")

    assert "1 read-model row(s) differ" in str(error)
    [line] = out.strip().splitlines()
    assert "eventstore.Stream" in line
    assert f"aggregate_type='payment', aggregate_id='{payment.aggregate_id}'" in line
    assert "version: live 99 != rebuilt 1" in line
    assert "OK" not in out


@pytest.mark.django_db
def test_verify_projections_leaves_the_drifted_read_model_as_it_was(capsys, stream_rows):
    populate()
    Stream.objects.filter(aggregate_type="payment").update(version=99)
    tampered = stream_rows()

    run_failing("verify_projections")

    assert stream_rows() == tampered


@pytest.mark.django_db
def test_verify_projections_reports_a_deleted_row_as_missing(capsys):
    populate()
    payment = Stream.objects.get(aggregate_type="payment")
    payment.delete()

    error, out, _ = run_failing("verify_projections", "eventstore.streams")

    assert "1 read-model row(s) differ" in str(error)
    assert f"aggregate_id='{payment.aggregate_id}'" in out
    assert "missing from the live read model" in out


@pytest.mark.django_db
def test_verify_projections_reports_a_row_no_event_explains_as_unexpected(capsys, stream_rows):
    populate()
    row = stream_rows()[0]
    Stream.objects.create(**{**row, "aggregate_type": "ghost", "aggregate_id": "nobody"})

    _, out, _ = run_failing("verify_projections")

    assert "aggregate_type='ghost', aggregate_id='nobody'" in out
    assert "not derived from any event" in out


@pytest.mark.django_db
def test_verify_projections_rejects_an_unknown_projection_by_name(capsys):
    error, _, _ = run_failing("verify_projections", "no.such.projection")

    assert "no.such.projection" in str(error)


@pytest.mark.django_db
def test_verify_projections_rejects_batch_size_zero(capsys):
    error, _, _ = run_failing("verify_projections", "--batch-size", "0")

    assert "--batch-size" in str(error)


# --- process_events ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_process_events_without_subscribers_says_there_is_nothing_to_do():
    event_store.append(StreamAppendFactory())

    with registry.emptied():
        out, _ = run("process_events")

    assert "No subscribers are registered" in out


@pytest.mark.django_db
def test_process_events_handles_pending_events_exactly_once_across_runs(subscribe):
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
def test_process_events_delivers_only_the_events_appended_since_the_last_run(subscribe):
    recorder = subscribe(Recorder())
    earlier = populate()
    run("process_events", recorder.name)

    later = event_store.append(StreamAppendFactory(), StreamAppendFactory())
    out, _ = run("process_events", recorder.name)

    assert recorder.handled == [event.position for event in earlier + later]
    assert f"handled 2 event(s), checkpoint at position {later[-1].position}" in out


@pytest.mark.django_db
def test_process_events_without_names_runs_every_registered_subscriber(subscribe):
    recorder = subscribe(Recorder())
    events = populate()

    out, _ = run("process_events")

    assert recorder.handled == [event.position for event in events]
    assert f"{recorder.name}: handled {len(events)} event(s)" in out


@pytest.mark.django_db
def test_process_events_rejects_an_unknown_subscriber_by_name(subscribe):
    subscribe(Recorder())

    error, _, _ = run_failing("process_events", "no.such.subscriber")

    assert "no.such.subscriber" in str(error)


@pytest.mark.django_db
def test_process_events_fails_and_records_the_error_on_the_checkpoint(subscribe):
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
def test_process_events_retries_the_failed_event_and_clears_the_error(subscribe):
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
def test_process_events_follow_polls_until_interrupted(subscribe):
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
def test_process_events_rejects_interval_zero(subscribe):
    subscribe(Recorder())

    error, _, _ = run_failing("process_events", "--follow", "--interval", "0")

    assert "--interval" in str(error)


@pytest.mark.django_db
def test_process_events_follow_finishes_its_pass_and_stops_on_sigterm(subscribe):
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
def test_process_events_runs_housekeeping_after_each_pass(subscribe, worker_pass_receiver):
    subscribe(Recorder())
    _, calls = worker_pass_receiver

    run("process_events")

    assert len(calls) == 1


@pytest.mark.django_db
def test_failing_housekeeping_is_reported_and_fails_the_run(subscribe, worker_pass_receiver):
    recorder = subscribe(Recorder())
    receiver, _ = worker_pass_receiver
    receiver.fail = True
    events = populate()

    error, _, err = run_failing("process_events")

    assert "1 subscriber(s) or housekeeping task(s) failed" in str(error)
    assert "housekeeping broke" in err
    # The subscribers' work is kept: housekeeping runs after the catch-up.
    assert recorder.handled == [event.position for event in events]
