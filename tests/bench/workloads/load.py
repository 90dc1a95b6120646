"""Workload 3: loading one aggregate whose stream holds 1,000, 10,000 and 100,000 events.

Each stream is written with snapshots taken as the project takes them, and ends with
`TAIL` events written after the last snapshot, so a snapshot load reads a snapshot and `TAIL`
events. "Full" loads ignore snapshots and replay the whole stream.
"""

from __future__ import annotations

from tests.bench import counter
from tests.bench.core import Context, Figure, Figures, Workload, timed_ms

SIZES = (1_000, 10_000, 100_000)
CHUNK = 1_000
TAIL = 50
REPEATS = 5


def _label(size: int) -> str:
    return f"{size // 1000}k"


def _sizes(context: Context) -> list[tuple[int, int]]:
    return [(size, context.size(size, minimum=TAIL * 4)) for size in SIZES]


def _project(context: Context) -> Figures:
    from eventstore.store import NewEvent, event_store

    repository = counter.repository()
    figures: Figures = {}
    for size, scaled in _sizes(context):
        stream_id = f"load-{size}"
        aggregate = repository.new(stream_id)
        context.progress(f"writing a stream of {scaled:,} events")
        while aggregate.version < scaled - TAIL:
            for number in range(aggregate.version, min(aggregate.version + CHUNK, scaled - TAIL)):
                aggregate.add(number)
            repository.save(aggregate)
        event_store.append_to_stream(
            counter.AGGREGATE_TYPE,
            stream_id,
            [
                NewEvent(counter.EVENT_TYPE, counter.payload(n), counter.METADATA)
                for n in range(scaled - TAIL, scaled)
            ],
            expected_version=scaled - TAIL,
        )
        loaded = repository.load(stream_id, use_snapshot=False)
        assert loaded.count == scaled, (loaded.count, scaled)
        assert repository.load(stream_id).total == loaded.total
        figures[f"snapshot_{_label(size)}_ms"] = timed_ms(
            lambda s=stream_id: repository.load(s), REPEATS
        )
        figures[f"full_{_label(size)}_ms"] = timed_ms(
            lambda s=stream_id: repository.load(s, use_snapshot=False), REPEATS
        )
    return figures


def _baseline(context: Context, project: Figures) -> Figures:
    log = context.raw_log()
    figures: Figures = {}
    for size, scaled in _sizes(context):
        stream_id = f"load-{size}"
        version = 0
        while version < scaled:
            numbers = range(version, min(version + CHUNK, scaled))
            events = [(counter.EVENT_TYPE, counter.payload(n)) for n in numbers]
            version = log.append(counter.AGGREGATE_TYPE, stream_id, events, version)

        def load(s=stream_id):
            return counter.fold(log.read_payloads(counter.AGGREGATE_TYPE, s))

        assert load()[0] == scaled
        figures[f"full_{_label(size)}_ms"] = timed_ms(load, REPEATS)
    log.close()
    return figures


def _figures() -> tuple[Figure, ...]:
    figures = []
    for size in SIZES:
        label = _label(size)
        figures.append(
            Figure(
                f"full_{label}_ms",
                f"{size:,} events, whole stream",
                "ms",
                higher_is_better=False,
                target_ratio=1.5 if size == 10_000 else None,
            )
        )
    for size in SIZES:
        figures.append(
            Figure(
                f"snapshot_{_label(size)}_ms",
                f"{size:,} events, from snapshot",
                "ms",
                higher_is_better=False,
                baseline=False,
            )
        )
    return tuple(figures)


LOAD = Workload(
    name="load",
    title=f"Load one aggregate (snapshot + {TAIL} events, or the whole stream)",
    figures=_figures(),
    project=_project,
    baseline=_baseline,
)
