"""Workload 4: `rebuild_projections` over 20,000 and 200,000 events: speed and peak memory.

The log holds counter events over 1,000 streams; every registered projection is rebuilt, so the
event store's stream index does the writing. (The in-process workload also times a rebuild over
the order events it leaves behind, which every service's projection reads.) Peak memory is the
largest amount Python allocated during a second rebuild, traced by `tracemalloc`; tracing slows
Python down, so the speed comes from the first, untraced rebuild.
"""

from __future__ import annotations

import io
import tracemalloc

from tests.bench import counter
from tests.bench.core import Context, Figure, Figures, Stopwatch, Workload

SIZES = (20_000, 200_000)
STREAMS = 1_000
STREAMS_PER_CALL = 10
EVENTS_PER_STREAM_PER_CALL = 100
BATCH_SIZE = 500


def _label(size: int) -> str:
    return f"{size // 1000}k"


def _traced_peak_mib(function) -> float:
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _fill_project(start: int, stop: int) -> None:
    """Append counter events `start`..`stop` (a multiple of 1,000 each) in calls of 1,000."""
    from eventstore.store import NewEvent, StreamAppend, event_store

    per_call = STREAMS_PER_CALL * EVENTS_PER_STREAM_PER_CALL
    for call_start in range(start, stop, per_call):
        call = call_start // per_call
        streams = []
        for offset in range(STREAMS_PER_CALL):
            stream = (call * STREAMS_PER_CALL + offset) % STREAMS
            first = call_start + offset * EVENTS_PER_STREAM_PER_CALL
            events = [
                NewEvent(counter.EVENT_TYPE, counter.payload(n), counter.METADATA)
                for n in range(first, first + EVENTS_PER_STREAM_PER_CALL)
            ]
            streams.append(StreamAppend(counter.AGGREGATE_TYPE, f"counter-{stream}", events))
        event_store.append(*streams)


def _project(context: Context) -> Figures:
    from django.core.management import call_command

    from eventstore.store import event_store

    def rebuild() -> None:
        call_command("rebuild_projections", verbosity=0, stdout=io.StringIO())

    figures: Figures = {}
    written = 0
    for size in SIZES:
        scaled = context.size(size, minimum=1_000) // 1_000 * 1_000
        context.progress(f"writing {scaled - written:,} more events")
        _fill_project(written, scaled)
        written = scaled
        assert event_store.count() == scaled
        with Stopwatch() as clock:
            rebuild()
        figures[f"events_per_s_{_label(size)}"] = scaled / clock.seconds
        figures[f"peak_mib_{_label(size)}"] = _traced_peak_mib(rebuild)
    return figures


def _baseline(context: Context, project: Figures) -> Figures:
    log = context.raw_log()
    versions = [0] * STREAMS
    figures: Figures = {}
    written = 0
    for size in SIZES:
        scaled = context.size(size, minimum=1_000) // 1_000 * 1_000
        for first in range(written, scaled, EVENTS_PER_STREAM_PER_CALL):
            stream = (first // EVENTS_PER_STREAM_PER_CALL) % STREAMS
            numbers = range(first, first + EVENTS_PER_STREAM_PER_CALL)
            versions[stream] = log.append(
                counter.AGGREGATE_TYPE,
                f"counter-{stream}",
                [(counter.EVENT_TYPE, counter.payload(n)) for n in numbers],
                versions[stream],
                counter.METADATA,
            )
        written = scaled
        with Stopwatch() as clock:
            replayed = log.rebuild_streams(BATCH_SIZE)
        assert replayed == scaled
        figures[f"events_per_s_{_label(size)}"] = scaled / clock.seconds
        figures[f"peak_mib_{_label(size)}"] = _traced_peak_mib(
            lambda: log.rebuild_streams(BATCH_SIZE)
        )
    log.close()
    return figures


REPLAY = Workload(
    name="replay",
    title="Replay: rebuild_projections over the whole log",
    figures=tuple(
        Figure(f"events_per_s_{_label(size)}", f"{size:,} events", "events/s", target_ratio=0.5)
        for size in SIZES
    )
    + tuple(
        Figure(
            f"peak_mib_{_label(size)}",
            f"{size:,} events, peak memory",
            "MiB",
            higher_is_better=False,
        )
        for size in SIZES
    ),
    project=_project,
    baseline=_baseline,
)
