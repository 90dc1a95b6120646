"""The project served by gunicorn for the HTTP workloads, as in production, on the run's database.

`served()` starts gunicorn, waits until it answers /api/health/ and yields its port; when the
block ends, by success or by any exception, gunicorn and every one of its workers are stopped
before `served()` returns or re-raises.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.bench.core import Context
from tests.bench.setup import BENCH_ENVIRONMENT

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
# gunicorn gives its workers GRACEFUL_TIMEOUT to finish their request after SIGTERM, then kills
# them itself; past STOP_TIMEOUT the whole process group is killed, so nothing outlives a run.
GRACEFUL_TIMEOUT = 5
STOP_TIMEOUT = 15.0
PROJECT_DIR = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", "/api/health/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop(process: subprocess.Popen) -> None:
    """Stop a process started with `start_new_session` gracefully (SIGTERM); kill its process
    group (gunicorn's master and workers, a Celery worker and its pool) if it lingers."""
    if process.poll() is None:
        process.terminate()
    with suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT)
    # The process leads a process group of its own (start_new_session): a child left behind by
    # a parent that died or hung is still in it. No such group: everything has exited.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def environment_for(context: Context, environment: Mapping[str, str] | None = None) -> dict:
    """The environment of a process serving the project on the run's database: the bench
    settings, connections kept between requests (or tasks), then `environment` on top."""
    return {
        **os.environ,
        **BENCH_ENVIRONMENT,
        "DATABASE_URL": context.database_url,
        "LOG_LEVEL": "WARNING",  # not a line per notification sent
        # Each process keeps its database connection between requests, as a production
        # deployment does: opening one per request (a new PostgreSQL backend process) would
        # be measured as the project's work.
        "CONN_MAX_AGE": "60",
        **(environment or {}),
    }


@contextmanager
def served(
    context: Context, *, workers: int, environment: Mapping[str, str] | None = None
) -> Iterator[int]:
    """gunicorn with `workers` sync workers of one thread each, serving the project on the run's
    database with the bench settings plus `environment`; yields its port, then stops it.

    Its output (gunicorn's log and the project's warnings and errors) goes to a log file in the
    run's directory, whose end is in the error raised when gunicorn does not start.
    """
    port = _free_port()
    log_path = context.workdir / f"gunicorn-{port}.log"
    variables = environment_for(context, environment)
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "config.wsgi:application",
        f"--workers={workers}",
        # One request at a time per worker process, as a default gunicorn deployment serves.
        "--worker-class=sync",
        "--threads=1",
        f"--graceful-timeout={GRACEFUL_TIMEOUT}",
        f"--bind={HOST}:{port}",
    ]
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=variables,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start; its log ends:\n{tail(log_path)}")
            time.sleep(0.1)
        yield port
    finally:
        stop(server)
