"""The report: medians of each figure, the baseline beside them, and BENCHMARKS.md's sections."""

from __future__ import annotations

import os
import platform
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from tabulate import tabulate

from tests.bench.core import Figures, Workload, median


@dataclass
class WorkloadResult:
    """Every run of one workload on one backend."""

    workload: Workload
    project_runs: list[Figures] = field(default_factory=list)
    baseline_runs: list[Figures] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def project(self, key: str) -> float | None:
        return _median_of(self.project_runs, key)

    def baseline(self, key: str) -> float | None:
        return _median_of(self.baseline_runs, key)


def _median_of(runs: list[Figures], key: str) -> float | None:
    values = [run[key] for run in runs if key in run]
    return median(values) if values else None


def number(value: float | None) -> str:
    """A figure as the table shows it: thousands separated, two decimals below 100."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if value == int(value):
        return f"{value:.0f}"
    return f"{value:.2f}"


HEADERS = ["Workload", "Figure", "Project", "Baseline", "Ratio", "Target", "Met"]


def rows(results: list[WorkloadResult]) -> list[list[str]]:
    """One row per figure: project and baseline medians, their ratio and the target."""
    table = []
    for result in results:
        workload = result.workload
        if result.errors and not result.project_runs:
            table.append([workload.title, "failed", "-", "-", "-", "", "no"])
            continue
        for index, figure in enumerate(workload.figures):
            project = result.project(figure.key)
            baseline = result.baseline(figure.key) if figure.baseline else None
            ratio = f"{project / baseline:.2f}x" if project is not None and baseline else "-"
            met = figure.meets(project, baseline)
            table.append(
                [
                    workload.title if index == 0 else "",
                    f"{figure.label} ({figure.unit})",
                    number(project),
                    number(baseline),
                    ratio,
                    figure.target_text(),
                    {True: "yes", False: "**no**", None: ""}[met],
                ]
            )
    return table


def table(results: list[WorkloadResult], tablefmt: str = "github") -> str:
    """The results' table, without the Baseline and Ratio columns when no figure has one."""
    body, headers = rows(results), HEADERS
    if all(row[3:5] == ["-", "-"] for row in body):
        body = [row[:3] + row[5:] for row in body]
        headers = HEADERS[:3] + HEADERS[5:]
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return f"{pages / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        return "unknown"


def environment(backend: str, runs: int, scale: float, server_version: str = "") -> list[str]:
    """The lines that say where and how the figures were measured."""
    where = (
        f"- {date.today().isoformat()}, {_cpu_model()}, {os.cpu_count()} cores, "
        f"{_memory_gib()} RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    if backend == "postgres":
        where += f", PostgreSQL {server_version}"
    how = f"- Median of {runs} run(s) per workload, each on fresh databases"
    return [where, how + (f", sizes scaled by {scale:g}" if scale != 1 else "")]


def section(
    backend: str, results: list[WorkloadResult], runs: int, scale: float, server_version: str = ""
) -> str:
    """The Markdown section for one backend's results."""
    title = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[backend]
    parts = [f"### Latest run: {title}", "", *environment(backend, runs, scale, server_version)]
    parts += ["", table(results), ""]
    one = len(results) == 1  # a table of one workload names it in its first row already
    notes = [
        f"- {note}" if one else f"- {r.workload.name}: {note}" for r in results for note in r.notes
    ]
    notes += [
        f"- failed: {error}" if one else f"- {r.workload.name} failed: {error}"
        for r in results
        for error in r.errors
    ]
    if notes:
        parts += ["Notes from the runs:", "", *dict.fromkeys(notes), ""]
    return "\n".join(parts)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"


def compact_tables(text: str) -> str:
    """`text` with its Markdown tables' cells unpadded: the console shows them aligned, the
    file keeps them short (a padded table repeats its widest cell's width on every row)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("|") and line.endswith("|"):
            cells = [cell.strip() for cell in line[1:-1].split("|")]
            if all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                cells = ["---"] * len(cells)
            line = "| " + " | ".join(cells) + " |"
        lines.append(line)
    return "\n".join(lines)


def write_section(path: Path, name: str, text: str) -> None:
    """Put `text`, its tables compacted, between the markers of `name` (a backend's, or a
    workload's own section) in `path` (added at the end when missing)."""
    begin, end = _markers(name)
    block = f"{begin}\n{compact_tables(text.rstrip())}\n{end}"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current, count=1)
    else:
        updated = current.rstrip() + "\n\n" + block + "\n"
    path.write_text(updated)
