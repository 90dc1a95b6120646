"""Workloads 1 and 2: appending events, each call its own transaction with a version check."""

from __future__ import annotations

from tests.bench import counter
from tests.bench.core import Context, Figure, Figures, Stopwatch, Workload

STREAMS = 1_000
EVENTS = 20_000
PER_CALL = 10


def one_per_call(events: int) -> float:
    """`events` appends of one event each, round-robin over the streams; events/s."""
    from eventstore.store import NewEvent, event_store

    versions = [0] * STREAMS
    with Stopwatch() as clock:
        for number in range(events):
            stream = number % STREAMS
            event_store.append_to_stream(
                counter.AGGREGATE_TYPE,
                f"counter-{stream}",
                [NewEvent(counter.EVENT_TYPE, counter.payload(number), counter.METADATA)],
                expected_version=versions[stream],
            )
            versions[stream] += 1
    return events / clock.seconds


def _one_per_call(context: Context) -> Figures:
    return {"events_per_s": one_per_call(context.size(EVENTS))}


def _one_per_call_baseline(context: Context, project: Figures) -> Figures:
    log = context.raw_log()
    events = context.size(EVENTS)
    versions = [0] * STREAMS
    with Stopwatch() as clock:
        for number in range(events):
            stream = number % STREAMS
            versions[stream] = log.append(
                counter.AGGREGATE_TYPE,
                f"counter-{stream}",
                [(counter.EVENT_TYPE, counter.payload(number))],
                versions[stream],
                counter.METADATA,
            )
    log.close()
    return {"events_per_s": events / clock.seconds}


def _ten_per_call(context: Context) -> Figures:
    from eventstore.store import NewEvent, event_store

    calls = context.size(EVENTS) // PER_CALL
    version = 0
    with Stopwatch() as clock:
        for call in range(calls):
            numbers = range(call * PER_CALL, (call + 1) * PER_CALL)
            event_store.append_to_stream(
                counter.AGGREGATE_TYPE,
                "counter-hot",
                [
                    NewEvent(counter.EVENT_TYPE, counter.payload(n), counter.METADATA)
                    for n in numbers
                ],
                expected_version=version,
            )
            version += PER_CALL
    return {"events_per_s": calls * PER_CALL / clock.seconds}


def _ten_per_call_baseline(context: Context, project: Figures) -> Figures:
    log = context.raw_log()
    calls = context.size(EVENTS) // PER_CALL
    version = 0
    with Stopwatch() as clock:
        for call in range(calls):
            numbers = range(call * PER_CALL, (call + 1) * PER_CALL)
            version = log.append(
                counter.AGGREGATE_TYPE,
                "counter-hot",
                [(counter.EVENT_TYPE, counter.payload(n)) for n in numbers],
                version,
                counter.METADATA,
            )
    log.close()
    return {"events_per_s": calls * PER_CALL / clock.seconds}


APPEND_ONE = Workload(
    name="append-one",
    title=f"Append 1 event per call, round-robin over {STREAMS:,} streams",
    figures=(Figure("events_per_s", "throughput", "events/s", target_ratio=0.8),),
    project=_one_per_call,
    baseline=_one_per_call_baseline,
)

APPEND_TEN = Workload(
    name="append-ten",
    title=f"Append {PER_CALL} events per call to one stream",
    figures=(Figure("events_per_s", "throughput", "events/s", target_ratio=0.8),),
    project=_ten_per_call,
    baseline=_ten_per_call_baseline,
)
