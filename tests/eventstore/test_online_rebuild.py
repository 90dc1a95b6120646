"""Rebuilds beside the live read models: the switched-in tables are made as the migrations made
them, each projection is switched in on its own, a paced replay sleeps between its batches, one
rebuild of a projection runs at a time, and a rebuild killed at any point leaves the live read
model serving and the next run cleans up after it."""

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, transaction

from eventstore.models import Stream
from eventstore.projections import StreamProjection, get_projections
from eventstore.recorders import recorder
from eventstore.recorders.shadows import retired_name, shadow_name
from eventstore.replay import RebuildRefused, rebuild_online, verify_online
from eventstore.store import EventStore, event_store
from tests.factories import NewEventFactory, StreamAppendFactory
from tests.processes import Service, manage, postgres_server

pytestmark = pytest.mark.django_db(transaction=True)


def tables() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def shape(table: str) -> list[tuple]:
    """The table's constraints and indexes: by name on PostgreSQL (where the switch gives the
    copy's their live names back), by what they cover on SQLite (which cannot rename them)."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    described = [
        (
            name if connection.vendor == "postgresql" else "",
            tuple(c["columns"] or ()),
            tuple(c.get("orders") or ()),
            c["unique"],
            c["primary_key"],
            c["index"],
            bool(c["check"]),
        )
        for name, c in found.items()
        if not (connection.vendor == "sqlite" and c["check"] and not c["columns"])
    ]
    return sorted(described)


def append_streams(count: int, events_per_stream: int = 2) -> None:
    for _ in range(count):
        event_store.append(
            StreamAppendFactory(
                events=[NewEventFactory() for _ in range(events_per_stream)],
            )
        )


def test_the_switched_in_tables_have_the_live_tables_constraints_and_indexes():
    append_streams(5)
    before = {
        model._meta.db_table: shape(model._meta.db_table)
        for projection in get_projections()
        for model in projection.models
    }
    rows = list(Stream.objects.order_by("aggregate_id").values_list("aggregate_id", "version"))

    result = rebuild_online(get_projections())

    assert result.events == 10
    assert {table: shape(table) for table in before} == before
    assert list(Stream.objects.order_by("aggregate_id").values_list("aggregate_id", "version")) == (
        rows
    )
    leftovers = {name for name in tables() if name.endswith(("__rebuild", "__retired"))}
    assert leftovers == set()
    # And a second rebuild over the first one's tables works the same.
    rebuild_online(get_projections())
    assert {table: shape(table) for table in before} == before


def test_each_projection_is_switched_in_on_its_own_holding_appends_for_its_tables_only(
    monkeypatch,
):
    append_streams(3)
    chosen = get_projections()
    holds: list[list[str]] = []  # the tables each hold of appends switched in
    copies: list[set[str]] = []  # the copies there were when each hold began
    hold_appends, switch_shadow = EventStore.hold_appends, type(recorder()).switch_shadow

    def hold() -> None:
        holds.append([])
        copies.append({name for name in tables() if name.endswith("__rebuild")})
        hold_appends()

    def switch(self, table: str, index_names: dict[str, str]) -> None:
        holds[-1].append(table)
        switch_shadow(self, table, index_names)

    monkeypatch.setattr(EventStore, "hold_appends", staticmethod(hold))
    monkeypatch.setattr(type(recorder()), "switch_shadow", switch)

    result = rebuild_online(chosen)

    own = [[model._meta.db_table for model in projection.models] for projection in chosen]
    assert holds == own
    # Each switch left the copies of the projections after it building, and only those.
    assert copies == [
        {shadow_name(table) for later in own[index:] for table in later}
        for index in range(len(own))
    ]
    assert (result.switches, result.switch_attempts, result.events) == (len(chosen), 1, 6)
    assert not {name for name in tables() if name.endswith(("__rebuild", "__retired"))}


def test_a_switch_that_waits_on_a_reader_of_its_table_lets_go_and_tries_again():
    append_streams(3)
    reading, release = threading.Event(), threading.Event()

    def read() -> None:
        with transaction.atomic():
            assert Stream.objects.count() == 3  # holds the table until the transaction ends
            reading.set()
            release.wait(timeout=30)
        connection.close()

    reader = threading.Thread(target=read)
    reader.start()
    timer = threading.Timer(0.6, release.set)
    try:
        assert reading.wait(timeout=30)
        timer.start()
        result = rebuild_online(get_projections([StreamProjection.name]))
    finally:
        release.set()
        timer.cancel()
        reader.join(timeout=30)

    # PostgreSQL's switch waits at most SWITCH_LOCK_TIMEOUT_MS for the reader's lock, gives up
    # and follows again; SQLite's readers read their snapshot and hold no switch up.
    if connection.vendor == "postgresql":
        assert result.switch_attempts > 1
    else:
        assert result.switch_attempts == 1
    assert result.events == 6 and Stream.objects.count() == 3


def test_a_paced_replay_sleeps_after_each_batch_it_goes_on_from_and_pace_0_never(monkeypatch):
    append_streams(10)  # 20 events: 5 full batches of 4, then an empty read
    slept: list[float] = []
    monkeypatch.setattr("eventstore.replay.time.sleep", slept.append)
    streams = get_projections([StreamProjection.name])

    assert rebuild_online(streams, batch_size=4, pace=0.5).events == 20
    assert len(slept) == 5 and all(0 < seconds < 5 for seconds in slept)
    slept.clear()
    rebuild_online(streams, batch_size=4, pace=0)
    _, result = verify_online(streams, batch_size=4, pace=2)
    assert result.events == 20 and len(slept) == 5


@pytest.mark.parametrize("pace", [-0.5, float("nan"), float("inf")])
def test_a_pace_below_0_or_not_finite_is_refused_before_anything_is_copied(pace):
    append_streams(2)
    for run in (rebuild_online, verify_online):
        with pytest.raises(ValueError, match="pace must be a finite number of 0 or more"):
            run(get_projections(), pace=pace)
    assert not {name for name in tables() if name.endswith(("__rebuild", "__retired"))}
    # Nothing holds the projections' locks: a run at a valid pace goes ahead.
    assert rebuild_online(get_projections(), pace=0).events == 4


@pytest.mark.parametrize("replay", [rebuild_online, verify_online])
def test_following_ends_when_appends_outrun_the_replay(replay):
    append_streams(5)
    reads = []

    def outrun(behind: int) -> None:
        """Called after every batch: more events arrive than a batch replays."""
        reads.append(behind)
        assert len(reads) < 1000, "following never ended"
        append_streams(2, events_per_stream=3)

    result = replay(get_projections(), batch_size=2, lag=outrun)

    assert len(reads) < 1000
    if replay is verify_online:
        differences, result = result
        assert differences == []
    assert result.events >= 10


def test_a_second_rebuild_or_check_of_a_projection_is_refused_while_one_runs():
    append_streams(2)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        assert recorder().try_lock_rebuild(StreamProjection.name)
        holding.set()
        release.wait(timeout=30)
        recorder().unlock_rebuild(StreamProjection.name)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(timeout=30)
        for run in (rebuild_online, verify_online):
            with pytest.raises(RebuildRefused, match="another rebuild or check of eventstore"):
                run(get_projections([StreamProjection.name]))
        # Another projection is not held back.
        rebuild_online(get_projections(["orders.orders"]))
    finally:
        release.set()
        holder.join(timeout=30)
    assert rebuild_online(get_projections([StreamProjection.name])).events == 4


def subprocess_environment() -> dict[str, str]:
    """The project's own settings, on this test's database."""
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        url = f"{postgres_server()}/{settings['NAME']}"
    else:
        url = f"sqlite:///{Path(settings['NAME']).resolve()}"
    return {
        **{key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "1",
        "DATABASE_URL": url,
    }


def copy_rows() -> int:
    """Rows in the stream index's copy (0 while there is none)."""
    if shadow_name(Stream._meta.db_table) not in tables():
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {shadow_name(Stream._meta.db_table)}")
        return cursor.fetchone()[0]


