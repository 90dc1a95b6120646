"""The replay commands: rebuild_projections and verify_projections (process_events:
test_process_events.py)."""

import re

import pytest

from eventstore.models import Stream
from eventstore.projections import get_projections

REBUILT_LINE = re.compile(
    r"^Rebuilt (?P<projections>\d+) projection\(s\) from (?P<events>\d+) events "
    r"in \d+\.\d\d s \([\d,]+ events/s\)"
    r"(; appends held [\d.]+ ms for the longest of (?P<switches>\d+) switch\(es\))?$",
    re.MULTILINE,
)


# --- rebuild_projections -------------------------------------------------------------------------


@pytest.mark.django_db
def test_rebuild_projections_on_an_empty_store_reports_zero_events(capsys, run):
    out, _ = run("rebuild_projections")

    closing = REBUILT_LINE.search(out)
    assert closing, out
    assert int(closing["projections"]) == len(get_projections())
    assert closing["events"] == "0"
    assert Stream.objects.count() == 0


@pytest.mark.django_db
def test_rebuild_projections_replays_every_event_and_reproduces_the_streams(
    capsys, stream_rows, run, populate
):
    events = populate()
    before = stream_rows()
    assert len(before) == 3

    out, _ = run("rebuild_projections")

    closing = REBUILT_LINE.search(out)
    assert closing, out
    assert int(closing["projections"]) == len(get_projections())
    assert int(closing["switches"]) == len(get_projections())  # one per projection
    assert int(closing["events"]) == len(events)
    assert f"from {len(events)} event(s)" in out
    assert stream_rows() == before


@pytest.mark.django_db
def test_rebuild_projections_in_small_batches_reproduces_the_streams(
    capsys, stream_rows, run, populate
):
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
def test_rebuild_projections_repairs_a_tampered_read_model(capsys, stream_rows, run, populate):
    populate()
    before = stream_rows()
    Stream.objects.filter(aggregate_type="order").update(version=99, last_event_type="Wrong")
    Stream.objects.filter(aggregate_type="payment").delete()

    run("rebuild_projections", "eventstore.streams")

    assert stream_rows() == before


@pytest.mark.django_db
def test_rebuild_projections_drops_rows_no_event_explains(capsys, stream_rows, run, populate):
    populate()
    before = stream_rows()
    Stream.objects.create(**{**before[0], "aggregate_type": "ghost", "aggregate_id": "nobody"})

    run("rebuild_projections")

    assert stream_rows() == before


@pytest.mark.django_db
def test_rebuild_projections_shows_progress_on_stderr(capsys, run, populate):
    populate()

    run("rebuild_projections")

    assert "replay" in capsys.readouterr().err


@pytest.mark.django_db
def test_rebuild_projections_at_verbosity_0_prints_only_the_closing_line(capsys, run, populate):
    populate()

    out, _ = run("rebuild_projections", verbosity=0)

    assert "replay" not in capsys.readouterr().err
    assert out.strip().splitlines() == [REBUILT_LINE.search(out).group(0)]


@pytest.mark.django_db
def test_rebuild_projections_list_names_the_stream_projection_and_rebuilds_nothing(
    capsys, run, populate
):
    populate()
    Stream.objects.filter(aggregate_type="order").update(version=99)

    out, _ = run("rebuild_projections", "--list")

    assert "eventstore.streams" in out.splitlines()
    assert "Rebuilt" not in out
    assert Stream.objects.get(aggregate_type="order").version == 99


@pytest.mark.django_db
def test_rebuild_projections_rejects_an_unknown_projection_by_name(capsys, run_failing):
    error, _, _ = run_failing("rebuild_projections", "eventstore.streams", "no.such.projection")

    assert "no.such.projection" in str(error)
    assert "eventstore.streams" not in str(error).split("(known")[0]


@pytest.mark.django_db
def test_rebuild_projections_rejects_batch_size_zero(capsys, run_failing):
    error, _, _ = run_failing("rebuild_projections", "--batch-size", "0")

    assert "--batch-size" in str(error)


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["rebuild_projections", "verify_projections"])
@pytest.mark.parametrize("pace", ["-1", "nan", "inf"])
def test_the_replay_commands_reject_a_pace_below_0_or_not_finite(
    capsys, run_failing, populate, stream_rows, command, pace
):
    populate()
    before = stream_rows()
    error, out, _ = run_failing(command, "--pace", pace)

    assert "--pace must be a finite number of 0 or more" in str(error)
    assert out == "" and stream_rows() == before


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["rebuild_projections", "verify_projections"])
def test_the_replay_commands_refuse_a_pace_in_place(capsys, run_failing, command):
    error, _, _ = run_failing(command, "--in-place", "--pace", "1")

    assert "--pace paces an online replay: it does not go with --in-place" in str(error)


@pytest.mark.django_db
def test_rebuild_projections_flat_out_or_paced_reproduces_the_streams(
    capsys, run, populate, stream_rows
):
    events = populate()
    before = stream_rows()
    for pace in ("0", "0.5"):
        out, _ = run("rebuild_projections", "--pace", pace, "--batch-size", "2", verbosity=0)
        assert REBUILT_LINE.search(out)["events"] == str(len(events))
        assert stream_rows() == before


# --- verify_projections --------------------------------------------------------------------------


@pytest.mark.django_db
def test_verify_projections_says_ok_on_a_consistent_store(capsys, run, populate):
    events = populate()

    out, _ = run("verify_projections")

    assert out.startswith("OK:")
    assert f"a rebuild of {len(events)} events" in out


@pytest.mark.django_db
def test_verify_projections_says_ok_on_an_empty_store(capsys, run):
    out, _ = run("verify_projections")

    assert out.startswith("OK:")
    assert "a rebuild of 0 events" in out


@pytest.mark.django_db
def test_verify_projections_names_a_tampered_row_and_field(capsys, run_failing, populate):
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
def test_verify_projections_leaves_the_drifted_read_model_as_it_was(
    capsys, stream_rows, run_failing, populate
):
    populate()
    Stream.objects.filter(aggregate_type="payment").update(version=99)
    tampered = stream_rows()

    run_failing("verify_projections")

    assert stream_rows() == tampered


@pytest.mark.django_db
def test_verify_projections_reports_a_deleted_row_as_missing(capsys, run_failing, populate):
    populate()
    payment = Stream.objects.get(aggregate_type="payment")
    payment.delete()

    error, out, _ = run_failing("verify_projections", "eventstore.streams")

    assert "1 read-model row(s) differ" in str(error)
    assert f"aggregate_id='{payment.aggregate_id}'" in out
    assert "missing from the live read model" in out


@pytest.mark.django_db
def test_verify_projections_reports_a_row_no_event_explains_as_unexpected(
    capsys, stream_rows, run_failing, populate
):
    populate()
    row = stream_rows()[0]
    Stream.objects.create(**{**row, "aggregate_type": "ghost", "aggregate_id": "nobody"})

    _, out, _ = run_failing("verify_projections")

    assert "aggregate_type='ghost', aggregate_id='nobody'" in out
    assert "not derived from any event" in out


@pytest.mark.django_db
def test_verify_projections_rejects_an_unknown_projection_by_name(capsys, run_failing):
    error, _, _ = run_failing("verify_projections", "no.such.projection")

    assert "no.such.projection" in str(error)


@pytest.mark.django_db
def test_verify_projections_rejects_batch_size_zero(capsys, run_failing):
    error, _, _ = run_failing("verify_projections", "--batch-size", "0")

    assert "--batch-size" in str(error)
