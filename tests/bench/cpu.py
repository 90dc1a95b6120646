"""Where the machine's CPU went during a measured window, by kind of process (Linux /proc).

    before = cpu.sample()
    ...
    usage = cpu.usage(before, cpu.sample())  # {"machine": 187.0, "postgres": 61.2, ...}

Figures are percentages of one core over the window (a 2-core machine is busy at most 200%).
Processes are told apart by name and parentage: PostgreSQL's backends and RabbitMQ's Erlang VM
(whoever they serve: the servers are shared), the gunicorn and Celery processes this process
started (other people's are "other"), this process (the benchmark's clients), and everything
else ("other": the machine's busy time the groups above do not account for, so that processes
that started and ended between the samples, such as other people's test runs, are in it too).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = ("postgres", "rabbitmq", "gunicorn", "celery", "clients", "other")


@dataclass
class Sample:
    at: float
    busy: float  # seconds of CPU the whole machine spent busy (every core)
    by_pid: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> (group, s)


def _group(pid: int, name: str, ours: bool) -> str:
    if pid == os.getpid():
        return "clients"
    if name == "postgres":
        return "postgres"
    if name.startswith("beam"):
        return "rabbitmq"
    if not ours:
        return "other"
    try:
        command = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "other"
    if b"gunicorn" in command:
        return "gunicorn"
    if b"celery" in command:
        return "celery"
    return "other"


def sample() -> Sample:
    fields = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in fields]
    idle = ticks[3] + ticks[4]  # idle, iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal
    result = Sample(at=time.monotonic(), busy=busy / TICKS)
    processes = {}  # pid -> (name, parent, seconds)
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(rest[11]) + int(rest[12])) / TICKS  # utime, stime
        processes[int(entry.name)] = (name, int(rest[1]), seconds)
    for pid, (name, _, seconds) in processes.items():
        result.by_pid[pid] = (_group(pid, name, _descends_from_us(pid, processes)), seconds)
    return result


def _descends_from_us(pid: int, processes: dict[int, tuple[str, int, float]]) -> bool:
    """Whether this process started `pid` (directly or through its children)."""
    seen = set()
    while pid in processes and pid not in seen:
        seen.add(pid)
        pid = processes[pid][1]
        if pid == os.getpid():
            return True
    return False


def usage(before: Sample, after: Sample) -> dict[str, float]:
    """Per group, and for the whole machine ("machine"), the CPU used between two samples as
    a percentage of one core. "other" is what the machine spent beyond the named groups."""
    elapsed = after.at - before.at
    if elapsed <= 0:
        return {}
    spent = dict.fromkeys(GROUPS, 0.0)
    for pid, (group, seconds) in after.by_pid.items():
        earlier = before.by_pid.get(pid)
        spent[group] += seconds - (earlier[1] if earlier else 0.0)
    result = {group: 100 * seconds / elapsed for group, seconds in spent.items()}
    result["machine"] = 100 * (after.busy - before.busy) / elapsed
    named = sum(value for group, value in result.items() if group not in {"other", "machine"})
    result["other"] = max(0.0, result["machine"] - named)
    return result
