"""The counter's events as data: their type, payload and metadata, and the fold that replays them.

Nothing here imports the project, so the peers' runner (tests/bench/peers_runner.py), which runs
in a virtual environment of its own, writes and reads exactly what the project's workloads do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

AGGREGATE_TYPE = "BenchCounter"
EVENT_TYPE = "Counted"
METADATA = {"actor": "bench", "correlation_id": "bench"}


def payload(number: int) -> dict[str, Any]:
    """An event payload of a realistic size (about 100 bytes of JSON)."""
    return {"n": number, "sku": f"sku-{number % 97:04d}", "note": "benchmark event"}


def fold(payloads: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Replaying a counter without the aggregate class: (count, total)."""
    count = total = 0
    for data in payloads:
        count += 1
        total += data["n"]
    return count, total
