"""The peers' side of the `peers` workload: one column of its work done by one library's recorder
on a fresh database; prints the figures as JSON.

    python -m tests.bench.peers_runner SYSTEM COLUMN --backend sqlite|postgres --target PATH|URL
        --spec JSON

SYSTEM is `eventsourcing` (its SQLite or PostgreSQL application recorder) or
`eventsourcing-django` (its Django application recorder, on a Django database configured here);
COLUMN is `append`, `load` or `replay`; the spec (`Spec`) gives the sizes, the same the project
is measured with. It runs in the peers' virtual environment (tests/bench/peers_env.py) and
imports nothing of the project: only the counter's events (tests/bench/payloads.py) and the
stopwatch (tests/bench/core.py), which import nothing of it either.

Each event is a `StoredEvent`: the stream's originator id, its version, a topic and, as state,
the JSON of the counter's payload and metadata (what the project stores in its two JSON
columns). Appends rely on the library's own optimistic concurrency: the unique
(originator_id, originator_version) key refuses a version written twice. The last line printed
is `{"system": ..., "column": ..., "figures": {...}, "durability": {...}, "versions": {...},
"checks": {...}}`; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

from tests.bench.core import Stopwatch, timed_ms
from tests.bench.payloads import EVENT_TYPE, METADATA, fold, payload

SYSTEMS = ("eventsourcing", "eventsourcing-django")
COLUMNS = ("append", "load", "replay")
TOPIC = f"tests.bench.payloads:{EVENT_TYPE}"
# Stream names ("counter-7") become originator ids, which both libraries want as UUIDs.
NAMESPACE = uuid.UUID("5b2f6a52-64c4-4f0e-9a53-7d1f1b0c2e11")
APPLICATION = "bench"  # eventsourcing-django's application_name
DISTRIBUTIONS = ("eventsourcing", "eventsourcing-django", "Django", "psycopg")
SYNCHRONOUS_NAMES = {"0": "OFF", "1": "NORMAL", "2": "FULL", "3": "EXTRA"}


@dataclass(frozen=True)
class Spec:
    """The work of each column, the same for every system. Sizes are (label size, events):
    the label is the unscaled size that names the figure."""

    append_events: int
    append_streams: int
    load_sizes: tuple[tuple[int, int], ...]
    load_chunk: int
    load_repeats: int
    replay_sizes: tuple[tuple[int, int], ...]
    replay_streams: int
    replay_streams_per_call: int
    replay_events_per_stream_per_call: int
    batch_size: int
    sqlite_synchronous: str = "FULL"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Spec:
        fields = json.loads(text)
        for key in ("load_sizes", "replay_sizes"):
            fields[key] = tuple(tuple(pair) for pair in fields[key])
        return cls(**fields)


def append_key() -> str:
    return "append_per_s"


def load_key(size: int) -> str:
    return f"load_{size // 1000}k_ms"


def replay_key(size: int) -> str:
    return f"replay_{size // 1000}k_per_s"


def parse_output(stdout: str) -> dict[str, Any]:
    """The runner's result: the last line of its output, which must be a JSON object whose
    `figures` are numbers. ValueError otherwise."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the peers' runner printed nothing")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as error:
        raise ValueError(f"the peers' runner's last line is not JSON: {lines[-1][:200]}") from error
    figures = result.get("figures") if isinstance(result, dict) else None
    if not isinstance(figures, dict) or not all(
        isinstance(value, int | float) and not isinstance(value, bool) for value in figures.values()
    ):
        raise ValueError(f"the peers' runner reported no figures: {lines[-1][:200]}")
    return result


def durability_of(cursor: Any, vendor: str) -> dict[str, str]:
    """What a connection's commits are made with, read back from it through `cursor` (a DB-API
    cursor of an open connection): journal mode and synchronous on SQLite, synchronous_commit
    on PostgreSQL."""
    if vendor == "sqlite":
        cursor.execute("PRAGMA journal_mode")
        journal = str(cursor.fetchone()[0]).lower()
        cursor.execute("PRAGMA synchronous")
        synchronous = str(cursor.fetchone()[0])
        return {
            "journal_mode": journal,
            "synchronous": SYNCHRONOUS_NAMES.get(synchronous, synchronous),
        }
    cursor.execute("SHOW synchronous_commit")
    row = cursor.fetchone()
    value = row["synchronous_commit"] if isinstance(row, dict) else row[0]
    return {"synchronous_commit": str(value)}


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


