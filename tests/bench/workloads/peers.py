"""Workload 9: the project's event store against the libraries a user would pick instead, at
equal durability.

Three columns of work, the same for every system, each column on a fresh database of its own:

- append: one event per call, each call its own transaction with an expected-version check,
  round-robin over the append workload's streams;
- load: a stream of 1,000 and of 10,000 events written in calls of 1,000, then read back whole
  and folded (the median of five reads, as the load workload times them);
- replay: the log grown to 20,000 and to 200,000 events as the replay workload writes it, then
  read whole in order, 500 events a page, and folded.

The systems: the project (`event_store.append_to_stream`, `read_for_load`, `read_all`), the
`eventsourcing` library's SQLite and PostgreSQL application recorders, and
`eventsourcing-django`'s application recorder on a Django database, each used at recorder level
(`insert_events` of `StoredEvent`s, relying on their unique (originator_id, originator_version)
key; `select_events`; `select_notifications` pages). The peers run in a virtual environment of
their own (tests/bench/peers_env.py, made on first use), one process per column
(tests/bench/peers_runner.py). Every event carries the counter's payload and metadata
(tests/bench/payloads.py).

On PostgreSQL every system's tables are analyzed (ANALYZE) after they are written and before
their reads are timed, as autovacuum would have left them: without statistics, the planner
sorted the rest of eventsourcing-django's log for every page of its replay (a bitmap scan),
which measured when autovacuum had run rather than the library.

Durability is the project's for all: on SQLite, WAL and the project's synchronous level
(SQLITE_SYNCHRONOUS, FULL by default), set on the peers' connections (eventsourcing's pool
opens them; eventsourcing-django's through Django's init_command); on PostgreSQL, the server's
synchronous_commit (on). Each system's connection is read back and the settings go to the
notes. The target: the project ahead of eventsourcing-django on every column.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.bench import counter, peers_env, peers_runner, report
from tests.bench.core import Context, Figure, Figures, Stopwatch, Workload, timed_ms
from tests.bench.peers_runner import Spec, append_key, load_key, replay_key
from tests.bench.setup import BENCH_ENVIRONMENT, postgres_database
from tests.bench.workloads import append, load, replay

ROOT = Path(__file__).resolve().parents[3]
PEERS = peers_runner.SYSTEMS
SYSTEMS = ("project", *PEERS)
TARGET_PEER = "eventsourcing-django"
TARGET = f"the project ahead of {TARGET_PEER} on every column"
# A quarter of the append workload's events: on PostgreSQL every system appends a few hundred
# events a second, and 20,000 per system made a run last several minutes.
APPEND_EVENTS = append.EVENTS // 4
LOAD_SIZES = load.SIZES[:2]  # 1,000 and 10,000
REPLAY_SIZES = replay.SIZES  # 20,000 and 200,000
PEER_TIMEOUT = 900  # seconds for one column of one peer
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}

COLUMNS = (
    Figure(append_key(), "append, 1 event per call", "events/s"),
    *(
        Figure(load_key(size), f"load {size:,} events", "ms", higher_is_better=False)
        for size in LOAD_SIZES
    ),
    *(Figure(replay_key(size), f"replay {size:,} events", "events/s") for size in REPLAY_SIZES),
)


def figure_key(system: str, column: Figure) -> str:
    return f"{system}.{column.key}"


def spec(context: Context, synchronous: str = "FULL") -> Spec:
    """The sizes of the work, from the append, load and replay workloads' own constants."""
    return Spec(
        append_events=context.size(APPEND_EVENTS),
        append_streams=append.STREAMS,
        load_sizes=tuple((size, context.size(size, minimum=load.TAIL * 4)) for size in LOAD_SIZES),
        load_chunk=load.CHUNK,
        load_repeats=load.REPEATS,
        replay_sizes=tuple(
            (size, context.size(size, minimum=1_000) // 1_000 * 1_000) for size in REPLAY_SIZES
        ),
        replay_streams=replay.STREAMS,
        replay_streams_per_call=replay.STREAMS_PER_CALL,
        replay_events_per_stream_per_call=replay.EVENTS_PER_STREAM_PER_CALL,
        batch_size=replay.BATCH_SIZE,
        sqlite_synchronous=synchronous,
    )


# --- the project ---------------------------------------------------------------------------------


def _project_append(context: Context, work: Spec) -> Figures:
    """The append-one workload's own loop."""
    return {append_key(): append.one_per_call(work.append_events)}


def _project_load(context: Context, work: Spec) -> Figures:
    from eventstore.store import NewEvent, event_store

    figures = {}
    for size, events in work.load_sizes:
        stream_id = f"load-{size}"
        context.progress(f"project: writing a stream of {events:,} events")
        for start in range(0, events, work.load_chunk):
            event_store.append_to_stream(
                counter.AGGREGATE_TYPE,
                stream_id,
                [
                    NewEvent(counter.EVENT_TYPE, counter.payload(n), counter.METADATA)
                    for n in range(start, min(start + work.load_chunk, events))
                ],
                expected_version=start,
            )
        _analyze()

        def read(stream_id=stream_id):
            [(_, rows)] = event_store.read_for_load((counter.AGGREGATE_TYPE, stream_id, None))
            return counter.fold(payload for _, _, payload in rows)

        assert read() == (events, sum(range(events))), read()
        figures[load_key(size)] = timed_ms(read, work.load_repeats)
    return figures


def _project_replay(context: Context, work: Spec) -> Figures:
    from eventstore.store import event_store

    def read() -> tuple[int, int]:
        events = event_store.read_all(batch_size=work.batch_size)
        return counter.fold(event.payload for event in events)

    figures = {}
    written = 0
    for size, events in work.replay_sizes:
        context.progress(f"project: writing {events - written:,} more events")
        replay._fill_project(written, events)
        written = events
        _analyze()
        with Stopwatch() as clock:
            replayed = read()
        assert replayed == (events, sum(range(events))), replayed
        figures[replay_key(size)] = events / clock.seconds
    return figures


def _analyze() -> None:
    """On PostgreSQL, the planner's statistics of a table just written, as every system gets
    before its reads are timed (see the module docstring)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


PROJECT_WORK: dict[str, Callable[[Context, Spec], Figures]] = {
    "append": _project_append,
    "load": _project_load,
    "replay": _project_replay,
}


@contextmanager
def _copy_of_database(context: Context, name: str) -> Iterator[str]:
    """A new copy of the database `name` (nothing connected to it); its name, then dropped."""
    if context.backend == "sqlite":
        path = context.workdir / f"project-{uuid.uuid4().hex[:8]}.sqlite3"
        with closing(sqlite3.connect(name)) as source, closing(sqlite3.connect(path)) as copy:
            source.backup(copy)
        yield str(path)
        return
    assert context.admin_url, "PostgreSQL runs need an admin URL"
    with postgres_database(context.admin_url, "project", template=name) as url:
        yield urlsplit(url).path.lstrip("/")


@contextmanager
def _fresh_project_database(context: Context) -> Iterator[None]:
    """For the block, Django's database is a new copy of the run's migrated, still empty one."""
    from django.db import connection, connections

    connections.close_all()
    settings = connection.settings_dict
    template = settings["NAME"]
    with _copy_of_database(context, template) as name:
        settings["NAME"] = name
        try:
            yield
        finally:
            connections.close_all()
            settings["NAME"] = template


def _project_durability() -> dict[str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        return peers_runner.durability_of(cursor, connection.vendor)


def _project(context: Context, work: Spec) -> Figures:
    figures = {}
    for column, measure in PROJECT_WORK.items():
        with _fresh_project_database(context):
            context.progress(f"project: {column}")
            figures |= _prefixed("project", measure(context, work))
            _note_durability(context, "project", _project_durability())
    return figures


# --- the peers -----------------------------------------------------------------------------------


@contextmanager
def _peer_database(context: Context, system: str, column: str) -> Iterator[str]:
    """A new, empty database for one column of one peer: its SQLite file, or its URL."""
    if context.backend == "sqlite":
        yield str(context.workdir / f"{system}-{column}.sqlite3")
        return
    assert context.admin_url, "PostgreSQL runs need an admin URL"
    with postgres_database(context.admin_url, system.replace("-", "_")) as url:
        yield url


def _peer_environment() -> dict[str, str]:
    """The worker's environment without the project's settings (the runner configures its own
    Django)."""
    dropped = {*BENCH_ENVIRONMENT, "DATABASE_URL"}
    return {key: value for key, value in os.environ.items() if key not in dropped}


def _run_peer(
    python: Path, system: str, column: str, context: Context, target: str, work: Spec
) -> dict[str, Any]:
    command = [str(python), "-m", "tests.bench.peers_runner", system, column]
    command += ["--backend", context.backend, "--target", target, "--spec", work.to_json()]
    # Its progress and errors go to the worker's stderr, shown when the run fails.
    finished = subprocess.run(
        command,
        cwd=ROOT,
        env=_peer_environment(),
        stdout=subprocess.PIPE,
        text=True,
        timeout=PEER_TIMEOUT,
    )
    if finished.returncode != 0:
        raise RuntimeError(f"{system}, {column}: the runner failed (exit {finished.returncode})")
    return peers_runner.parse_output(finished.stdout)


def _check_peer(system: str, output: dict[str, Any]) -> None:
    """The peer ran on the pinned versions, and refused a version written twice."""
    for name, version in output["versions"].items():
        pinned = peers_env.pinned_version(name)
        if pinned and pinned != version:
            raise RuntimeError(f"{system} ran with {name} {version}, not the pinned {pinned}")
    if output["checks"].get("conflict_refused") is False:
        raise RuntimeError(f"{system} accepted a stream version written twice")


def _peer(context: Context, system: str, work: Spec) -> Figures:
    python = peers_env.ensure(progress=context.progress)
    figures = {}
    for column in peers_runner.COLUMNS:
        context.progress(f"{system}: {column}")
        with _peer_database(context, system, column) as target:
            output = _run_peer(python, system, column, context, target, work)
        _check_peer(system, output)
        figures |= _prefixed(system, output["figures"])
        _note_durability(context, system, output["durability"])
    return figures


# --- the workload --------------------------------------------------------------------------------


def _prefixed(system: str, figures: Figures) -> Figures:
    return {f"{system}.{key}": value for key, value in figures.items()}


def _note_durability(context: Context, system: str, durability: dict[str, str]) -> None:
    settings = ", ".join(f"{key}={value}" for key, value in sorted(durability.items()))
    note = f"{system}: {settings} (read back from its connection)"
    if note not in context.notes:
        context.notes.append(note)


def _run(context: Context) -> Figures:
    from django.conf import settings

    work = spec(context, settings.SQLITE_SYNCHRONOUS)
    figures = _project(context, work)
    for system in PEERS:
        figures |= _peer(context, system, work)
    return figures


def advantage(column: Figure, project: float | None, peer: float | None) -> float | None:
    """How many times better the project's figure is than the peer's (above 1: ahead)."""
    if not project or not peer:
        return None
    return project / peer if column.higher_is_better else peer / project


def mark(column: Figure, project: float | None, peer: float | None) -> str:
    """The target's cell for one column: met or missed, with the project's advantage."""
    times = advantage(column, project, peer)
    if times is None:
        return "-"
    return f"met ({times:.2f}x)" if times > 1 else f"**missed** ({times:.2f}x)"


def system_label(system: str) -> str:
    if system == "project":
        return "project"
    return f"{system} {peers_env.pinned_version(system)}"


def table_rows(backend: str, result: report.WorkloadResult) -> list[list[str]]:
    """A backend's rows: each system's medians, then the target's marks."""
    name = NAMES[backend]
    if not result.project_runs:
        return [[name, "failed", *["-"] * len(COLUMNS)]]
    rows = [
        [name, system_label(system)]
        + [report.number(result.project(figure_key(system, column))) for column in COLUMNS]
        for system in SYSTEMS
    ]
    marks = [
        mark(
            column,
            result.project(figure_key("project", column)),
            result.project(figure_key(TARGET_PEER, column)),
        )
        for column in COLUMNS
    ]
    return [*rows, [name, f"target: ahead of {TARGET_PEER}?", *marks]]


def _environment(
    results: list[tuple[str, str, report.WorkloadResult]], runs: int, scale: float
) -> list[str]:
    servers = [server for backend, server, _ in results if backend == "postgres"]
    backend = "postgres" if servers else "sqlite"
    lines = report.environment(backend, runs, scale, servers[0] if servers else "")
    versions = ", ".join(
        f"{name} {peers_env.pinned_version(name)}"
        for name in ("eventsourcing", "eventsourcing-django", "Django", "psycopg")
    )
    lines.append(
        f"- Peers: {versions} (in `.bench/peers-venv`, eventsourcing-django without its "
        "dependencies)"
    )
    return lines


DURABILITY_NOTE = re.compile(
    r"(?P<system>[\w-]+): (?P<settings>.*) \(read back from its connection\)"
)


def _merged(notes: list[str]) -> list[str]:
    """The notes with the systems that read back the same durability settings named in one."""
    systems: dict[str, list[str]] = {}
    others = []
    for note in notes:
        match = DURABILITY_NOTE.fullmatch(note)
        if match:
            systems.setdefault(match["settings"], []).append(match["system"])
        else:
            others.append(note)
    merged = [
        f"{', '.join(names)}: {settings} (read back from "
        + ("each connection)" if len(names) > 1 else "its connection)")
        for settings, names in systems.items()
    ]
    return merged + others


def render(results: list[tuple[str, str, report.WorkloadResult]], runs: int, scale: float) -> str:
    """The peers section: where and how, the target, one table for every backend, the notes."""
    from tabulate import tabulate

    headers = ["Database", "System", *(f"{c.label} ({c.unit})" for c in COLUMNS)]
    rows = [row for backend, _, result in results for row in table_rows(backend, result)]
    notes = [
        f"- {NAMES[backend]}, {note}"
        for backend, _, result in results
        for note in [*_merged(result.notes), *(f"failed: {error}" for error in result.errors)]
    ]
    parts = ["### Latest run", "", *_environment(results, runs, scale), ""]
    parts += [f"Target: {TARGET}.", ""]
    parts += [tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    parts += ["Notes from the runs:", "", *dict.fromkeys(notes), ""]
    return "\n".join(parts)


PEERS_WORKLOAD = Workload(
    name="peers",
    title=f"The project against eventsourcing and eventsourcing-django ({TARGET})",
    figures=tuple(
        dataclasses.replace(
            column,
            key=figure_key(system, column),
            label=f"{system}: {column.label}",
            baseline=False,
        )
        for system in SYSTEMS
        for column in COLUMNS
    ),
    project=_run,
    baseline=None,
    section="peers",
    prepare=lambda progress: peers_env.ensure(progress=progress),
    render=render,
)
