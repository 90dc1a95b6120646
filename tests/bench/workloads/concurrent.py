"""Workload 9: appends from 1, 4 and 16 clients at once, with and without the log's table lock
(PostgreSQL).

Does the event log take more appends per second when writers to different streams no longer
wait for one another? A slice starts `clients` threads, each with a database connection of its
own (opened before the start), which after a common start barrier append one event per call,
with its expected version, to streams of their own (`STREAMS_PER_CLIENT` each, round robin),
until the slice's time is up; a slice lasts from the start to the last thread's last commit.

Each client count runs in both modes in the same run, on the same database:

- locked (EVENTSTORE_APPEND_LOCK=True): every append takes `LOCK TABLE ... IN EXCLUSIVE MODE`
  on the log until its commit, so appends happen one at a time;
- concurrent (EVENTSTORE_APPEND_LOCK=False): appends to different streams do not wait for one
  another.

The modes take turns in slices of a quarter of a point's time, locked, concurrent, concurrent,
locked, twice (`ORDER`), so that both get `SECONDS` in all and a load that comes and goes on the
machine meanwhile weighs on both alike; each client keeps its streams and their versions from
slice to slice. A point's throughput is its events over its slices' time.

Before each mode's first slice, one append in this thread tells whether the mode takes the table
lock; the notes say so (an event store that does not read the setting locks in both modes).

After each point the log is checked against what the threads counted: as many events stored as
appended, and every stream's versions 1..n with no gap. A mismatch fails the run.

The headline is 16 clients' throughput concurrent over locked; the target is 1.5x.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench import counter
from tests.bench.core import Context, Figure, Figures, Workload

CLIENTS = (1, 4, 16)
MODES = ("locked", "concurrent")  # EVENTSTORE_APPEND_LOCK True, False
# The modes' turns at each client count: each mode's slices a quarter of its time.
ORDER = ("locked", "concurrent", "concurrent", "locked") * 2
# In the streams' names: of one length, so that neither mode writes longer keys.
TAGS = {"locked": "lock", "concurrent": "free"}
STREAMS_PER_CLIENT = 100
SECONDS = 5.0
MINIMUM_SECONDS = 1.0
HEADLINE_CLIENTS = CLIENTS[-1]
TARGET_RATIO = 1.5
BARRIER_TIMEOUT = 60.0


def stream_name(mode: str, clients: int, thread: int, call: int) -> str:
    """The stream a thread's call appends to: the thread's own, round robin over
    STREAMS_PER_CLIENT, apart for each mode and client count."""
    return f"{point_prefix(mode, clients)}t{thread}-s{call % STREAMS_PER_CLIENT}"


def point_prefix(mode: str, clients: int) -> str:
    """What every stream of one point's aggregate ids starts with, and no other point's."""
    return f"{TAGS[mode]}-c{clients}-"


def figure_key(mode: str, clients: int) -> str:
    return f"{mode}{clients}_events_per_s"


def ratio(concurrent: float, locked: float) -> float:
    """Concurrent throughput over locked (0 when locked measured nothing)."""
    return concurrent / locked if locked else 0.0


def duration(scale: float) -> float:
    """How long each point appends: SECONDS scaled, never below MINIMUM_SECONDS."""
    return max(MINIMUM_SECONDS, SECONDS * scale)


def slice_seconds(seconds: float) -> float:
    """How long one slice of a point lasts, so that its slices in ORDER add up to `seconds`."""
    return seconds / ORDER.count(MODES[0])


def lock_notes(locking: dict[str, bool]) -> list[str]:
    """The notes on whether each mode's probe append took the log's table lock, and a warning
    when both did: the event store then ignores EVENTSTORE_APPEND_LOCK."""
    notes = [
        f"{mode} ({_lock_text(mode)}): an append "
        + ("took" if took else "did not take")
        + " the log's table lock"
        for mode, took in locking.items()
    ]
    if locking and all(locking.values()):
        notes.append(
            "every mode took the table lock: this event store does not read "
            "EVENTSTORE_APPEND_LOCK, so the modes measured the same appends"
        )
    return notes


def stream_problems(
    stored: Iterable[tuple[str, int, int, int]], appended: dict[str, int]
) -> list[str]:
    """What is wrong with the stored streams of a point, from rows of (aggregate_id, events,
    lowest version, highest version) against the events appended to each stream: [] when
    every stream holds exactly the events appended to it, versioned 1..n with no gap."""
    problems = []
    seen = set()
    for stream, events, lowest, highest in stored:
        seen.add(stream)
        expected = appended.get(stream)
        if expected is None:
            problems.append(f"{stream}: {events} events stored, none appended")
        elif events != expected:
            problems.append(f"{stream}: {events} events stored, {expected} appended")
        elif (lowest, highest) != (1, events):
            # The (type, id, version) key is unique: n events from 1 to n have no gap.
            problems.append(f"{stream}: versions {lowest}..{highest} for {events} events")
    for stream in sorted(set(appended) - seen):
        if appended[stream]:
            problems.append(f"{stream}: nothing stored, {appended[stream]} appended")
    return problems


@dataclass
class _Client:
    """One client's record, kept from slice to slice: its appends per stream (its streams'
    versions) and when its last append of the latest slice finished."""

    index: int
    versions: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    finished: float = 0.0
    error: BaseException | None = None

    @property
    def appended(self) -> int:
        return sum(self.versions.values())


def _append_until(
    client: _Client, mode: str, clients: int, barrier: threading.Barrier, start: dict
) -> None:
    """A thread's work: its own connection, the barrier, then one-event appends until the
    deadline; the connection is closed at the end, whatever happened."""
    from django.db import connection

    from eventstore.store import NewEvent, event_store

    try:
        connection.ensure_connection()
        barrier.wait(BARRIER_TIMEOUT)
        deadline = start["deadline"]
        while time.perf_counter() < deadline:
            stream = stream_name(mode, clients, client.index, client.calls)
            version = client.versions.get(stream, 0)
            event_store.append_to_stream(
                counter.AGGREGATE_TYPE,
                stream,
                [NewEvent(counter.EVENT_TYPE, counter.payload(client.calls), counter.METADATA)],
                expected_version=version,
            )
            client.versions[stream] = version + 1
            client.calls += 1
        client.finished = time.perf_counter()
    except BaseException as error:  # reported by the main thread
        client.error = error
        barrier.abort()
    finally:
        connection.close()


def _run_slice(mode: str, records: list[_Client], seconds: float) -> float:
    """A thread per client in `records` appending for `seconds` after a common start, each
    going on from its record; the seconds from the start to the last thread's last append."""
    clients = len(records)
    start: dict[str, float] = {}

    def started() -> None:  # run by one thread as the barrier opens, before any appends
        start["at"] = time.perf_counter()
        start["deadline"] = start["at"] + seconds

    barrier = threading.Barrier(clients, action=started)
    threads = [
        threading.Thread(
            target=_append_until,
            args=(record, mode, clients, barrier, start),
            name=f"bench-{mode}-{clients}-{record.index}",
        )
        for record in records
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [record.error for record in records if record.error is not None]
    real = [error for error in errors if not isinstance(error, threading.BrokenBarrierError)]
    if errors:
        raise RuntimeError(
            f"{mode}, {clients} clients: a thread failed: {(real or errors)[0]!r}"
        ) from (real or errors)[0]
    return max(record.finished for record in records) - start["at"]


def _verify(mode: str, clients: int, records: list[_Client]) -> None:
    """Fail unless the log holds exactly what the point's threads appended, 1..n per stream."""
    from django.db.models import Count, Max, Min

    from eventstore.models import Event

    appended = {stream: n for record in records for stream, n in record.versions.items()}
    stored = list(
        Event.objects.filter(
            aggregate_type=counter.AGGREGATE_TYPE,
            aggregate_id__startswith=point_prefix(mode, clients),
        )
        .values("aggregate_id")
        .annotate(events=Count("position"), lowest=Min("version"), highest=Max("version"))
        .values_list("aggregate_id", "events", "lowest", "highest")
    )
    problems = stream_problems(stored, appended)
    total_stored = sum(row[1] for row in stored)
    total_appended = sum(appended.values())
    if total_stored != total_appended:
        problems.insert(0, f"{total_stored} events stored, {total_appended} counted")
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise RuntimeError(f"{mode}, {clients} clients: the log disagrees: {shown}{more}")


def _takes_table_lock(mode: str) -> bool:
    """Whether one append in this thread, in the current settings, locks the log table."""
    from django.db import connection

    from eventstore.store import NewEvent, event_store

    statements: list[str] = []

    def watch(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        event_store.append_to_stream(
            counter.AGGREGATE_TYPE,
            f"probe-{mode}-{uuid.uuid4().hex[:8]}",
            [NewEvent(counter.EVENT_TYPE, counter.payload(0), counter.METADATA)],
            expected_version=0,
        )
    return any("LOCK TABLE" in sql.upper() and "EXCLUSIVE" in sql.upper() for sql in statements)


def _server_settings() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        values = []
        for name in ("synchronous_commit", "commit_delay", "max_connections"):
            cursor.execute(f"SHOW {name}")
            values.append(f"{name}={cursor.fetchone()[0]}")
    return ", ".join(values)


def _project(context: Context) -> Figures:
    from django.db import connection
    from django.test.utils import override_settings

    if context.backend != "postgres":
        raise RuntimeError("the append-concurrent workload runs on PostgreSQL only (--postgres)")
    context.notes.append(f"PostgreSQL as the server has it: {_server_settings()}")
    seconds = slice_seconds(duration(context.scale))
    figures: Figures = {}
    locking: dict[str, bool] = {}  # mode -> whether an append took the table lock
    for clients in CLIENTS:
        records = {mode: [_Client(index) for index in range(clients)] for mode in MODES}
        elapsed = dict.fromkeys(MODES, 0.0)
        for mode in ORDER:
            with override_settings(EVENTSTORE_APPEND_LOCK=mode == "locked"):
                if mode not in locking:
                    locking[mode] = _takes_table_lock(mode)
                connection.close()  # only the threads' connections while they run
                elapsed[mode] += _run_slice(mode, records[mode], seconds)
        for mode in MODES:
            _verify(mode, clients, records[mode])
            appended = sum(record.appended for record in records[mode])
            figures[figure_key(mode, clients)] = appended / elapsed[mode]
            context.progress(
                f"{mode}, {clients} client(s): {appended} events in {elapsed[mode]:.2f} s, "
                f"{appended / elapsed[mode]:,.0f} events/s; the log agrees"
            )
    context.notes.extend(lock_notes(locking))
    figures["ratio"] = ratio(
        figures[figure_key("concurrent", HEADLINE_CLIENTS)],
        figures[figure_key("locked", HEADLINE_CLIENTS)],
    )
    connection.close()
    return figures


def _chart(medians: dict[str, float | None], path: Path) -> None:
    """Events/s against clients, a line per mode (locked's figures below its points,
    concurrent's above), and the target at 16 clients: 1.5x locked's."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=100)
    styles = {"locked": ("s", -14), "concurrent": ("o", 8)}  # marker, label's offset
    for mode in MODES:
        marker, offset = styles[mode]
        rates = [medians.get(figure_key(mode, clients)) or 0.0 for clients in CLIENTS]
        axes.plot(CLIENTS, rates, marker=marker, label=f"{mode} ({_lock_text(mode)})")
        for x, y in zip(CLIENTS, rates, strict=True):
            axes.annotate(
                f"{y:,.0f}", (x, y), textcoords="offset points", xytext=(0, offset), ha="center"
            )
    target = (medians.get(figure_key("locked", HEADLINE_CLIENTS)) or 0.0) * TARGET_RATIO
    axes.plot(
        [HEADLINE_CLIENTS],
        [target],
        marker="x",
        color="tab:red",
        linestyle="none",
        label=f"target: concurrent >= {TARGET_RATIO:g}x locked at {HEADLINE_CLIENTS} clients",
    )
    highest = max([target, *(medians.get(figure.key) or 0.0 for figure in _POINT_FIGURES)])
    axes.set_xscale("log", base=2)
    axes.set_xticks(CLIENTS, [str(clients) for clients in CLIENTS])
    axes.set_xlabel("clients (threads, a connection each, streams of their own)")
    axes.set_ylabel("events/s")
    axes.set_ylim(bottom=0, top=(highest or 1) * 1.25)
    headline = medians.get("ratio")
    axes.set_title(
        "Appends of one event per call, PostgreSQL"
        + (f": {headline:.2f}x at {HEADLINE_CLIENTS} clients" if headline else ""),
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def _lock_text(mode: str) -> str:
    return f"EVENTSTORE_APPEND_LOCK={mode == 'locked'}"


def _point_figure(mode: str, clients: int) -> Figure:
    return Figure(
        figure_key(mode, clients),
        f"{clients} client{'s' * (clients > 1)}, {mode}: throughput",
        "events/s",
        baseline=False,
    )


_POINT_FIGURES = tuple(_point_figure(mode, clients) for clients in CLIENTS for mode in MODES)

APPEND_CONCURRENT = Workload(
    name="append-concurrent",
    title=(
        f"Append 1 event per call from {', '.join(map(str, CLIENTS))} clients at once, "
        f"{STREAMS_PER_CLIENT} streams each, with and without the table lock, "
        f"{SECONDS:g} s each in alternating slices"
    ),
    figures=(
        Figure(
            "ratio",
            f"throughput, {HEADLINE_CLIENTS} clients, concurrent over locked",
            "x",
            target_value=TARGET_RATIO,
            baseline=False,
        ),
        *_POINT_FIGURES,
    ),
    project=_project,
    baseline=None,
    backends=("postgres",),
    section="append-concurrent",
    chart=_chart,
)