# --- the peers -----------------------------------------------------------------------------------


@dataclass
class Peer:
    """One library's application recorder on its fresh database, and how to read back its
    connection's durability settings, to analyze its tables (PostgreSQL) and to close it."""

    recorder: Any
    durability: Callable[[], dict[str, str]]
    close: Callable[[], None]
    analyze: Callable[[], None] = lambda: None


def _postgres_parts(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "dbname": parts.path.lstrip("/"),
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": parts.username or "postgres",
        "password": parts.password or "",
    }


def _eventsourcing_sqlite(path: str, synchronous: str) -> Peer:
    """eventsourcing's SQLite recorder. Its pool opens each connection in autocommit mode and
    puts a file database in WAL mode; it sets no synchronous level, so every connection it
    opens gets the project's here."""
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(path)
    create = datastore.pool._create_connection

    def create_with_synchronous():
        connection = create()
        connection.cursor().execute(f"PRAGMA synchronous={synchronous}")
        return connection

    datastore.pool._create_connection = create_with_synchronous
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()

    def durability() -> dict[str, str]:
        with datastore.transaction(commit=True) as cursor:
            return durability_of(cursor, "sqlite")

    return Peer(recorder, durability, datastore.close)


def _eventsourcing_postgres(url: str) -> Peer:
    """eventsourcing's PostgreSQL recorder, as its factory makes it (a pool of one connection)."""
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    datastore = PostgresDatastore(**_postgres_parts(url))
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()

    def durability() -> dict[str, str]:
        with datastore.get_connection() as connection, connection.cursor() as cursor:
            return durability_of(cursor, "postgres")

    def analyze() -> None:
        with datastore.get_connection() as connection:
            connection.execute("ANALYZE")

    return Peer(recorder, durability, datastore.close, analyze)


def _django_database(backend: str, target: str, synchronous: str) -> dict[str, Any]:
    if backend == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": target,
            "OPTIONS": {
                "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous};"
            },
        }
    parts = _postgres_parts(target)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts["dbname"],
        "HOST": parts["host"],
        "PORT": parts["port"],
        "USER": parts["user"],
        "PASSWORD": parts["password"],
    }


def _eventsourcing_django(backend: str, target: str, synchronous: str) -> Peer:
    """eventsourcing-django's application recorder on Django's default database, migrated."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=["eventsourcing_django"],
        DATABASES={"default": _django_database(backend, target, synchronous)},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        USE_TZ=True,
    )
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from django.db import connection, connections
    from eventsourcing_django.models import StoredEventRecord
    from eventsourcing_django.recorders import DjangoApplicationRecorder

    recorder = DjangoApplicationRecorder(application_name=APPLICATION, model=StoredEventRecord)

    def durability() -> dict[str, str]:
        with connection.cursor() as cursor:
            return durability_of(cursor, connection.vendor)

    def analyze() -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")

    return Peer(recorder, durability, connections.close_all, analyze)


def open_peer(system: str, backend: str, target: str, synchronous: str) -> Peer:
    if synchronous not in SYNCHRONOUS_NAMES.values():
        raise ValueError(f"not an SQLite synchronous level: {synchronous!r}")
    if system == "eventsourcing-django":
        return _eventsourcing_django(backend, target, synchronous)
    if backend == "sqlite":
        return _eventsourcing_sqlite(target, synchronous)
    return _eventsourcing_postgres(target)


# --- the work ------------------------------------------------------------------------------------


def stream_id(name: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, name)


def stored_event(originator_id: uuid.UUID, version: int, number: int) -> Any:
    from eventsourcing.persistence import StoredEvent

    state = json.dumps({"payload": payload(number), "metadata": METADATA}).encode()
    return StoredEvent(
        originator_id=originator_id, originator_version=version, topic=TOPIC, state=state
    )


def payloads(records: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """The payloads of stored events or notifications, decoded."""
    for record in records:
        yield json.loads(record.state)["payload"]


def _conflict_refused(recorder: Any, originator_id: uuid.UUID) -> bool:
    """Whether writing a version the stream already has is refused, as a stale writer's is."""
    from eventsourcing.persistence import IntegrityError

    try:
        recorder.insert_events([stored_event(originator_id, 1, 0)])
    except IntegrityError:
        return True
    return False


