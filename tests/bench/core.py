"""What a workload is, what it is given, and the figures it reports."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Figures = dict[str, float]


@dataclass(frozen=True)
class Figure:
    """One number a workload reports. `higher_is_better` orients the ratio's target."""

    key: str
    label: str
    unit: str
    higher_is_better: bool = True
    # The target, as a ratio to the baseline (min for "higher", max for "lower"), or as an
    # absolute value of the project's figure; None when the figure has no target.
    target_ratio: float | None = None
    target_value: float | None = None
    baseline: bool = True  # whether the baseline reports it too

    def meets(self, project: float | None, baseline: float | None) -> bool | None:
        """Whether the project's figure reaches its target (None: no target or no figure)."""
        if project is None:
            return None
        if self.target_value is not None:
            if self.higher_is_better:
                return project >= self.target_value
            return project <= self.target_value
        if self.target_ratio is not None and baseline:
            ratio = project / baseline
            return (
                ratio >= self.target_ratio if self.higher_is_better else ratio <= self.target_ratio
            )
        return None

    def target_text(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        if self.target_value is not None:
            return f"{sign} {self.target_value:g} {self.unit}"
        if self.target_ratio is not None:
            return f"{sign} {self.target_ratio:g}x"
        return ""


@dataclass
class Context:
    """What one run of a workload gets: a fresh, migrated project database (Django is set up),
    and a factory for a fresh baseline log on a database of its own."""

    backend: str  # "sqlite" or "postgres"
    scale: float  # 1.0 for the real sizes; smaller for a quick check of the harness
    workdir: Path
    database_url: str
    raw_log: Callable[[], Any]  # -> tests.bench.raw.RawLog
    # PostgreSQL: the admin URL the run's databases were created from (for more of them).
    admin_url: str | None = None
    progress: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)

    def size(self, count: int, minimum: int = 10) -> int:
        """`count` scaled down for a quick run, never below `minimum`."""
        return max(minimum, int(count * self.scale))


@dataclass(frozen=True)
class Workload:
    """A named workload: the project's run and the baseline's run of the same work."""

    name: str
    title: str
    figures: tuple[Figure, ...]
    project: Callable[[Context], Figures]
    # The same work with the bare driver; it gets the project's figures of the same run.
    baseline: Callable[[Context, Figures], Figures] | None = None
    # The backends it runs on; on any other it is skipped, with a message.
    backends: tuple[str, ...] = ("sqlite", "postgres")
    # A block of its own in BENCHMARKS.md (between <!-- bench:SECTION:begin/end --> markers)
    # instead of a place in its backend's table, so that running it alone rewrites only it.
    section: str | None = None
    # Draws its chart from the medians of its figures (None for a figure no run reported)
    # into the PNG file it is given.
    chart: Callable[[dict[str, float | None], Path], None] | None = None
    # Runs in the main process before the workload's runs on a backend (to install what it
    # compares against, say), given a function that prints progress.
    prepare: Callable[[Callable[[str], None]], None] | None = None
    # Writes the text of its section itself, from its results on every backend of the run so
    # far: [(backend, server version, report.WorkloadResult)], the runs and the scale.
    render: Callable[[list[tuple[str, str, Any]], int, float], str] | None = None


class Stopwatch:
    """`with Stopwatch() as clock:` ... then `clock.seconds` is how long the block took."""

    seconds: float = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self._started


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile of `values` (nearest rank; 0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed_ms(function: Callable[[], Any], repeats: int) -> float:
    """The median of `repeats` timings of `function()`, in milliseconds."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)