SLOWLY = ["--batch-size", "1", "--verbosity", "0"]


@pytest.mark.processes
def test_a_rebuild_killed_midway_leaves_the_live_read_model_and_the_next_run_cleans_up(
    tmp_path,
):
    append_streams(600)
    environment = subprocess_environment()
    live = list(Stream.objects.order_by("aggregate_id").values_list("aggregate_id", "version"))
    # One event per transaction: slow enough to be caught halfway.
    rebuild = Service(
        "rebuild",
        [sys.executable, "manage.py", "rebuild_projections", StreamProjection.name, *SLOWLY],
        environment,
        tmp_path,
    ).start()
    try:
        deadline = time.monotonic() + 60
        while copy_rows() < 20:
            assert rebuild.alive, rebuild.log()
            assert time.monotonic() < deadline, rebuild.log()
            time.sleep(0.02)
        # A second run, in another process, is refused while the first one holds the lock.
        refused = Service(
            "refused",
            [sys.executable, "manage.py", "rebuild_projections", StreamProjection.name],
            environment,
            tmp_path,
        ).start()
        assert refused.process.wait(60) != 0
        assert "another rebuild or check of eventstore.streams is running" in refused.log()
        rebuild.kill()
    finally:
        rebuild.stop()

    assert 0 < copy_rows() < 600
    assert (
        list(Stream.objects.order_by("aggregate_id").values_list("aggregate_id", "version")) == live
    )
    output = manage(environment, "rebuild_projections", StreamProjection.name)
    assert "Rebuilt 1 projection(s) from 1200 events" in output
    assert not {shadow_name("eventstore_stream"), retired_name("eventstore_stream")} & tables()
    assert (
        list(Stream.objects.order_by("aggregate_id").values_list("aggregate_id", "version")) == live
    )
    assert "OK: 1 projection(s) match" in manage(
        environment, "verify_projections", StreamProjection.name
    )