def append(peer: Peer, spec: Spec) -> tuple[dict[str, float], dict[str, Any]]:
    """One event per call, round-robin over the streams, each call its own transaction."""
    recorder = peer.recorder
    streams = [stream_id(f"counter-{stream}") for stream in range(spec.append_streams)]
    versions = [0] * len(streams)
    with Stopwatch() as clock:
        for number in range(spec.append_events):
            stream = number % len(streams)
            recorder.insert_events([stored_event(streams[stream], versions[stream] + 1, number)])
            versions[stream] += 1
    figures = {append_key(): spec.append_events / clock.seconds}
    return figures, {"conflict_refused": _conflict_refused(recorder, streams[0])}


def load(peer: Peer, spec: Spec) -> tuple[dict[str, float], dict[str, Any]]:
    """Each stream written in calls of `load_chunk` events, then read back whole and folded."""
    recorder = peer.recorder
    figures = {}
    for size, events in spec.load_sizes:
        originator_id = stream_id(f"load-{size}")
        _progress(f"writing a stream of {events:,} events")
        for start in range(0, events, spec.load_chunk):
            numbers = range(start, min(start + spec.load_chunk, events))
            recorder.insert_events([stored_event(originator_id, n + 1, n) for n in numbers])
        peer.analyze()

        def read(originator_id=originator_id):
            return fold(payloads(recorder.select_events(originator_id)))

        assert read() == (events, sum(range(events))), read()
        figures[load_key(size)] = timed_ms(read, spec.load_repeats)
    return figures, {}


def _replay_calls(spec: Spec, start: int, stop: int) -> Iterator[list[tuple[uuid.UUID, int]]]:
    """The events `start`..`stop` as the project's replay workload writes them: calls of
    `replay_streams_per_call` streams x `replay_events_per_stream_per_call` events, as
    (stream, number) pairs."""
    per_stream = spec.replay_events_per_stream_per_call
    per_call = spec.replay_streams_per_call * per_stream
    for call_start in range(start, stop, per_call):
        call = call_start // per_call
        events = []
        for offset in range(spec.replay_streams_per_call):
            stream = (call * spec.replay_streams_per_call + offset) % spec.replay_streams
            first = call_start + offset * per_stream
            originator_id = stream_id(f"counter-{stream}")
            events += [(originator_id, n) for n in range(first, first + per_stream)]
        yield events


def read_log(recorder: Any, batch_size: int) -> tuple[int, int]:
    """The whole log in notification order, a page of `batch_size` at a time, folded."""
    count = total = 0
    start = None
    while True:
        page = recorder.select_notifications(start, batch_size, inclusive_of_start=False)
        page_count, page_total = fold(payloads(page))
        count, total = count + page_count, total + page_total
        if len(page) < batch_size:
            return count, total
        start = page[-1].id


def replay(peer: Peer, spec: Spec) -> tuple[dict[str, float], dict[str, Any]]:
    """The log grown to each size, then read whole."""
    recorder = peer.recorder
    versions: dict[uuid.UUID, int] = {}
    figures = {}
    written = 0
    for size, events in spec.replay_sizes:
        _progress(f"writing {events - written:,} more events")
        for call in _replay_calls(spec, written, events):
            stored = []
            for originator_id, number in call:
                versions[originator_id] = versions.get(originator_id, 0) + 1
                stored.append(stored_event(originator_id, versions[originator_id], number))
            recorder.insert_events(stored)
        written = events
        peer.analyze()
        with Stopwatch() as clock:
            replayed = read_log(recorder, spec.batch_size)
        assert replayed == (events, sum(range(events))), replayed
        figures[replay_key(size)] = events / clock.seconds
    return figures, {}


WORK = {"append": append, "load": load, "replay": replay}


def versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in DISTRIBUTIONS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.peers_runner")
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("column", choices=COLUMNS)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--target", required=True, help="SQLite file, or PostgreSQL URL")
    parser.add_argument("--spec", required=True, type=Spec.from_json)
    options = parser.parse_args(argv)

    spec = options.spec
    peer = open_peer(options.system, options.backend, options.target, spec.sqlite_synchronous)
    try:
        figures, checks = WORK[options.column](peer, spec)
        durability = peer.durability()
    finally:
        peer.close()
    result = {
        "system": options.system,
        "column": options.column,
        "figures": figures,
        "durability": durability,
        "versions": versions(),
        "checks": checks,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
