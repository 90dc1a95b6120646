"""Celery mode's background processes for the workloads that use them, on a broker of their own.

`vhost()` adds a RabbitMQ virtual host for one configuration and deletes it afterwards (its
queues with it), so wake-ups left over from one configuration never reach the next.
`celery_workers()` starts `celery -A config beat` and `count` workers of one pool process each
(`celery -A config worker -c 1 -n wN@%h`), waits until every worker answers a ping, and stops
them all when the block ends, by success or by any exception. Their logs go to the run's
directory; `log_errors()` reads the errors in them.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import quote

from tests.bench.core import Context
from tests.bench.serving import HOST, PROJECT_DIR, environment_for, stop, tail

RABBITMQ = f"amqp://guest:guest@{HOST}:5672"
START_TIMEOUT = 60.0
RABBITMQCTL_TIMEOUT = 60.0


def _rabbitmqctl(*arguments: str) -> None:
    subprocess.run(
        ["rabbitmqctl", "--quiet", *arguments],
        check=True,
        capture_output=True,
        timeout=RABBITMQCTL_TIMEOUT,
    )


@contextmanager
def vhost(label: str) -> Iterator[str]:
    """A new RabbitMQ virtual host the guest user may use; yields its broker URL, then deletes
    it with everything in it."""
    name = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"{RABBITMQ}/{quote(name, safe='')}"
    finally:
        _rabbitmqctl("delete_vhost", name)


def _start(command: list[str], log_path: Path, environment: dict) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stop() kills the pool processes with their worker
        )


def _answering(broker_url: str) -> int:
    """How many workers answer a ping on the broker."""
    from celery import Celery

    app = Celery("bench-ping", broker=broker_url)
    try:
        return len(app.control.ping(timeout=1.0))
    finally:
        app.close()


def _logs(context: Context, label: str) -> list[Path]:
    return sorted(context.workdir.glob(f"celery-{label}-*.log"))


def log_errors(context: Context, label: str) -> list[str]:
    """The lines of the Celery processes' logs (of `celery_workers(label=...)`) that report an
    error or a traceback."""
    lines = []
    for path in _logs(context, label):
        for line in path.read_text(errors="replace").splitlines():
            if "ERROR" in line or "CRITICAL" in line or line.startswith("Traceback"):
                lines.append(f"{path.stem}: {line.strip()}")
    return lines


@contextmanager
def celery_workers(
    context: Context,
    count: int,
    *,
    broker_url: str,
    label: str,
    environment: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Celery beat and `count` workers of one pool process each, serving every queue of the
    project on the run's database (the bench settings plus `environment`) over `broker_url`;
    stopped when the block ends."""
    variables = environment_for(context, {**(environment or {}), "CELERY_BROKER_URL": broker_url})
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    with ExitStack() as running:
        processes = []
        for n in range(1, count + 1):
            log_path = context.workdir / f"celery-{label}-w{n}.log"
            command = [*celery, "worker", "-c", "1", "-n", f"w{n}@%h", "--loglevel=WARNING"]
            processes.append(_start(command, log_path, variables))
            running.callback(stop, processes[-1])
        beat = context.workdir / f"celery-{label}-beat"
        command = [*celery, "beat", f"--schedule={beat}", "--loglevel=WARNING"]
        processes.append(_start(command, beat.with_suffix(".log"), variables))
        running.callback(stop, processes[-1])
        deadline = time.monotonic() + START_TIMEOUT
        while _answering(broker_url) < count:
            stopped = [p for p in processes if p.poll() is not None]
            if stopped or time.monotonic() > deadline:
                logs = "\n".join(f"{path.name}:\n{tail(path)}" for path in _logs(context, label))
                raise RuntimeError(f"Celery workers did not start; their logs end:\n{logs}")
        yield
